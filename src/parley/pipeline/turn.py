"""The turn: one record that carries a request's data through the six stages, and the trace they leave on it.

Services the turn uses (engine, guards, the caller's key) are on `TurnContext` beside it, not in it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from parley.engines.base import AdapterRef, SamplingParams, TokenLogprob, ToolCallFragment
from parley.protocol.openai import ChatCompletionRequest, CompletionRequest, StepTrace, TraceEntry

if TYPE_CHECKING:
    from parley.profiles import Profile
    from parley.tools.formats import ToolFormat
    from parley.tools.spec import ToolRequest


@dataclass
class Message:
    role: str
    content: str
    # OpenAI's fields of a tool turn (`tool_calls`, `tool_call_id`), for engines that apply their own template
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Delta:
    """A piece of the answer as it moves through the streaming stages: content `text` (which post-processing
    filters), `reasoning` text and tool-call fragments (which pass through)."""

    text: str
    n_tokens: int = 0
    finish_reason: str | None = None
    reasoning: str = ""
    tool_calls: list[ToolCallFragment] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)  # of the tokens generated (they pass through)


@dataclass
class TokenCounts:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class GuardState:
    """What the guards decided for this turn and what the output guard needs to know."""

    canary: str | None = None  # planted in the operator's system prompt, to see it leak
    system_prompt: str | None = None  # the operator's system prompt, before the canary was planted
    refusal: str | None = None  # an answer decided without the model (an off-topic question)
    dictated: list[str] = field(default_factory=list)  # the input quoted these: an answer opening so is hijacked
    # classifier readings whose verdict can only flag, left to finish while the model answers (guard_input.py):
    # (message index, role, policy, the findings to come, started at the answer's first token)
    reading: list[tuple[int, str, Any, Deferred]] = field(default_factory=list)

    def start_readings(self) -> None:
        """The answer's first token has arrived: the readings may take the cores now."""
        for *_, reading in self.reading:
            reading.start()


class Deferred:
    """A call made later (`start`), for a result that is a `concurrent.futures.Future`: a guard reading started
    when the answer's first token has arrived, so that it does not take the cores from the prompt's prefill."""

    def __init__(self, begin: Callable[[], Future[Any]]) -> None:
        self._begin: Callable[[], Future[Any]] | None = begin
        self._future: Future[Any] | None = None

    def start(self) -> Future[Any]:
        """The result to come (started now if it was not): the same future every time."""
        if self._future is None:
            begin, self._begin = self._begin, None
            if begin is None:  # cancelled before it started
                self._future = Future()
                self._future.cancel()
            else:
                try:
                    self._future = begin()
                except Exception as exc:  # noqa: BLE001 - e.g. the readers' process could not start: noted later
                    self._future = Future()
                    self._future.set_exception(exc)
        return self._future

    def started(self) -> bool:
        return self._future is not None

    def cancel(self) -> None:
        if self._future is None:
            self._begin = None
        self.start().cancel()


@dataclass
class Timing:
    """Monotonic timestamps (time.perf_counter) of the turn's life, and the wall-clock time it began."""

    started: float = field(default_factory=time.perf_counter)
    started_at: float = field(default_factory=time.time)
    first_token: float | None = None
    last_token: float | None = None
    ended: float | None = None
    queued_s: float | None = None  # waiting for a slot, as the engine reports it
    itl_s: list[float] = field(default_factory=list)  # inter-token latency: one gap per token after the first

    def tokens_arrived(self, n_tokens: int, now: float) -> None:
        """A delta reached the output stage: the first token, or `n_tokens` more (a gap shared among them)."""
        if self.first_token is None:
            self.first_token = self.last_token = now
        elif n_tokens > 0 and self.last_token is not None:
            self.itl_s.extend([(now - self.last_token) / n_tokens] * n_tokens)
            self.last_token = now

    def wall(self, t: float) -> float:
        """A perf_counter time of this turn as epoch seconds."""
        return self.started_at + (t - self.started)

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.started

    @property
    def latency_s(self) -> float | None:
        return None if self.ended is None else self.ended - self.started


Outcome = Literal["finished", "failed", "cancelled"]


@dataclass
class Turn:
    kind: Literal["chat", "completion"]
    request: ChatCompletionRequest | CompletionRequest
    want_trace: bool = False
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    # input
    profile_name: str | None = None  # asked for by the X-Parley-Profile header (the route sets it)
    profile: Profile | None = None
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
    grammar_trigger: str | None = None  # the grammar applies after the model writes this (tools under auto)
    tools: ToolRequest | None = None
    tool_format: ToolFormat | None = None
    server_tools: frozenset[str] = frozenset()  # tools Parley runs itself (MCP), in a tool loop's step
    step: int = 0  # the step of a tool loop
    guard: GuardState = field(default_factory=GuardState)
    # model
    params: SamplingParams | None = None
    adapter: AdapterRef | None = None
    route: str = ""  # where the model stage sent it: "<kind>:<model>", and an upstream's replica after "@"
    # output
    raw_text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCallFragment] = field(default_factory=list)  # merged: one per call
    logprobs: list[TokenLogprob] = field(default_factory=list)  # every generated token's, when asked
    prompt_logprobs: list[TokenLogprob] = field(default_factory=list)  # a completion's with echo + logprobs
    # postprocess and final
    text: str = ""
    finish_reason: str | None = None
    usage: TokenCounts = field(default_factory=TokenCounts)
    # the end (set once, when the turn-end hook runs)
    timing: Timing = field(default_factory=Timing)
    outcome: Outcome | None = None
    error: BaseException | None = None

    notes: dict[str, dict[str, Any]] = field(default_factory=dict)
    step_times: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # stage → [(step, seconds)]
    trace: list[TraceEntry] = field(default_factory=list)
    # when each stage and each step that runs in one piece ran ("stage" or "stage.step" → perf_counter start,
    # end); a streaming stage's window spans its first to its last delta
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def log_id(self) -> str:
        """The completion log's id: the response id, or for a tool-loop step whose calls Parley ran,
        `<id>-step<N>` (the response id belongs to the answer)."""
        if self.server_tools and self.tool_calls and all(c.name in self.server_tools for c in self.tool_calls):
            return f"{self.id}-step{self.step}"
        return self.id

    @property
    def constrained(self) -> bool:
        """The whole answer follows a grammar (JSON); tool calls under `auto` constrain only the calls."""
        return self.grammar is not None and self.grammar_trigger is None

    def note(self, name: str, **detail: Any) -> None:
        """Record what a stage or step changed or decided; it appears in the trace under that name."""
        self.notes.setdefault(name, {}).update(detail)

    def step_ran(self, stage: str, step: str, seconds: float, window: tuple[float, float] | None = None) -> None:
        self.step_times.setdefault(stage, []).append((step, seconds))
        if window is not None:
            self.windows[f"{stage}.{step}"] = window

    def record(self, stage: str, seconds: float, window: tuple[float, float] | None = None) -> None:
        """Close a stage's trace entry: its own notes, and one entry per step it ran, in order."""
        if window is not None:
            self.windows[stage] = window
        steps = [
            StepTrace(step=step, duration_ms=round(s * 1000, 3), detail=self.notes.get(step, {}))
            for step, s in self.step_times.get(stage, [])
        ]
        self.trace.append(
            TraceEntry(stage=stage, duration_ms=round(seconds * 1000, 3), detail=self.notes.get(stage, {}), steps=steps)
        )
