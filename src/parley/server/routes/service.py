"""Service endpoints: liveness, readiness, engine status, tokenizer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import Field

from parley.engines.registry import EngineRegistry
from parley.errors import EngineUnavailable, InvalidRequest
from parley.pipeline.runner import Pipeline
from parley.pipeline.turn import Turn
from parley.protocol.openai import Body, ChatCompletionRequest, ChatMessage, CompletionRequest, ResponseFormat
from parley.server.auth import Access
from parley.server.routes.openai import PROFILE_HEADER

router = APIRouter(tags=["Service"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(request: Request) -> JSONResponse:
    """Readiness: 200 once the model is loaded, 503 before (or if loading failed)."""
    registry: EngineRegistry = request.app.state.registry
    guards = request.app.state.guards
    if registry.ready and guards.ready:
        return JSONResponse({"status": "ready", "models": list(registry.engines), "guards": guards.enabled})
    reason = registry.error or guards.error or ("loading the model" if not registry.ready else "loading the guards")
    return JSONResponse(EngineUnavailable(f"Not ready: {reason}").envelope(), status_code=503)


@router.get("/parley/status", dependencies=[Depends(Access("admin"))])
async def status(request: Request) -> dict[str, Any]:
    """Engine internals: slots busy and free, queue depth, prefix-cache and token counters."""
    registry: EngineRegistry = request.app.state.registry
    log = request.app.state.completion_log
    return {
        "models": {name: engine.status() for name, engine in registry.engines.items()},
        "adapters": {name: {"base": a.base, "version": a.ref.version} for name, a in registry.adapters.items()},
        "adapter_errors": registry.adapter_errors,
        "completion_log": log.status() if log is not None else None,
        "turn_end_observer_failures": request.app.state.pipeline.turn_end.failures,
        "key_store_errors": request.app.state.access.store_errors,
        **({"rate_limits": buckets.status()} if hasattr(buckets := request.app.state.access.buckets, "status") else {}),
    }


@router.get("/metrics", dependencies=[Depends(Access("admin"))])
async def metrics(request: Request) -> Response:
    """Prometheus metrics (vLLM's names with a `parley_` prefix; docs/observability.md lists them)."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


class TokenizeRequest(Body):
    model: str
    prompt: str | None = None
    messages: list[ChatMessage] | None = Field(None, min_length=1)
    response_format: ResponseFormat | None = None


@router.post("/tokenize", dependencies=[Depends(Access("chat"))])
async def tokenize(body: TokenizeRequest, request: Request) -> dict[str, Any]:
    """Tokens as the model sees them (vLLM's endpoint): the pipeline's own input and preprocessing steps up to
    the template and tokenizer (normalisation, the input guard and its canary, the response format)."""
    pipeline: Pipeline = request.app.state.pipeline
    fields = body.model_dump(exclude_none=True, by_alias=True)
    if body.messages is not None:
        turn = Turn(kind="chat", request=ChatCompletionRequest(**fields))
    elif body.prompt is not None:
        turn = Turn(kind="completion", request=CompletionRequest(**fields))
    else:
        raise InvalidRequest("Give `prompt` or `messages`.", param="prompt")
    turn.profile_name = request.headers.get(PROFILE_HEADER)
    ctx = await pipeline.prepare(turn, key=getattr(request.state, "api_key", None), until="render")
    if not ctx.engine_required.info.capabilities.chat_template:
        message = f"The model `{turn.model}` is served upstream: it tokenizes its own prompts."
        raise InvalidRequest(message, param="model")
    tokens = turn.prompt_tokens
    return {"tokens": tokens, "count": len(tokens), "max_model_len": ctx.engine_required.info.context_window}
