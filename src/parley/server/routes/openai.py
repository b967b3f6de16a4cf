"""OpenAI-compatible endpoints: chat completions, completions, models."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from parley.agent.loop import ToolLoop
from parley.engines.registry import EngineRegistry
from parley.errors import InvalidRequest, ModelNotFound
from parley.pipeline.choices import MAX_N, choice_id, merge_responses, merged_chunks
from parley.pipeline.input import InputStage
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
    key = getattr(request.state, "api_key", None)
    n = turn.request.n
    if isinstance(turn.request, ChatCompletionRequest) and (loop := await tool_loop(request, turn)) is not None:
        if n > 1:
            raise InvalidRequest("n > 1 cannot be combined with MCP tools.", param="n")
        if turn.request.stream:
            return sse_response(loop.chunks(), loop.aclose)
        try:
            return JSONResponse(to_wire(await loop.response()))
        finally:
            await loop.aclose()
    if n > 1:
        return await respond_n(request, turn, n)
    run = await pipeline.start(turn, key=key)
    if turn.request.stream:
        return sse_response(run.chunks(), run.aclose)
    return JSONResponse(to_wire(await run.response()))


async def tool_loop(request: Request, turn: Turn) -> ToolLoop | None:
    """The MCP tool loop, when the chat opts in: the request's `mcp_servers`, else its profile's. Running tools
    on the server takes a key with the `tools` scope (docs/tools.md)."""
    body = turn.request
    extra = body.model_extra or {}
    asked, param = extra.get("mcp_servers"), "mcp_servers"
    profile = None
    if asked is None:
        name = InputStage.profile_name(turn)
        profiles = request.app.state.profiles
        profile = profiles.get(name) if name is not None else None
        asked, param = (profile.mcp_servers if profile is not None else None), "profile.mcp_servers"
    if not asked:
        return None
    if not isinstance(asked, list) or not all(isinstance(n, str) for n in asked):
        raise InvalidRequest("mcp_servers is a list of MCP server names.", param="mcp_servers")
    key = getattr(request.state, "api_key", None)
    await request.app.state.access.authenticate(request, "tools")
    settings = request.app.state.settings
    max_steps = profile.mcp_max_steps if profile is not None and profile.mcp_max_steps else settings.mcp_max_steps
    if (steps := extra.get("mcp_max_steps")) is not None:
        if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= max_steps:
            raise InvalidRequest(f"mcp_max_steps is an integer from 1 to {max_steps}.", param="mcp_max_steps")
        max_steps = steps
    servers = request.app.state.tool_servers.pick(asked, param)
    counted = request.app.state.metrics.mcp_calls
    loop = ToolLoop(request.app.state.pipeline, turn, key, servers, max_steps=max_steps,
                    time_budget=settings.mcp_time_budget,
                    on_call=lambda server, tool, outcome: counted.labels(server, tool, outcome).inc())  # fmt: skip
    await loop.open()
    return loop


async def respond_n(request: Request, turn: Turn, n: int) -> Response:
    """`n > 1`: n turns of the same request, admitted together (so the engine shares their prompt's cache)."""
    if n > MAX_N:
        raise InvalidRequest(f"n may be at most {MAX_N}.", param="n")
    pipeline: Pipeline = request.app.state.pipeline
    key = getattr(request.state, "api_key", None)
    turns = [Turn(kind=turn.kind, request=turn.request.model_copy(update={"n": 1}), want_trace=turn.want_trace,
                  id=choice_id(turn.id, i), profile_name=turn.profile_name) for i in range(n)]  # fmt: skip
    started = await asyncio.gather(*(pipeline.start(t, key=key) for t in turns), return_exceptions=True)
    runs = [r for r in started if not isinstance(r, BaseException)]
    failed = next((r for r in started if isinstance(r, BaseException)), None)
    if failed is not None:  # one was refused (a full queue, bad input): none is answered
        for run in runs:
            await run.aclose()
        raise failed
    if turn.request.stream:
        merged = merged_chunks(runs, turn.id)
        return sse_response(merged, merged.aclose)
    try:
        responses = [await run.response() for run in runs]
    finally:
        for run in runs:
            await run.aclose()
    return JSONResponse(to_wire(merge_responses(responses)))


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
