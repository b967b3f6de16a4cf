"""`ScriptedEngine`: a fake engine that streams the chunks it is given, for fast tests of everything above the
Engine seam (as httpx's `MockTransport` is for code above the transport). It has a real, if simple, byte-level
tokenizer and a ChatML template, honours `max_tokens` and stop sequences, and records every request it gets
and how each stream ended."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from parley.engines.base import Capabilities, Chunk, GenerationRequest, GenerationStats, ModelInfo
from parley.engines.stops import StopMatcher
from parley.errors import EngineFailed

SPECIALS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")
Script = list[Chunk] | Exception


def chunks_of(text: str, finish: str = "stop") -> list[Chunk]:
    """`text` as a model would stream it: one token per word piece, the last chunk carrying `finish`."""
    pieces = re.findall(r"\s*\S+|\s+", text)
    return [Chunk(p, 1) for p in pieces] + [Chunk("", 0, finish)]


@dataclass
class ScriptedStream:
    chunks: deque[Chunk]
    request: GenerationRequest
    prompt_tokens: int
    ended: str | None = None  # "finished", "stop" (ended early by the caller) or "cancelled"
    _stops: StopMatcher = field(init=False)
    _emitted: int = 0

    def __post_init__(self) -> None:
        self._stops = StopMatcher(self.request.params.stop)

    def __aiter__(self) -> ScriptedStream:
        return self

    async def __anext__(self) -> Chunk:
        if self.ended is not None or not self.chunks:
            raise StopAsyncIteration
        chunk = self.chunks.popleft()
        text, hit = self._stops.feed(chunk.text)
        self._emitted += chunk.n_tokens
        finish = chunk.finish_reason
        if hit:
            finish = "stop"
        elif self._emitted >= self.request.params.max_tokens and finish is None:
            finish = "length"
        if finish is not None:
            self.ended = "finished"
            text += "" if hit else self._stops.flush()
            stats = chunk.stats or GenerationStats(self.prompt_tokens, self._emitted)
            return replace(chunk, text=text, finish_reason=finish, stats=stats)
        return replace(chunk, text=text)

    async def stop(self) -> None:
        self.ended = self.ended or "stop"

    async def aclose(self) -> None:
        self.ended = self.ended or "cancelled"


class ScriptedEngine:
    """Answers each request with the next script (a list of chunks, or an exception to raise while streaming),
    or with `respond(request)` when given a function."""

    kind = "scripted"

    def __init__(
        self,
        scripts: Iterable[Script] = (),
        *,
        respond: Callable[[GenerationRequest], Script] | None = None,
        name: str = "scripted",
        context_window: int = 4096,
        capabilities: Capabilities | None = None,
        admit: Callable[[GenerationRequest], None] | None = None,
    ) -> None:
        self.scripts: deque[Script] = deque(scripts)
        self.respond = respond
        self.admit = admit  # raises to refuse a request at admission (EngineOverloaded, ...)
        self.requests: list[GenerationRequest] = []
        self.streams: list[ScriptedStream] = []
        self.status_calls = 0
        self.closed = False
        self.info = ModelInfo(
            id=name, kind=self.kind, source="scripted", context_window=context_window, n_vocab=256 + len(SPECIALS),
            created=0, capabilities=capabilities or Capabilities(),
        )  # fmt: skip

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        """UTF-8 bytes; with `special`, each template marker is one token above 255."""
        if not special:
            return list(text.encode())
        out: list[int] = []
        for part in re.split("(" + "|".join(map(re.escape, SPECIALS)) + ")", text):
            out.extend([256 + SPECIALS.index(part)] if part in SPECIALS else part.encode())
        return out

    def detokenize(self, tokens: list[int]) -> str:
        raw = bytearray()
        for t in tokens:
            raw.extend(SPECIALS[t - 256].encode() if t >= 256 else bytes([t]))
        return raw.decode("utf-8", errors="replace")

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str:
        turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return turns + "<|im_start|>assistant\n"

    def special_token_texts(self) -> list[str]:
        return list(SPECIALS)

    async def generate(self, request: GenerationRequest) -> ScriptedStream:
        if self.admit is not None:
            self.admit(request)
        self.requests.append(request)
        script = self.respond(request) if self.respond else (self.scripts.popleft() if self.scripts else [])
        n_prompt = len(request.prompt_tokens) if request.prompt_tokens is not None else 0
        stream: ScriptedStream
        if isinstance(script, Exception):
            stream = _Failing(deque(), request, n_prompt, error=script)
        else:
            stream = ScriptedStream(deque(script or chunks_of("")), request, n_prompt)
        self.streams.append(stream)
        return stream

    def status(self) -> dict[str, Any]:
        self.status_calls += 1
        return {"model": self.info.id, "engine": self.kind, "requests": len(self.requests)}

    def close(self) -> None:
        self.closed = True


@dataclass
class _Failing(ScriptedStream):
    error: Exception = field(default_factory=lambda: EngineFailed("scripted failure"))

    async def __anext__(self) -> Chunk:
        raise self.error
