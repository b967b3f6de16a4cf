"""The Engine seam: what the pipeline needs from anything that can run a model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class SamplingParams:
    """Per-request decoding parameters. `temperature == 0` means greedy."""

    max_tokens: int
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    dry_multiplier: float = 0.0  # DRY ("don't repeat yourself"): penalises extending a repeated sequence
    dry_base: float = 1.75
    dry_allowed_length: int = 2
    dry_penalty_last_n: int = -1  # -1: the whole context
    logit_bias: dict[int, float] = field(default_factory=dict)
    stop: list[str] = field(default_factory=list)
    ignore_eos: bool = False
    grammar: str | None = None  # GBNF, for constrained decoding


@dataclass
class GenerationRequest:
    id: str
    prompt_tokens: list[int]
    params: SamplingParams


@dataclass
class GenerationStats:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0


@dataclass
class Chunk:
    """A piece of generated text. The last chunk of a stream carries `finish_reason` and `stats`."""

    text: str
    n_tokens: int = 0
    finish_reason: str | None = None
    stats: GenerationStats | None = None


@dataclass
class ModelInfo:
    id: str
    path: str
    context_window: int  # per sequence
    n_vocab: int
    created: int
    owned_by: str = "parley"
    details: dict[str, Any] = field(default_factory=dict)


class Engine(Protocol):
    """A model that can be prompted. Implementations: `parley.engines.llamacpp.LlamaCppEngine`."""

    info: ModelInfo

    def tokenize(self, text: str, *, special: bool = True) -> list[int]: ...

    def detokenize(self, tokens: list[int]) -> str: ...

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str: ...

    def special_token_texts(self) -> list[str]: ...

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        """Admit the request now (raising `EngineOverloaded` if it cannot wait) and stream its output.

        The returned iterator has `aclose()`: it cancels the request and frees its slot, whether or not
        the stream was iterated.
        """
        ...

    def status(self) -> dict[str, Any]: ...

    def close(self) -> None: ...
