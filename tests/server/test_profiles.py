"""Use-case profiles on a real server: the built-ins shape the answer, the three ways to choose one, edits
through the API (and in the file) take effect on the next request, and bad profiles are refused while the
old one keeps serving. Assertions are on form (headings, valid JSON, a refusal, the trace), never on text
one CPU happens to produce."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import jsonschema
import openai
import pytest

from tests.conftest import MODEL, admin_and_chat_keys, start_server, stop_server


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("profiles")
    # no exploration: an adaptive profile's choice is the exploit choice, a function of the stored ratings
    server = start_server(tmp, "--slots", "2", "--ctx", "2048", "--deterministic", env={"PARLEY_PARAMS_EXPLORE": "0"})
    server.data_dir = tmp / f"data-{server.url.rsplit(':', 1)[1]}"
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def api(srv):
    with httpx.Client(base_url=srv.url, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def oai(srv):
    return openai.OpenAI(base_url=srv.url + "/v1", api_key="none", max_retries=0, timeout=120)


def ask(api, body: dict, **headers) -> httpx.Response:
    body = {"messages": [{"role": "user", "content": "How do I install Parley on Linux?"}], **body}
    return api.post("/v1/chat/completions", json=body, headers={"X-Parley-Trace": "1", **headers})


def step(trace: list[dict], name: str) -> dict:
    return next(s["detail"] for stage in trace for s in stage["steps"] if s["step"] == name)


def test_builtins_are_listed(api):
    names = {p["name"]: p for p in api.get("/v1/profiles").json()["data"]}
    assert {"chat", "docs", "json", "support"} <= set(names)
    assert all(names[n]["builtin"] for n in ("chat", "docs", "json", "support"))


def test_docs_profile_answers_with_a_title_and_headings(oai):
    out = oai.chat.completions.create(
        model="profile/docs",
        max_tokens=40,
        messages=[{"role": "user", "content": "How do I back up a PostgreSQL database?"}],
    )
    lines = out.choices[0].message.content.splitlines()
    assert lines[0].startswith("# ") and len(lines[0]) > 2
    assert any(ln.startswith("## ") for ln in lines)
    assert out.model == MODEL


def test_json_profile_output_validates_against_its_schema(api, oai):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "port": {"type": "integer"}},
        "required": ["name", "port"],
        "additionalProperties": False,
    }
    r = api.put(
        "/v1/profiles/service-json",
        json={
            "format": "json",
            "json_schema": schema,
            "params": {"max_tokens": 60},
            "system_prompt": "Describe the service as JSON.",
        },
    )
    assert r.status_code == 201, r.text
    # A schema that bounds the object: the answer closes, and validates.
    out = oai.chat.completions.create(
        model="profile/service-json",
        temperature=0,
        max_tokens=120,
        messages=[{"role": "user", "content": "The service Parley, port 8000."}],
    )
    assert out.choices[0].finish_reason == "stop", out.choices[0].message.content
    jsonschema.validate(json.loads(out.choices[0].message.content), schema)
    # The built-in `json` profile allows any object: decoding is constrained from the first token, so a finished
    # answer is a JSON object; a small model may keep adding members until the budget runs out (CPU-dependent),
    # and then what was written is a prefix of one, never prose.
    r = ask(api, {"model": "profile/json", "temperature": 0, "max_tokens": 100,
                  "messages": [{"role": "user", "content": "The service Parley, port 8000."}]})  # fmt: skip
    body = r.json()
    content, finish = body["choices"][0]["message"]["content"], body["choices"][0]["finish_reason"]
    assert step(body["parley_trace"], "params")["constrained"] is True
    assert step(body["parley_trace"], "profile")["json"] is True
    if finish == "stop":
        assert isinstance(json.loads(content), dict)
    else:
        assert finish == "length" and content.lstrip().startswith("{")


def test_support_profile_politely_refuses_an_off_topic_question(api):
    r = ask(
        api,
        {
            "model": "profile/support",
            "messages": [{"role": "user", "content": "Give me a recipe for a chocolate cake."}],
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["choices"][0]["message"]["content"].startswith("I'm sorry, but I can only help with questions about")
    assert step(body["parley_trace"], "guard_input")["off_topic"]["topic"].startswith("software")
    # the same question without the profile is answered by the model
    plain = ask(
        api,
        {
            "model": MODEL,
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "Give me a recipe for a chocolate cake."}],
        },
    )
    assert "off_topic" not in step(plain.json()["parley_trace"], "guard_input")


def test_a_profile_is_chosen_by_model_header_or_metadata_and_conflicts_are_refused(api):
    chosen = [
        ask(api, {"model": "profile/docs", "max_tokens": 4}),
        ask(api, {"model": MODEL, "max_tokens": 4}, **{"X-Parley-Profile": "docs"}),
        ask(api, {"model": MODEL, "max_tokens": 4, "metadata": {"profile": "docs"}}),
    ]
    for r in chosen:
        assert r.status_code == 200, r.text
        assert step(r.json()["parley_trace"], "profile")["profile"] == "docs"
    both = ask(api, {"model": "profile/docs", "max_tokens": 4}, **{"X-Parley-Profile": "chat"})
    assert both.status_code == 400 and both.json()["error"]["param"] == "model"
    missing = ask(api, {"model": "profile/nope"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "profile_not_found"


def test_edits_take_effect_on_the_next_request_and_bad_ones_keep_the_old_profile(srv, api):
    body = {
        "system_prompt": "You help {{ company }}.",
        "variables": {"company": "ACME"},
        "params": {"temperature": 0.7, "max_tokens": 5},
    }
    assert api.put("/v1/profiles/helpdesk", json=body).status_code == 201
    first = ask(api, {"model": "profile/helpdesk"}).json()["parley_trace"]
    assert step(first, "params")["temperature"] == 0.7 and step(first, "params")["temperature_from"] == "profile"

    body["params"]["temperature"] = 0.1
    body["system_prompt"] = "You help {{ company }} employees with their laptops, printers and accounts."
    assert api.put("/v1/profiles/helpdesk", json=body).status_code == 200
    second = ask(api, {"model": "profile/helpdesk"}).json()["parley_trace"]
    assert step(second, "params")["temperature"] == 0.1
    assert step(second, "profile")["system_chars"] > step(first, "profile")["system_chars"]
    # a client's own parameter still wins over the profile's
    own = ask(api, {"model": "profile/helpdesk", "temperature": 0.3}).json()["parley_trace"]
    assert step(own, "params")["temperature"] == 0.3 and "temperature_from" not in step(own, "params")

    for bad, param_hint in [
        ({"system_prompt": "Hi {{ undefined_name }}"}, "undefined"),
        ({"system_prompt": "{% if %}"}, "template"),
        ({"format": "json", "json_schema": {"type": "bogus"}}, "schema"),
        ({"model": "no-such-model"}, "model"),
    ]:
        r = api.put("/v1/profiles/helpdesk", json=bad)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["type"] == "invalid_request_error" and param_hint in r.json()["error"]["message"]
    assert api.get("/v1/profiles/helpdesk").json()["params"]["temperature"] == 0.1
    assert ask(api, {"model": "profile/helpdesk"}).status_code == 200

    # the file is the source of truth: an edit by hand is picked up without a restart
    path = api.get("/v1/profiles").json()["file"]
    Path(path).write_text(Path(path).read_text().replace("temperature = 0.1", "temperature = 0.9"))
    deadline = time.monotonic() + 10
    while api.get("/v1/profiles/helpdesk").json()["params"]["temperature"] != 0.9:
        assert time.monotonic() < deadline, "the edited file was not reloaded"
        time.sleep(0.2)

    assert api.delete("/v1/profiles/helpdesk").json()["deleted"] is True
    assert ask(api, {"model": "profile/helpdesk"}).status_code == 404
    assert api.delete("/v1/profiles/chat").status_code == 400  # a built-in
    assert api.delete("/v1/profiles/helpdesk").status_code == 404


def test_replacing_a_builtin_and_deleting_the_replacement_restores_it(api):
    r = api.put("/v1/profiles/chat", json={"system_prompt": "Be terse.", "format": "plain"})
    assert r.status_code == 200 and r.json()["builtin"] is False
    out = ask(api, {"model": "profile/chat", "max_tokens": 40}).json()
    assert step(out["parley_trace"], "profile")["format"] == "plain"
    assert "**" not in out["choices"][0]["message"]["content"]
    gone = api.delete("/v1/profiles/chat").json()
    assert gone["builtin_restored"] is True
    assert api.get("/v1/profiles/chat").json()["builtin"] is True


def test_profiles_need_the_admin_scope(tmp_path):
    srv = start_server(tmp_path, "--slots", "1", "--ctx", "512")
    try:
        admin, chat = admin_and_chat_keys(srv)
        assert httpx.get(srv.url + "/v1/profiles").status_code == 401
        assert httpx.get(srv.url + "/v1/profiles", headers={"Authorization": f"Bearer {chat}"}).status_code == 403
        put = httpx.put(srv.url + "/v1/profiles/x", json={}, headers={"Authorization": f"Bearer {chat}"})
        assert put.status_code == 403
        ok = httpx.get(srv.url + "/v1/profiles", headers={"Authorization": f"Bearer {admin}"})
        assert ok.status_code == 200
        # a chat key may still use a profile
        r = httpx.post(
            srv.url + "/v1/chat/completions",
            timeout=60,
            headers={"Authorization": f"Bearer {chat}"},
            json={"model": "profile/chat", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]},
        )
        assert r.status_code == 200
    finally:
        stop_server(srv)


def test_a_profile_can_enable_the_grammar_pass_and_the_trace_lists_its_work(api):
    steps = ["leaked_tokens", "output_guard", "repetition", "truncation", "fences", "grammar"]
    assert api.put("/v1/profiles/edited", json={"steps": steps, "format": "chat"}).status_code == 201
    body = ask(api, {"model": "profile/edited", "max_tokens": 30}).json()
    post = next(stage for stage in body["parley_trace"] if stage["stage"] == "postprocess")
    assert [s["step"] for s in post["steps"]] == steps  # the profile's list; html is left out
    grammar = step(body["parley_trace"], "grammar")
    assert isinstance(grammar["changes"], list) and "flesch_reading_ease" in grammar["readability"]
    assert api.delete("/v1/profiles/edited").status_code == 200


def test_ratings_move_an_adaptive_profiles_choice_and_the_report_shows_it(srv, api):
    question = {"role": "user", "content": "What is the capital of Peru?"}  # a simple one: bucket "simple"

    def adaptive() -> tuple[dict, str]:
        r = ask(api, {"model": "profile/chat", "messages": [question], "max_tokens": 4})
        assert r.status_code == 200, r.text
        return step(r.json()["parley_trace"], "params")["adaptive"], r.json()["id"]

    first, cid = adaptive()
    assert first["mode"] == "default" and first["bucket"] == "simple" and first["explore"] == 0
    assert adaptive()[0]["arm"] == first["arm"]  # no ratings, no exploration: the same choice
    while api.get("/admin/stats", params={"window": 600}).json()["log_pending"]:
        time.sleep(0.05)
    assert api.post("/v1/feedback", json={"completion_id": cid, "rating": "down"}).status_code == 201
    deadline = time.monotonic() + 15
    while (moved := adaptive()[0])["arm"] == first["arm"]:
        assert time.monotonic() < deadline, "a bad rating of the default setting did not move the choice"
        time.sleep(0.3)
    assert moved["mode"] == "exploit" and moved["bucket_ratings"] == 1

    out = subprocess.run([sys.executable, "-m", "parley", "params", "report", "--json"], capture_output=True,
                         text=True, env={**os.environ, "PARLEY_DATA_DIR": str(srv.data_dir)}, check=True)
    rows = json.loads(out.stdout)["rows"]
    rated = next(r for r in rows if r["profile"] == "chat" and r["arm"] == first["arm"])
    assert rated["bucket"] == "simple" and rated["ratings"] == 1 and rated["mean_reward"] == 0.0
    assert not rated["exploit"]
    assert any(r["exploit"] and r["arm"] == moved["arm"] for r in rows if r["profile"] == "chat")
