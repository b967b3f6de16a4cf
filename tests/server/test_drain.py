"""SIGTERM drains (issue 17): a stream in flight runs to its end, a new request gets a 503 with Retry-After
(and /ready says so), and the process exits cleanly once nothing is in flight."""

from __future__ import annotations

import json
import signal

import httpx

from tests.conftest import MODEL, start_server, stop_server


def test_sigterm_finishes_streams_in_flight_and_refuses_new_requests(tmp_path):
    srv = start_server(tmp_path, "--slots", "2", "--ctx", "1024")
    try:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Tell me a long story."}], "stream": True,
                "max_tokens": 120, "ignore_eos": True, "stream_options": {"include_usage": True}}  # fmt: skip
        chunks, finish, refused = [], None, None
        with httpx.Client(base_url=srv.url, timeout=120) as http, http.stream("POST", "/v1/chat/completions",
                                                                             json=body) as resp:  # fmt: skip
            assert resp.status_code == 200
            for line in resp.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                chunks.append(chunk)
                if len(chunks) == 3:
                    srv.proc.send_signal(signal.SIGTERM)
                    with httpx.Client(base_url=srv.url, timeout=30) as other:
                        refused = other.post("/v1/chat/completions", json={**body, "stream": False})
                        ready = other.get("/ready")
                for choice in chunk.get("choices", []):
                    finish = choice.get("finish_reason") or finish
        assert refused is not None and refused.status_code == 503 and refused.headers["retry-after"]
        assert refused.json()["error"]["code"] == "shutting_down" and ready.status_code == 503
        assert finish == "length" and chunks[-1]["usage"]["completion_tokens"] == 120  # the stream ran to its end
        assert srv.proc.wait(timeout=30) == 0
    finally:
        if srv.proc.poll() is None:
            stop_server(srv)
