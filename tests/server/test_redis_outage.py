"""A Redis outage while serving (issue 17): rate limits fall back to each replica's own buckets, so no request
hangs or fails for it; `/parley/status` shows the outage; the shared buckets take over again when Redis is back.
The test runs its own redis-server on a free port (the machine's is shared with other tests)."""

from __future__ import annotations

import shutil
import subprocess
import time

import httpx
import pytest

from tests.conftest import MODEL, free_port, start_server, stop_server

REDIS = shutil.which("redis-server")


def start_redis(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            import redis

            if redis.Redis(port=port, socket_timeout=0.5).ping():
                return proc
        except Exception:  # not up yet
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("redis-server did not start")


@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed")
def test_requests_go_on_through_a_redis_outage(tmp_path):
    port = free_port()
    redis_proc = start_redis(port)
    srv = start_server(tmp_path, "--slots", "2", "--ctx", "512", "--redis-url", f"redis://127.0.0.1:{port}/0")
    try:
        admin = httpx.post(srv.url + "/admin/keys", json={"name": "ops", "scopes": ["admin"]}).json()["key"]
        key = httpx.post(srv.url + "/admin/keys", json={"name": "app", "scopes": ["chat"], "rpm": 3},
                         headers={"Authorization": f"Bearer {admin}"}).json()["key"]  # fmt: skip
        status = lambda: httpx.get(srv.url + "/parley/status", timeout=10,  # noqa: E731
                                   headers={"Authorization": f"Bearer {admin}"}).json()["rate_limits"]  # fmt: skip

        def ask() -> tuple[int, float]:
            start = time.monotonic()
            resp = httpx.post(srv.url + "/v1/chat/completions", timeout=30, headers={"Authorization": f"Bearer {key}"},
                              json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
            return resp.status_code, time.monotonic() - start

        assert [ask()[0] for _ in range(4)] == [200, 200, 200, 429]  # the shared bucket, in Redis
        redis_proc.kill()
        redis_proc.wait()
        during = [ask() for _ in range(4)]
        assert [s for s, _ in during] == [200, 200, 200, 429]  # this replica's own bucket holds the limit
        assert all(seconds < 10 for _, seconds in during)  # nothing waits on the dead connection
        assert status()["failing"] and status()["errors"] >= 1
        redis_proc = start_redis(port)
        time.sleep(1.2)  # the next probe of Redis
        assert ask()[0] == 200 and not status()["failing"]  # shared again (Redis came back empty: a full bucket)
    finally:
        stop_server(srv)
        redis_proc.kill()
        redis_proc.wait()
