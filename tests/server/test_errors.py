"""Bad input gets OpenAI's error envelope with the right status: never a 500, never a traceback."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import MODEL

MSG = [{"role": "user", "content": "hi"}]
CHAT = "/v1/chat/completions"


def chat(**fields):
    return {"model": MODEL, "messages": MSG, "max_tokens": 4, **fields}


# past the context window (a long repetition of one word reads as a divergence attack to the input guard)
LONG_LOG = "Summarise this log: " + " ".join(f"line {i}: ok" for i in range(1500))

CASES = [
    # (id, path, raw body or JSON, status, code or None, param or None)
    ("malformed-json", CHAT, b'{"model": "x", "messages": [', 400, None, None),
    ("body-not-object", CHAT, [1, 2, 3], 400, None, None),
    ("missing-model", CHAT, {"messages": MSG}, 400, "missing_required_parameter", "model"),
    ("missing-messages", CHAT, {"model": MODEL}, 400, "missing_required_parameter", "messages"),
    ("empty-messages", CHAT, {"model": MODEL, "messages": []}, 400, "invalid_value", "messages"),
    ("bad-role", CHAT, {"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}, 400, None,
     "messages[0].role"),
    ("content-wrong-type", CHAT, {"model": MODEL, "messages": [{"role": "user", "content": 42}]}, 400, None,
     "messages[0].content"),
    ("missing-user-content", CHAT, {"model": MODEL, "messages": [{"role": "user"}]}, 400, None,
     "messages[0].content"),
    ("image-part", CHAT, chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
     400, None, "messages[0].content[0].type"),
    ("temperature-range", CHAT, chat(temperature=2.5), 400, "invalid_value", "temperature"),
    ("top-p-range", CHAT, chat(top_p=1.5), 400, "invalid_value", "top_p"),
    ("max-tokens-zero", CHAT, chat(max_tokens=0), 400, "invalid_value", "max_tokens"),
    ("presence-penalty-range", CHAT, chat(presence_penalty=3), 400, "invalid_value", "presence_penalty"),
    ("n-too-large", CHAT, chat(n=17), 400, None, "n"),
    ("too-many-stops", CHAT, chat(stop=["a", "b", "c", "d", "e"]), 400, None, "stop"),
    ("stream-options-without-stream", CHAT, chat(stream_options={"include_usage": True}), 400, None,
     "stream_options"),
    ("unknown-response-format", CHAT, chat(response_format={"type": "yaml"}), 400, None, "response_format.type"),
    ("invalid-json-schema", CHAT, chat(response_format={"type": "json_schema",
                                                        "json_schema": {"name": "x", "schema": {"type": 5}}}),
     400, None, "response_format"),
    ("logit-bias-not-token", CHAT, chat(logit_bias={"hello": 5}), 400, None, "logit_bias"),
    ("logit-bias-out-of-range", CHAT, chat(logit_bias={"10": 500}), 400, None, "logit_bias"),
    ("tools-invalid", CHAT, chat(tools=[{"type": "retrieval"}]), 400, None, "tools[0]"),
    ("unknown-model", CHAT, chat(model="gpt-9"), 404, "model_not_found", "model"),
    ("max-tokens-beyond-context", CHAT, chat(max_tokens=100_000), 400, "context_length_exceeded", "max_tokens"),
    ("context-overflow", CHAT, chat(messages=[{"role": "user", "content": LONG_LOG}]), 400,
     "context_length_exceeded", "messages"),
    ("completion-missing-prompt", "/v1/completions", {"model": MODEL}, 400, "missing_required_parameter", "prompt"),
    ("completion-two-prompts", "/v1/completions", {"model": MODEL, "prompt": ["a", "b"]}, 400, None, "prompt"),
    ("completion-empty-prompt", "/v1/completions", {"model": MODEL, "prompt": ""}, 400, None, "prompt"),
    ("completion-blank-prompt", "/v1/completions", {"model": MODEL, "prompt": "   "}, 400, None, "prompt"),
    ("completion-suffix", "/v1/completions", {"model": MODEL, "prompt": "a", "suffix": "b"}, 400, None, "suffix"),
    ("completion-bad-token-id", "/v1/completions", {"model": MODEL, "prompt": [1, 99_999_999]}, 400, None,
     "prompt"),
    ("lone-surrogate", CHAT, b'{"model": "x", "messages": [{"role": "user", "content": "\\ud800 hi"}]}', 400,
     "invalid_value", "messages[0].content"),
    ("lone-surrogate-stop", CHAT, b'{"model": "x", "messages": [{"role": "user", "content": "hi"}], '
     b'"stop": ["\\udfff"]}',
     400, "invalid_value", "stop[0]"),
    ("lone-surrogate-tokenize", "/tokenize", b'{"model": "x", "prompt": "a\\ud83d"}', 400, "invalid_value", "prompt"),
    ("completion-context-overflow", "/v1/completions", {"model": MODEL, "prompt": "word " * 3000}, 400,
     "context_length_exceeded", "prompt"),
    ("unknown-model-retrieve", "/v1/models/nope", None, 404, "model_not_found", "model"),
    ("unknown-path", "/v1/nothing-here", None, 404, "not_found", None),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "status", "code", "param"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gets_its_status_and_envelope(http, path, body, status, code, param):
    if body is None:
        resp = http.get(path)
    elif isinstance(body, bytes):
        resp = http.post(path, content=body, headers={"content-type": "application/json"})
    else:
        resp = http.post(path, json=body)
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["message"] and "Traceback" not in resp.text
    assert err["type"] == ("invalid_request_error" if status < 500 else "server_error")
    if code is not None:
        assert err["code"] == code
    if param is not None:
        assert err["param"] == param


def test_wrong_method_is_405(http):
    resp = http.get(CHAT)
    assert resp.status_code == 405
    assert resp.json()["error"]["code"] == "method_not_allowed"


def test_oversized_body_is_413_from_content_length(http):
    big = json.dumps(chat(messages=[{"role": "user", "content": "x" * 5_000_000}]))
    resp = http.post(CHAT, content=big, headers={"content-type": "application/json"})
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "request_too_large"


def test_oversized_body_is_413_when_streamed_without_length(http):
    def body():
        yield b'{"model": "' + MODEL.encode() + b'", "messages": [{"role": "user", "content": "'
        for _ in range(50):
            yield b"y" * 100_000
        yield b'"}]}'

    resp = http.post(CHAT, content=body(), headers={"content-type": "application/json"})
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "request_too_large"


def test_server_keeps_serving_after_bad_requests(http, client):
    for _ in range(3):
        http.post(CHAT, content=b"{not json", headers={"content-type": "application/json"})
    resp = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=3)
    assert resp.choices[0].message.content is not None


def test_request_that_is_not_json_at_all(http):
    resp = http.post(CHAT, content=b"model=x", headers={"content-type": "application/x-www-form-urlencoded"})
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("timeout", [httpx.Timeout(60)])
def test_stream_request_with_bad_input_fails_before_streaming(http, timeout):
    resp = http.post(CHAT, json=chat(model="gpt-9", stream=True), timeout=timeout)
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/json")
