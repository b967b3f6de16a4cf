"""Parley as an MCP client: operators list MCP servers in the settings (streamable HTTP and stdio); a chat that
opts in (`mcp_servers` in the request, or its profile's) gets their allowed tools, and Parley runs the calls and
answers with the results. The servers are the official SDK's (tests/server/mcp_tools_server.py), started here.
The model is small: tests pin what the loop guarantees (which calls ran, the allowlist, the step bound, the
guard's verdict, whole = streamed on one deterministic server), not which words it answers with."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import openai
import pytest

from tests.conftest import MODEL, free_port, start_server, stop_server

FIXTURE = Path(__file__).with_name("mcp_tools_server.py")
SUM = [{"role": "user", "content": "What is 17 plus 25?"}]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mcp-client")
    calls = tmp / "calls.jsonl"
    env = {"MCP_CALLS_LOG": str(calls), "PATH": "/usr/bin:/bin"}
    port = free_port()
    tools = subprocess.Popen([sys.executable, str(FIXTURE), "http", str(port)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wait_listening(tools, port)
    profiles = tmp / "profiles.toml"
    profiles.write_text('[profiles.shop]\ndescription = "a shop assistant with tools"\nmcp_servers = ["shop"]\n')
    config = tmp / "parley.toml"
    config.write_text(f"""
mcp_max_steps = 3
[[mcp_servers]]
name = "shop"
url = "http://127.0.0.1:{port}/mcp"
allow = ["add", "order_status", "product_reviews"]

[[mcp_servers]]
name = "local"
command = [{json.dumps(sys.executable)}, {json.dumps(str(FIXTURE))}, "stdio"]
env = {{MCP_CALLS_LOG = {json.dumps(str(calls))}}}
allow = ["add"]

[[mcp_servers]]
name = "down"
url = "http://127.0.0.1:{free_port()}/mcp"
allow = ["*"]
connect_timeout = 2
""")
    srv = start_server(tmp, "--slots", "2", "--ctx", "2048", "--deterministic",
                       env={"PARLEY_CONFIG": str(config), "PARLEY_PROFILES_FILE": str(profiles)})  # fmt: skip
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="none", max_retries=0, timeout=180)
    yield SimpleNamespace(srv=srv, client=client, calls=calls)
    stop_server(srv)
    tools.terminate()
    tools.wait(timeout=10)


def wait_listening(proc: subprocess.Popen, port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the MCP fixture server exited"
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the MCP fixture server did not listen")


def calls_made(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def mcp_trace(trace: list[dict]) -> dict:
    return next(t for t in trace if t["stage"] == "model")["detail"]["mcp"]


def ask(client, stream=False, **body):
    body = {"model": MODEL, "messages": SUM, "max_tokens": 48, "temperature": 0, **body}
    extra = {k: body.pop(k) for k in ("mcp_servers", "mcp_max_steps") if k in body}
    return client.chat.completions.create(**body, stream=stream, extra_body=extra,
                                          extra_headers={"X-Parley-Trace": "1"})  # fmt: skip


@pytest.mark.parametrize("server", ["shop", "local"], ids=["streamable-http", "stdio"])
def test_a_chat_uses_an_mcp_servers_tool_whole_and_streamed_alike(setup, server):
    _srv, client, calls = setup.srv, setup.client, setup.calls
    before = len(calls_made(calls))
    whole = ask(client, mcp_servers=[server], tool_choice={"type": "function", "function": {"name": "add"}})
    made = calls_made(calls)[before:]
    assert made and all(c["tool"] == "add" and isinstance(c["arguments"]["a"], int) for c in made)
    trace = mcp_trace(whole.model_extra["parley_trace"])
    step = trace["steps"][0]
    assert [c["tool"] for c in step["calls"]] == [c["tool"] for c in made]
    assert all(c["ok"] and c["server"] == server and c["result_chars"] > 0 for c in step["calls"])
    key = lambda args: json.dumps(args, sort_keys=True)  # noqa: E731
    assert sorted(key(json.loads(c["arguments"])) for c in step["calls"]) == sorted(key(m["arguments"]) for m in made)
    choice = whole.choices[0]
    assert choice.message.tool_calls is None and choice.finish_reason in ("stop", "length")
    assert whole.usage.prompt_tokens > 0 and whole.usage.completion_tokens > 0
    metrics = httpx.get(setup.srv.url + "/metrics", timeout=10).text
    assert f'parley_mcp_tool_calls_total{{outcome="ok",server="{server}",tool="add"}}' in metrics

    chunks = list(ask(client, stream=True, mcp_servers=[server],
                      tool_choice={"type": "function", "function": {"name": "add"}}))  # fmt: skip
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == (choice.message.content or "")  # the same answer, streamed
    assert not any(c.choices and c.choices[0].delta.tool_calls for c in chunks)  # the server's calls stay inside
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.role) == 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [choice.finish_reason]
    assert len({c.id for c in chunks}) == 1


def test_only_allowlisted_tools_are_offered_or_run(setup):
    _srv, client, calls = setup.srv, setup.client, setup.calls
    resp = ask(client, mcp_servers=["shop"], tool_choice="required", mcp_max_steps=1,
               messages=[{"role": "user", "content": "Please tidy up the order list of the shop."}])  # fmt: skip
    trace = mcp_trace(resp.model_extra["parley_trace"])
    assert sorted(trace["tools"]) == ["shop/add", "shop/order_status", "shop/product_reviews"]
    assert all(c["tool"] != "delete_all_orders" for c in calls_made(calls))
    with pytest.raises(openai.BadRequestError) as err:  # a tool left out of the allowlist cannot even be named
        ask(client, mcp_servers=["shop"], tool_choice={"type": "function", "function": {"name": "delete_all_orders"}})
    assert err.value.body["param"] == "tool_choice"


def test_the_step_bound_forces_an_answer(setup):
    _srv, client, calls = setup.srv, setup.client, setup.calls
    before = len(calls_made(calls))
    resp = ask(client, mcp_servers=["shop"], tool_choice="required", mcp_max_steps=1)
    trace = mcp_trace(resp.model_extra["parley_trace"])
    assert len(trace["steps"]) == 1 and trace["answer_forced_by"] == "step bound"
    assert len(calls_made(calls)) - before == len(trace["steps"][0]["calls"])
    assert resp.choices[0].message.tool_calls is None
    with pytest.raises(openai.BadRequestError) as err:  # no more than the server allows
        ask(client, mcp_servers=["shop"], mcp_max_steps=4)
    assert err.value.body["param"] == "mcp_max_steps"


def test_an_injection_in_an_mcp_result_is_caught_and_shown_in_the_trace(setup):
    _srv, client, _calls = setup.srv, setup.client, setup.calls
    resp = ask(client, mcp_servers=["shop"], mcp_max_steps=1,
               tool_choice={"type": "function", "function": {"name": "product_reviews"}},
               messages=[{"role": "user", "content": "What do customers say about the blue kettle?"}])  # fmt: skip
    trace = resp.model_extra["parley_trace"]
    assert mcp_trace(trace)["steps"][0]["calls"][0]["tool"] == "product_reviews"
    guard = next(s for t in trace for s in t.get("steps", []) if s["step"] == "guard_input")
    verdict = next(v for v in guard["detail"]["verdicts"] if v["role"] == "tool")
    assert verdict["tool_injection"] == "redact" and verdict["findings"][0]["scanner"] == "injection"


def test_a_profile_opts_in(setup):
    _srv, client, calls = setup.srv, setup.client, setup.calls
    before = len(calls_made(calls))
    resp = ask(client, model="profile/shop", tool_choice={"type": "function", "function": {"name": "add"}})
    assert mcp_trace(resp.model_extra["parley_trace"])["servers"] == ["shop"]
    assert len(calls_made(calls)) > before


def test_unknown_and_unreachable_servers(setup):
    _srv, client, _calls = setup.srv, setup.client, setup.calls
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, mcp_servers=["nowhere"])
    assert err.value.body["param"] == "mcp_servers"
    with pytest.raises(openai.InternalServerError) as err:
        ask(client, mcp_servers=["down"])
    assert err.value.status_code == 503 and err.value.body["code"] == "tool_server_unavailable"


def test_running_server_tools_takes_the_tools_scope(setup):
    """Last in this module: the first key ends the server's open mode."""
    srv, _client, _calls = setup.srv, setup.client, setup.calls
    admin = httpx.post(srv.url + "/admin/keys", json={"name": "ops", "scopes": ["admin"]}).json()["key"]
    keys = {scopes: httpx.post(srv.url + "/admin/keys", json={"name": scopes, "scopes": scopes.split(",")},
                               headers={"Authorization": f"Bearer {admin}"}).json()["key"]
            for scopes in ("chat", "chat,tools")}  # fmt: skip
    chat = openai.OpenAI(base_url=srv.url + "/v1", api_key=keys["chat"], max_retries=0, timeout=180)
    with pytest.raises(openai.PermissionDeniedError):
        ask(chat, mcp_servers=["shop"])
    tools = openai.OpenAI(base_url=srv.url + "/v1", api_key=keys["chat,tools"], max_retries=0, timeout=180)
    assert ask(tools, mcp_servers=["shop"], max_tokens=8).choices[0].message is not None
