"""The OpenAI wire format as an upstream speaks it: the request body a `GenerationRequest` becomes, by the
upstream's flavor, and the `Chunk`s its stream events become."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from parley.config import UpstreamSpec
from parley.engines.base import Chunk, GenerationRequest, GenerationStats, ToolCallFragment
from parley.errors import InvalidRequest


def request_body(spec: UpstreamSpec, request: GenerationRequest) -> dict[str, Any]:
    """The body of `/chat/completions` (messages) or `/completions` (a text prompt), always streamed."""
    p = request.params
    model = request.adapter.name if request.adapter is not None else (spec.model or spec.name)
    body: dict[str, Any] = {"model": model, "stream": True, "stream_options": {"include_usage": True},
                            "max_tokens": p.max_tokens, "temperature": p.temperature, "top_p": p.top_p}  # fmt: skip
    if request.messages is not None:
        body["messages"] = request.messages
        body |= request.tools or {}  # the upstream's own tool syntax and parser
    else:
        body["prompt"] = request.prompt
    optional = {"seed": p.seed, "presence_penalty": p.presence_penalty or None,
                "frequency_penalty": p.frequency_penalty or None, "stop": p.stop or None,
                "logit_bias": {str(k): v for k, v in p.logit_bias.items()} or None}  # fmt: skip
    if spec.flavor in ("vllm", "llamacpp"):  # sampling fields both take beyond OpenAI's
        optional |= {"top_k": p.top_k or None, "min_p": p.min_p or None, "ignore_eos": p.ignore_eos or None}
    if spec.flavor == "vllm":
        optional["repetition_penalty"] = p.repetition_penalty if p.repetition_penalty != 1.0 else None
    elif spec.flavor == "llamacpp":
        optional["repeat_penalty"] = p.repetition_penalty if p.repetition_penalty != 1.0 else None
        if p.dry_multiplier:
            optional |= {"dry_multiplier": p.dry_multiplier, "dry_base": p.dry_base,
                         "dry_allowed_length": p.dry_allowed_length, "dry_penalty_last_n": p.dry_penalty_last_n}
    body |= {k: v for k, v in optional.items() if v is not None}
    body |= structured_output(spec, request)
    return body


def structured_output(spec: UpstreamSpec, request: GenerationRequest) -> dict[str, Any]:
    """Constrained decoding in the upstream's own fields: llama.cpp servers take the same GBNF grammar the
    embedded engine uses; vLLM and hosted APIs take `response_format` (vLLM compiles it with its
    structured-output backend)."""
    p = request.params
    if p.grammar is None:
        return {}
    if spec.flavor == "llamacpp":
        return {"grammar": p.grammar}
    if p.response_format is not None:
        return {"response_format": p.response_format}
    if spec.flavor == "vllm":
        return {"structured_outputs": {"grammar": p.grammar}}
    raise InvalidRequest(f"The model `{spec.name}` cannot constrain its output to a grammar.", param="model")


@dataclass
class StreamState:
    """What a stream has said so far: its finish reason, its usage, and the tokens counted from its chunks."""

    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    counted: int = 0
    done: bool = False

    def stats(self) -> GenerationStats:
        usage = self.usage or {}
        details = usage.get("prompt_tokens_details") or {}
        return GenerationStats(prompt_tokens=int(usage.get("prompt_tokens") or 0),
                               completion_tokens=int(usage.get("completion_tokens") or self.counted),
                               cached_tokens=int(details.get("cached_tokens") or 0))  # fmt: skip


class UpstreamStreamError(Exception):
    """The upstream sent an error event in its stream."""


def parse_event(line: str, state: StreamState) -> Chunk | None:
    """One SSE line: a chunk with content, or None (framing, a role-only delta, usage, the finish)."""
    if not line.startswith("data:"):
        return None  # comments, `event:` lines, blank separators
    data = line[5:].strip()
    if data == "[DONE]":
        state.done = True
        return None
    obj = json.loads(data)
    if "error" in obj:
        error = obj["error"]
        raise UpstreamStreamError(error.get("message", str(error)) if isinstance(error, dict) else str(error))
    if obj.get("usage"):
        state.usage = obj["usage"]
    choices = obj.get("choices") or []
    if not choices:
        return None
    choice = choices[0]
    if choice.get("finish_reason"):
        state.finish_reason = choice["finish_reason"]
    delta = choice.get("delta")
    if delta is None:  # a text completion's chunk
        text, reasoning, calls = choice.get("text") or "", "", []
    else:
        text = delta.get("content") or ""
        reasoning = delta.get("reasoning_content") or delta.get("reasoning") or ""
        calls = [_fragment(c) for c in delta.get("tool_calls") or []]
    if not (text or reasoning or calls):
        return None
    n = 1 if (text or reasoning) else 0  # one token per chunk, as token-streaming servers send them
    state.counted += n
    return Chunk(text, n, reasoning=reasoning, tool_calls=calls)


def _fragment(call: dict[str, Any]) -> ToolCallFragment:
    function = call.get("function") or {}
    return ToolCallFragment(int(call.get("index", 0)), call.get("id"), function.get("name"),
                            function.get("arguments") or "")  # fmt: skip


def final_chunk(state: StreamState) -> Chunk:
    """The last chunk: why it stopped, and the upstream's counts (the tokens its usage counts beyond the
    chunks seen)."""
    stats = state.stats()
    return Chunk("", max(0, stats.completion_tokens - state.counted), state.finish_reason or "stop", stats)


def error_message(status: int, body: bytes) -> str:
    try:
        error = json.loads(body).get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    return str(message or body[:300].decode("utf-8", "replace") or f"HTTP {status}")
