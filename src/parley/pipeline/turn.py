"""The turn: one record that carries a request through the six stages, and the trace they leave on it."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from parley.engines.base import Engine, SamplingParams
from parley.protocol.openai import ChatCompletionRequest, CompletionRequest, TraceEntry

if TYPE_CHECKING:
    from parley.guards.service import Guards


@dataclass
class Message:
    role: str
    content: str


@dataclass
class Delta:
    """A piece of the answer as it moves through the streaming stages."""

    text: str
    n_tokens: int = 0
    finish_reason: str | None = None


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0


@dataclass
class Turn:
    kind: Literal["chat", "completion"]
    request: ChatCompletionRequest | CompletionRequest
    want_trace: bool = False
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    # set by the server: the caller's guard policy overrides, the server's guards
    key_policy: str | None = None
    guards: Guards | None = None
    # input
    engine: Engine | None = None
    model: str = ""
    messages: list[Message] = field(default_factory=list)
    raw_prompt: str | list[int] | None = None  # /v1/completions
    stops: list[str] = field(default_factory=list)
    # preprocess
    prompt: str = ""
    prompt_tokens: list[int] = field(default_factory=list)
    response_format: str = "text"
    json_schema: dict[str, Any] | None = None
    grammar: str | None = None
    system_prompt: str | None = None  # the operator's, before the canary was planted
    canary: str | None = None
    refusal: str | None = None  # an answer decided without the model (an off-topic question)
    # model
    params: SamplingParams | None = None
    # output
    raw_text: str = ""
    # postprocess and final
    text: str = ""
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)

    notes: dict[str, dict[str, Any]] = field(default_factory=dict)
    trace: list[TraceEntry] = field(default_factory=list)

    def note(self, stage: str, **detail: Any) -> None:
        """Record what a stage changed or decided; it appears in the trace."""
        self.notes.setdefault(stage, {}).update(detail)

    @property
    def engine_required(self) -> Engine:
        assert self.engine is not None, "the input stage resolves the engine"
        return self.engine
