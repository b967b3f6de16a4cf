"""OpenAI-compatible endpoints: chat completions, completions, models."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from parley.engines.registry import EngineRegistry
from parley.errors import ModelNotFound
from parley.pipeline.runner import Pipeline
from parley.pipeline.turn import Turn
from parley.protocol.openai import (
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    ErrorResponse,
    ModelCard,
    ModelList,
    to_wire,
)
from parley.server.auth import Access
from parley.server.sse import sse_response

router = APIRouter(tags=["OpenAI-compatible"], dependencies=[Depends(Access("chat"))])

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (400, 404, 413, 503)
}
TRACE_HEADER = "x-parley-trace"
PROFILE_HEADER = "x-parley-profile"


def wants_trace(request: Request) -> bool:
    return request.headers.get(TRACE_HEADER, "").lower() in ("1", "true", "yes")


async def respond(request: Request, turn: Turn) -> Response:
    pipeline: Pipeline = request.app.state.pipeline
    run = await pipeline.start(turn, key=getattr(request.state, "api_key", None))
    if turn.request.stream:
        return sse_response(run.chunks(), run.aclose)
    return JSONResponse(to_wire(await run.response()))


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses=ERRORS)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
    """Chat completion, whole or streamed (SSE). Header `X-Parley-Trace: 1` adds the stage trace."""
    turn = Turn(kind="chat", request=body, want_trace=wants_trace(request))
    turn.profile_name = request.headers.get(PROFILE_HEADER)
    return await respond(request, turn)


@router.post("/v1/completions", response_model=Completion, responses=ERRORS)
async def completions(body: CompletionRequest, request: Request) -> Response:
    """Raw text completion (no chat template), whole or streamed."""
    turn = Turn(kind="completion", request=body, want_trace=wants_trace(request))
    turn.id = turn.id.replace("chatcmpl-", "cmpl-")
    return await respond(request, turn)


def _cards(registry: EngineRegistry) -> dict[str, ModelCard]:
    """The served models, then each adapter (with the base it applies to as `parent`, as vLLM lists LoRAs)."""
    cards = {}
    for engine in registry.engines.values():
        info = engine.info
        cards[info.id] = ModelCard(id=info.id, created=info.created, owned_by=info.owned_by,
                                   context_window=info.context_window, root=info.id)  # fmt: skip
    for name, served in sorted(registry.adapters.items()):
        base = cards[served.base]
        cards[name] = ModelCard(id=name, created=int(served.created.timestamp()), owned_by=base.owned_by,
                                context_window=base.context_window, root=served.base, parent=served.base)  # fmt: skip
    return cards


@router.get("/v1/models", response_model=ModelList)
async def list_models(request: Request) -> ModelList:
    return ModelList(data=list(_cards(request.app.state.registry).values()))


@router.get("/v1/models/{model_id:path}", response_model=ModelCard, responses=ERRORS)
async def get_model(model_id: str, request: Request) -> ModelCard:
    card = _cards(request.app.state.registry).get(model_id)
    if card is None:
        raise ModelNotFound(f"The model `{model_id}` does not exist.", param="model")
    return card
