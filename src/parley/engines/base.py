"""The Engine seam: what the pipeline needs from anything that can run a model.

An engine takes a `GenerationRequest` (prompt token ids, or chat messages for an engine that applies its own
template, with per-request sampling and an optional adapter) and streams `Chunk`s. What it can do is declared
in `ModelInfo.capabilities`; the pipeline asks, never probes.
"""

from __future__ import annotations

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
    grammar_trigger: str | None = None  # the grammar applies only after the model writes this (lazily)
    logprobs: int | None = None  # None: none; 0: the chosen token's; k: and the k most likely alternatives
    prompt_logprobs: bool = False  # also the prompt tokens' (with `logprobs` alternatives): no prefix reuse
    # the same constraint in OpenAI's form ({"type": "json_object"} or a json_schema), for upstreams that take it
    response_format: dict[str, Any] | None = None


@dataclass(frozen=True)
class AdapterRef:
    """A LoRA adapter applied to one request, by name, at a scale. `version` tells a retrained adapter of the
    same name apart. Its identity is part of the KV cache's: a prompt prefix computed under one adapter (or
    version, or scale) is never reused under another."""

    name: str
    scale: float = 1.0
    version: str = ""


@dataclass
class GenerationRequest:
    """Exactly one of `prompt_tokens` (engines with `capabilities.chat_template`: the pipeline rendered and
    tokenised the prompt), `messages` (engines that apply their own template, such as an upstream server) and
    `prompt` (a text completion's prompt, for engines that tokenise it themselves)."""

    id: str
    params: SamplingParams
    prompt_tokens: list[int] | None = None
    messages: list[dict[str, Any]] | None = None
    adapter: AdapterRef | None = None
    prompt: str | None = None
    # with `messages`: OpenAI's `tools`, `tool_choice` and `parallel_tool_calls`, for the engine's own tool syntax
    tools: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.prompt_tokens, self.messages, self.prompt)) != 1:
            raise ValueError("a generation request carries one of prompt_tokens, messages or prompt")


@dataclass
class GenerationStats:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    queue_s: float | None = None  # waiting for a slot, when the engine knows it
    route: dict[str, Any] | None = None  # where an engine that routes sent the request (replica, attempts)


@dataclass
class ToolCallFragment:
    """A piece of one tool call in a stream, as OpenAI streams them: `id` and `name` arrive once, in the first
    fragment of the call at `index`; `arguments` arrive as string pieces that concatenate to JSON."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass
class TokenLogprob:
    """A generated token's log-probability under the model (the log-softmax of its raw logits, before any
    sampling step), and the most likely alternatives at that position, as OpenAI reports them."""

    token: str
    bytes: list[int]
    logprob: float | None  # None only for a prompt's first token, which nothing predicts
    top_logprobs: list[TokenLogprob] = field(default_factory=list)


@dataclass
class Chunk:
    """A piece of a generation. The last chunk of a stream carries `finish_reason` and `stats`.

    `text` is answer content; `reasoning` is thinking text a reasoning model emits apart from the answer;
    `tool_calls` are fragments of function calls.
    """

    text: str
    n_tokens: int = 0
    finish_reason: str | None = None
    stats: GenerationStats | None = None
    reasoning: str = ""
    tool_calls: list[ToolCallFragment] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)  # one per generated token, when asked
    prompt_logprobs: list[TokenLogprob] = field(default_factory=list)  # one per prompt token (first chunk)


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do. Each flag is a promise the pipeline relies on."""

    chat_template: bool = True  # renders and tokenises locally: the pipeline sends token ids
    grammar: bool = True  # GBNF-constrained decoding (response_format)
    tools: bool = False  # tool calls in the stream
    logit_bias: bool = True
    adapters: bool = False  # per-request LoRA adapters
    adapter_format: str = "gguf"  # the adapter files it loads: "gguf" (llama.cpp) or "peft" (vLLM)
    embeddings: bool = False
    logprobs: bool = False  # token log-probabilities (SamplingParams.logprobs)


@dataclass
class ModelInfo:
    id: str
    kind: str  # the engine kind that serves it, as declared in settings ("llamacpp", ...)
    source: str  # a GGUF path, or an upstream URL
    context_window: int  # per sequence
    n_vocab: int
    created: int
    capabilities: Capabilities = field(default_factory=Capabilities)
    owned_by: str = "parley"
    details: dict[str, Any] = field(default_factory=dict)


class GenerationStream(Protocol):
    """What `Engine.generate` returns: the request's chunks.

    `stop()` ends the request early because the caller has what it wants (a stop sequence, a post-processing
    step); `aclose()` cancels it (the client left). Either frees its slot, whether or not the stream was read.
    """

    def __aiter__(self) -> GenerationStream: ...

    async def __anext__(self) -> Chunk: ...

    async def stop(self) -> None: ...

    async def aclose(self) -> None: ...


class AdapterHost(Protocol):
    """An engine with `capabilities.adapters`: LoRA adapters loaded and unloaded while it serves."""

    async def load_adapter(self, ref: AdapterRef, path: str) -> None:
        """Load the adapter file; requests may name `ref` once this returns. Raises ValueError if the file is
        not an adapter for this model."""
        ...

    async def unload_adapter(self, ref: AdapterRef) -> None:
        """No new request may use `ref`; its memory is freed once the requests using it have ended."""
        ...


class Engine(Protocol):
    """A model that can be prompted. Implementations: `parley.engines.llamacpp.LlamaCppEngine`,
    `parley.engines.scripted.ScriptedEngine` (a fake for tests)."""

    info: ModelInfo

    def tokenize(self, text: str, *, special: bool = True) -> list[int]: ...

    def detokenize(self, tokens: list[int]) -> str: ...

    def apply_chat_template(self, messages: list[dict[str, str]]) -> str: ...

    def special_token_texts(self) -> list[str]: ...

    async def generate(self, request: GenerationRequest) -> GenerationStream:
        """Admit the request now (raising `EngineOverloaded` if it cannot wait) and stream its output."""
        ...

    def status(self) -> dict[str, Any]: ...

    def close(self) -> None: ...
