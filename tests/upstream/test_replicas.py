"""Two Parley processes on two ports sharing one PostgreSQL database and one Redis: any replica serves any
request. A key made on one works on the other, a rate limit holds across both, feedback given on one is
exported from the other, and an adapter registered on one is served by the other at once (announced over
Redis: the replicas' own look at the registry is set to a minute here, so only the notice can explain it)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import openai
import pytest

from tests.conftest import MODEL, admin_and_chat_keys, fresh_postgres, start_server, stop_server
from tests.server.test_feedback_loop_api import adapter_file  # noqa: F401  (a fixture)

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("replicas")
    with fresh_postgres() as database:
        env = {"PARLEY_DATABASE_URL": database, "PARLEY_REDIS_URL": REDIS, "PARLEY_ADAPTER_POLL_SECONDS": "60"}
        a = start_server(tmp, "--slots", "2", "--ctx", "512", env=env)
        b = start_server(tmp, "--slots", "2", "--ctx", "512", env=env)
        try:
            yield a, b, database, tmp
        finally:
            stop_server(a)
            stop_server(b)


def call(srv, key, method, path, **kw):
    return httpx.request(method, srv.url + path, headers={"Authorization": f"Bearer {key}"}, timeout=60, **kw)


def chat(srv, key, model=MODEL):
    return call(srv, key, "POST", "/v1/chat/completions",
                json={"model": model, "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]})  # fmt: skip


@pytest.fixture(scope="module")
def admin(pair):
    a, *_ = pair
    first = admin_and_chat_keys(a)[0]  # the first key, made from loopback on replica A
    return call(a, first, "POST", "/admin/keys", json={"name": "root", "scopes": ["admin", "chat"]}).json()["key"]


def test_a_key_made_on_one_replica_works_on_the_other_and_a_rate_limit_holds_across_both(pair, admin):
    a, b, *_ = pair
    made = call(a, admin, "POST", "/admin/keys", json={"name": "shared", "scopes": ["chat"], "rpm": 3})
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    assert [chat(srv, key).status_code for srv in (b, a, b)] == [200, 200, 200]
    refused = chat(a, key)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert chat(b, key).status_code == 429
    revoked = call(b, admin, "DELETE", f"/admin/keys/{made.json()['id']}")
    assert revoked.status_code == 200, revoked.text


def test_feedback_given_on_one_replica_is_exported_from_the_other(pair, admin):
    a, b, database, tmp = pair
    made = call(a, admin, "POST", "/admin/keys", json={"name": "rater", "scopes": ["chat", "feedback"]}).json()
    answer = chat(a, made["key"]).json()
    rated = call(a, made["key"], "POST", "/v1/feedback",
                 json={"completion_id": answer["id"], "rating": "down", "correction": "Hello! How can I help?"})
    assert rated.status_code == 201, rated.text
    listed = call(b, admin, "GET", "/v1/feedback", params={"completion_id": answer["id"]}).json()["data"]
    assert [f["correction"] for f in listed] == ["Hello! How can I help?"]
    out = tmp / "sft.jsonl"
    export = subprocess.run([sys.executable, "-m", "parley", "feedback", "export", "--format", "sft", "--out",
                             str(out), "--database-url", database], capture_output=True, text=True, timeout=120)
    assert export.returncode == 0, export.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert any(r["messages"][-1]["content"] == "Hello! How can I help?" for r in rows)


def test_an_adapter_registered_on_one_replica_is_served_by_the_other(pair, admin, adapter_file):  # noqa: F811
    a, b, *_ = pair
    created = call(a, admin, "POST", "/admin/adapters",
                   json={"name": "shared-lora", "base_model": MODEL, "gguf_path": str(adapter_file)})  # fmt: skip
    assert created.status_code == 201 and created.json()["served"] is True, created.text
    models = openai.OpenAI(base_url=b.url + "/v1", api_key=admin, max_retries=0).models
    deadline = time.monotonic() + 10  # far less than the minute between the replicas' own looks
    while "shared-lora" not in {m.id for m in models.list().data}:
        assert time.monotonic() < deadline, "replica B never loaded the adapter"
        time.sleep(0.2)
    answer = chat(b, admin, model="shared-lora")
    assert answer.status_code == 200 and answer.json()["model"] == "shared-lora"
    logged = call(a, admin, "GET", f"/admin/completions/{answer.json()['id']}").json()  # logged by B, read on A
    assert logged["adapter"] == "shared-lora"
    assert call(b, admin, "DELETE", "/admin/adapters/shared-lora").json()["served"] is False
    deadline = time.monotonic() + 10
    while "shared-lora" in {m.id for m in openai.OpenAI(base_url=a.url + "/v1", api_key=admin).models.list().data}:
        assert time.monotonic() < deadline, "replica A kept serving the removed adapter"
        time.sleep(0.2)
