"""What the continuous batcher schedules: sequences (requests in flight) in slots (llama.cpp sequence ids),
and the events a sequence sends back to its request."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import llama_cpp

from parley.engines.base import AdapterRef, SamplingParams
from parley.engines.llamacpp.lazy import LazyGrammar


@dataclass
class TokenEvent:
    token: int
    piece: bytes
    logprob: float | None = None  # when the request asked for logprobs
    top: list[tuple[int, float]] | None = None  # the most likely tokens at this position, with theirs


@dataclass
class PromptEvent:
    """The prompt's tokens with their log-probabilities (None for the first), before the first token."""

    entries: list[tuple[int, float | None, list[tuple[int, float]]]]


@dataclass
class DoneEvent:
    finish_reason: str  # stop | length | cancelled | error
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    error: str | None = None
    queue_s: float | None = None  # submitted → given a slot (None: never scheduled)


Event = TokenEvent | PromptEvent | DoneEvent

# Why a sequence is asked to end before the model ends it.
CANCEL = "cancelled"  # the client went away or the server is shutting down
STOP = "stop"  # the caller has what it needs: a stop sequence, a post-processing step


@dataclass(eq=False)
class Sequence:
    """One request in flight. Fields after `emit` belong to the scheduler thread."""

    id: str
    prompt: list[int]
    params: SamplingParams
    sampler: llama_cpp.llama_sampler_p | None
    emit: Callable[[Event], None]
    adapter: AdapterRef | None = None
    grammar: llama_cpp.llama_sampler_p | None = None  # consulted at every draw (constrained.py)
    lazy: LazyGrammar | None = None  # a grammar that applies after a trigger (becomes `grammar` then)
    end_requested: str | None = None  # CANCEL or STOP, set from any thread
    slot: Slot | None = None
    n_prompt_done: int = 0
    n_cached: int = 0
    n_generated: int = 0
    pending: int | None = None  # sampled but not yet decoded
    prompt_lp: list[tuple[int, float | None, list[tuple[int, float]]]] | None = None  # params.prompt_logprobs
    order: int = 0
    follow: tuple[Sequence, int] | None = None  # (leader, tokens): copy the leader's prefix once computed
    submitted: float = field(default_factory=time.perf_counter)
    scheduled: float | None = None  # when it got a slot

    def free_samplers(self) -> None:
        """Free the sampler chain and the grammar (applied or waiting for its trigger); safe to call twice."""
        if self.sampler:
            llama_cpp.llama_sampler_free(self.sampler)
            self.sampler = None
        if self.grammar is not None:
            llama_cpp.llama_sampler_free(self.grammar)
            self.grammar = None
        if self.lazy is not None:
            self.lazy.free()

    @property
    def queue_s(self) -> float | None:
        return None if self.scheduled is None else self.scheduled - self.submitted


@dataclass(eq=False)
class Slot:
    id: int  # the llama.cpp sequence id
    tokens: list[int] = field(default_factory=list)  # what the KV cache holds for this sequence, in order
    adapter: AdapterRef | None = None  # the adapter `tokens` were computed under
    seq: Sequence | None = None
    last_used: float = 0.0


def emit(seq: Sequence, event: Event) -> None:
    """Hand an event to the sequence's request; if its event loop is gone (shutdown), the sequence ends."""
    try:
        seq.emit(event)
    except RuntimeError:
        seq.end_requested = seq.end_requested or CANCEL
