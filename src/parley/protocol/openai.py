"""Request and response models of OpenAI's chat and completions APIs, plus Parley's namespaced extensions.

Unknown request fields are accepted and ignored (as vLLM does), so SDKs that send newer fields keep working.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError


def lone_surrogate_at(value: Any, path: str = "") -> str | None:
    """Where a JSON value holds a string that is not valid Unicode (a lone UTF-16 surrogate such as
    "\\ud800", which JSON allows and UTF-8 cannot encode), as OpenAI names parameters; None when nowhere."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or None
        return None
    if isinstance(value, dict):
        items = ((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    for where, item in items:
        if (found := lone_surrogate_at(item, where)) is not None:
            return found
    return None


class Body(BaseModel):
    """A request body. Strings must be valid Unicode: a lone surrogate is refused with the parameter named."""

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        if (where := lone_surrogate_at(data)) is not None:
            raise PydanticCustomError(
                "invalid_unicode", "the string holds a lone surrogate, which is not valid Unicode",
                {"param": where},
            )  # fmt: skip
        return data


class _Request(Body):
    model_config = ConfigDict(extra="allow")


class StreamOptions(BaseModel):
    include_usage: bool = False


class JsonSchemaFormat(BaseModel):
    name: str = Field("response", max_length=64)
    description: str | None = None
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None

    model_config = ConfigDict(populate_by_name=True)


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class ChatMessage(BaseModel):
    """A message as sent. `content` may also be a JSON object: Parley's structured input."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | dict[str, Any] | None = None
    name: str | None = None


class SamplingFields(_Request):
    """Sampling parameters shared by both endpoints (OpenAI's, plus vLLM's `top_k`, `min_p`, `ignore_eos`)."""

    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=-1)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    repetition_penalty: float | None = Field(None, gt=0.0, le=2.0)
    dry_multiplier: float | None = Field(None, ge=0.0, le=5.0)
    dry_base: float | None = Field(None, ge=1.0, le=4.0)
    dry_allowed_length: int | None = Field(None, ge=1, le=64)
    dry_penalty_last_n: int | None = Field(None, ge=-1)
    logit_bias: dict[str, float] | None = None
    n: int = Field(1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    ignore_eos: bool = False
    user: str | None = None


class ChatCompletionRequest(SamplingFields):
    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: ResponseFormat | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None


class CompletionRequest(SamplingFields):
    model: str
    prompt: str | list[str] | list[int]
    max_tokens: int | None = Field(16, ge=1)
    echo: bool = False
    suffix: str | None = None
    logprobs: int | None = Field(None, ge=0, le=5)
    best_of: int | None = Field(None, ge=1)


# ---- responses ----------------------------------------------------------------------------------


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None


class StepTrace(BaseModel):
    step: str
    duration_ms: float
    detail: dict[str, Any] = Field(default_factory=dict)


class TraceEntry(BaseModel):
    stage: str
    duration_ms: float
    detail: dict[str, Any] = Field(default_factory=dict)
    steps: list[StepTrace] = Field(default_factory=list)


class FunctionCall(BaseModel):
    name: str
    arguments: str  # JSON text


class ToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None
    tool_calls: list[ToolCall] | None = None
    reasoning_content: str | None = None  # vLLM's field for a reasoning model's thinking


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str | None
    logprobs: dict[str, Any] | None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None
    parley_trace: list[TraceEntry] | None = None


class ChunkFunction(BaseModel):
    name: str | None = None
    arguments: str | None = None


class ChunkToolCall(BaseModel):
    """A tool-call fragment: `id`, `type` and the function's `name` only in a call's first fragment."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: ChunkFunction


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ChunkToolCall] | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    parley_trace: list[TraceEntry] | None = None


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: str | None
    logprobs: dict[str, Any] | None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    parley_trace: list[TraceEntry] | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "parley"
    context_window: int | None = None
    root: str | None = None  # vLLM: the base model an adapter applies to
    parent: str | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class EmbeddingRequest(Body):
    input: str | list[str] | list[int] | list[list[int]]
    model: str
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str  # base64: the float32 little-endian bytes


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class ModerationRequest(Body):
    input: str | list[str] | list[dict[str, Any]]
    model: str | None = None


class ModerationResult(BaseModel):
    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[str]]


class ModerationResponse(BaseModel):
    id: str
    model: str
    results: list[ModerationResult]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


def to_wire(model: BaseModel) -> dict[str, Any]:
    """JSON-ready dict as OpenAI sends it: unset extension fields left out, stream deltas without nulls."""
    data = model.model_dump(mode="json", by_alias=True)
    if data.get("parley_trace") is None:
        data.pop("parley_trace", None)
    for choice in data.get("choices", []):
        message = choice.get("message")
        if message is not None:  # OpenAI sends `refusal` always, the others only when there are some
            for name in ("tool_calls", "reasoning_content"):
                if message.get(name) is None:
                    message.pop(name, None)
    if data.get("object") == "chat.completion.chunk":
        if data.get("usage") is None:
            data.pop("usage", None)
        for choice in data["choices"]:
            delta = choice["delta"] = {k: v for k, v in choice["delta"].items() if v is not None}
            for call in delta.get("tool_calls", []):  # later fragments carry only index and arguments
                call["function"] = {k: v for k, v in call["function"].items() if v is not None}
                for k in [k for k, v in call.items() if v is None]:
                    del call[k]
    return data
