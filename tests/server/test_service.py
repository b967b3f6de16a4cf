"""Models, health, readiness, status, tokenizer and docs endpoints."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

import httpx
import openai
import pytest

from parley.engines.llamacpp.engine import embedded_model_path
from tests.conftest import MODEL, launch_server, start_server, stop_server


def test_models_list_and_retrieve(client):
    models = client.models.list()
    assert [m.id for m in models.data] == [MODEL]
    card = client.models.retrieve(MODEL)
    assert card.id == MODEL
    assert card.model_extra["context_window"] == 2048


def test_health_and_ready(http):
    assert http.get("/health").json() == {"status": "ok"}
    ready = http.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["models"] == [MODEL]


def test_status_reports_slots(http):
    status = http.get("/parley/status").json()["models"][MODEL]
    assert status["slots_total"] == 4
    assert status["engine"] == "llama.cpp"
    assert 0 <= status["slots_busy"] <= 4


def test_tokenize_messages_uses_the_chat_template(http):
    msgs = [{"role": "user", "content": "Hello"}]
    via_template = http.post("/tokenize", json={"model": MODEL, "messages": msgs}).json()
    plain = http.post("/tokenize", json={"model": MODEL, "prompt": "Hello"}).json()
    assert plain["count"] == len(plain["tokens"]) >= 1
    assert via_template["count"] > plain["count"] + 5
    assert via_template["max_model_len"] == 2048


def test_openapi_docs_are_served(http):
    assert http.get("/docs").status_code == 200
    spec = http.get("/openapi.json").json()
    assert "/v1/chat/completions" in spec["paths"]


@pytest.fixture
def broken_model(tmp_path):
    path = tmp_path / "broken.gguf"
    path.write_bytes(b"this is not a gguf file")
    return path


def test_unloadable_model_keeps_the_server_up_but_not_ready(tmp_path, broken_model):
    srv = launch_server(tmp_path, "--model", str(broken_model), "--slots", "1")
    try:
        deadline = time.monotonic() + 30
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(srv.url + "/ready", timeout=2)
                if ready.status_code == 503 and "loading" not in ready.text:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        assert ready is not None and ready.status_code == 503
        assert "could not load" in ready.json()["error"]["message"]
        assert httpx.get(srv.url + "/health").status_code == 200
        chat = httpx.post(srv.url + "/v1/chat/completions",
                          json={"model": "broken", "messages": [{"role": "user", "content": "x"}]})  # fmt: skip
        assert chat.status_code == 503
        assert chat.json()["error"]["code"] == "engine_unavailable"
    finally:
        stop_server(srv)


def test_missing_model_file_is_refused_at_start(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "parley", "serve", "--model", str(tmp_path / "absent.gguf")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "model file not found" in result.stderr


def test_any_gguf_serves_by_path(tmp_path):
    copy = tmp_path / "my-model.gguf"
    shutil.copy(embedded_model_path(), copy)
    srv = start_server(tmp_path, "--model", str(copy), "--slots", "1", "--ctx", "512")
    try:
        c = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
        assert [m.id for m in c.models.list().data] == ["my-model"]
        resp = c.chat.completions.create(model="my-model", messages=[{"role": "user", "content": "Hi"}], max_tokens=5)
        assert resp.usage.completion_tokens >= 1
        assert c.models.retrieve("my-model").model_extra["context_window"] == 512
    finally:
        stop_server(srv)


def test_tokenize_counts_the_prompt_the_model_sees(http, client, reference_llama):
    """The same steps as a chat completion: normalisation, the input guard's canary, the template."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    system = {"role": "system", "content": "You are the helpdesk."}
    messages = [system, {"role": "user", "content": "Reset\u200b my   router, please."}]
    counted = http.post("/tokenize", json={"model": MODEL, "messages": messages}).json()
    resp = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=2)
    assert counted["count"] == resp.usage.prompt_tokens
    clean = [system, {"role": "user", "content": "Reset my router, please."}]
    assert http.post("/tokenize", json={"model": MODEL, "messages": clean}).json()["count"] == counted["count"]
    template = reference_llama.metadata["tokenizer.chat_template"]
    plain = Jinja2ChatFormatter(template, "<|im_end|>", "<|im_start|>")(messages=clean).prompt
    without_canary = len(reference_llama.tokenize(plain.encode(), add_bos=False, special=True))
    assert counted["count"] > without_canary + 10  # the canary instruction planted in the system prompt
