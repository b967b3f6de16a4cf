"""200 concurrent streaming clients against 16 slots and a queue of 64 (issue 17): every request gets either a
complete answer or a clean 503 with Retry-After; no connection hangs, nothing answers 5xx otherwise, and the
server's memory comes back to where it was after a warm-up burst."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx

from tests.conftest import MODEL, child_pids, start_server, stop_server

CLIENTS = 200


def rss_mb(pid: int) -> float:
    """The server's resident memory and its children's (the guards' readers run in one)."""
    return sum(_rss_mb(p) for p in [pid, *child_pids(pid)])


def _rss_mb(pid: int) -> float:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:  # a child that has just exited
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in lines if line.startswith("VmRSS:")), 0.0)


async def one(client: httpx.AsyncClient, i: int) -> tuple[int, str]:
    body = {"model": MODEL, "messages": [{"role": "user", "content": f"Say a word about number {i}."}],
            "max_tokens": 12, "stream": True}  # fmt: skip
    async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        if resp.status_code != 200:
            await resp.aread()
            assert resp.status_code == 503 and resp.headers.get("retry-after"), (resp.status_code, resp.text)
            assert resp.json()["error"]["code"]
            return 503, ""
        finish, done = None, False
        async for line in resp.aiter_lines():
            if line == "data: [DONE]":
                done = True
            elif line.startswith("data: "):
                chunk = json.loads(line[6:])
                assert "error" not in chunk, chunk
                for choice in chunk.get("choices", []):
                    finish = choice.get("finish_reason") or finish
        assert done and finish in ("stop", "length"), (done, finish)
        return 200, finish


async def burst(url: str, n: int) -> list[tuple[int, str]]:
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(180, connect=30), limits=limits) as client:
        return await asyncio.wait_for(asyncio.gather(*(one(client, i) for i in range(n))), timeout=300)


def test_two_hundred_streams_get_an_answer_or_a_clean_503(tmp_path):
    srv = start_server(tmp_path, "--slots", "16", "--ctx", "512", "--max-queue", "64")
    try:
        asyncio.run(burst(srv.url, 32))  # warm-up: every slot used once, the caches allocated
        baseline = rss_mb(srv.proc.pid)
        results = asyncio.run(burst(srv.url, CLIENTS))
        answered = sum(1 for status, _ in results if status == 200)
        refused = sum(1 for status, _ in results if status == 503)
        print(f"answered {answered}, refused {refused}")
        assert answered + refused == CLIENTS and answered >= 16 + 64 - 16  # the slots and most of the queue served
        assert httpx.get(srv.url + "/ready", timeout=10).status_code == 200
        asyncio.run(burst(srv.url, 16))
        after = rss_mb(srv.proc.pid)
        print(f"rss baseline {baseline:.0f} MB, after {after:.0f} MB")
        assert after - baseline < 150, (baseline, after)  # back near the baseline: nothing per request is kept
    finally:
        stop_server(srv)
