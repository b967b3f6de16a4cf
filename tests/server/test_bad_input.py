"""Bad input (issue 17): each gets a clear 4xx in OpenAI's error format, within the limits, and the server
stays up for the next request."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import MODEL

CHAT = "/v1/chat/completions"


def body(**fields) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, **fields}


CASES = [
    ("malformed-utf8", b'{"model": "m", "messages": [{"role": "user", "content": "\xff\xfe bad"}]}', (400,)),
    ("lone-surrogate", b'{"model": "m", "messages": [{"role": "user", "content": "\\udc00 x"}]}', (400,)),
    ("megabyte-line", body(messages=[{"role": "user", "content": "a" * 1_000_000}]), (400, 413)),
    ("nested-json", b'{"model": "m", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", (400, 413, 422)),
    ("nested-content", body(messages=[{"role": "user", "content": {"a": {"b": [[[[[[[[[[[[[[[[{}]]]]]]]]]]]]]]]]}}}]),
     (200, 400)),
    ("huge-logit-bias", body(logit_bias={str(i): 1 for i in range(200_000)}), (400, 413)),
    ("ten-thousand-messages", body(messages=[{"role": "user", "content": "hi"}] * 10_000), (400,)),
]


@pytest.mark.parametrize(("name", "payload", "statuses"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_4xx_and_the_server_stays_up(server, name, payload, statuses):
    with httpx.Client(base_url=server.url, timeout=60) as http:
        if isinstance(payload, bytes):
            resp = http.post(CHAT, content=payload, headers={"Content-Type": "application/json"})
        else:
            resp = http.post(CHAT, json=payload)
        assert resp.status_code in statuses, resp.text[:300]
        if resp.status_code >= 400:
            error = resp.json()["error"]
            assert error["message"] and error["type"]
        assert http.get("/ready").status_code == 200


def test_a_valid_surrogate_pair_is_a_character(client):
    resp = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "Say hi \U0001f600"}],
                                          max_tokens=2)  # fmt: skip
    assert resp.choices[0].finish_reason in ("stop", "length")
