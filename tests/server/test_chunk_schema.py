"""Every streamed chat chunk, with tool calls, logprobs and usage, validates against OpenAI's published schema
of a chunk (`CreateChatCompletionStreamResponse`, vendored in tests/data with its source and licence). The
OpenAPI 3.0 `nullable` is turned into JSON Schema's null type; nothing else is changed."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import jsonschema
import pytest

from tests.conftest import MODEL
from tests.server.test_tools import QUESTION, TOOLS

VENDORED = json.loads((Path(__file__).parents[1] / "data" / "openai_chat_chunk_schema.json").read_text())


def json_schema(node):
    """OpenAPI 3.0 → JSON Schema: `nullable: true` becomes a null alternative."""
    if isinstance(node, list):
        return [json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: json_schema(v) for k, v in node.items()}
    if node.pop("nullable", False):
        if "type" in node and "enum" not in node:
            node["type"] = [node["type"], "null"] if isinstance(node["type"], str) else [*node["type"], "null"]
        elif "enum" in node:
            node = {"anyOf": [node, {"type": "null"}]}
        else:
            node = {"anyOf": [node, {"type": "null"}]}
    return node


SCHEMA = {**json_schema(VENDORED["components"]["schemas"][VENDORED["root"]]),
          "components": json_schema(VENDORED["components"])}  # fmt: skip
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def stream(http, body: dict) -> list[dict]:
    chunks = []
    with http.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
    return chunks


@pytest.mark.parametrize(
    "extra",
    [
        {"tools": TOOLS, "tool_choice": "required"},
        {"tools": TOOLS, "tool_choice": "auto"},
        {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "add"}}},
        {"tools": TOOLS, "tool_choice": "required", "parallel_tool_calls": False},
        {"logprobs": True, "top_logprobs": 2},
        {},
    ],
    ids=["required", "auto", "named", "single", "logprobs", "plain"],
)
def test_streamed_chunks_match_openais_published_schema(http: httpx.Client, extra):
    chunks = stream(http, {"model": MODEL, "messages": QUESTION, "max_tokens": 60, "temperature": 0,
                           "stream_options": {"include_usage": True}, **extra})  # fmt: skip
    assert chunks
    for chunk in chunks:
        errors = sorted(VALIDATOR.iter_errors(chunk), key=lambda e: list(e.path))
        assert not errors, f"{chunk}\n" + "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    if extra.get("tool_choice") not in (None, "auto"):
        fragments = [f for c in chunks if c["choices"] for f in c["choices"][0]["delta"].get("tool_calls", [])]
        assert fragments and fragments[0]["id"] and fragments[0]["type"] == "function"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
