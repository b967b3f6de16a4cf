"""Service endpoints: liveness, readiness, engine status, tokenizer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from parley.engines.registry import EngineRegistry
from parley.errors import EngineUnavailable, InvalidRequest
from parley.pipeline.input import chat_message
from parley.protocol.openai import ChatMessage
from parley.server.auth import Access

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
    return {"models": {name: engine.status() for name, engine in registry.engines.items()}}


class TokenizeRequest(BaseModel):
    model: str
    prompt: str | None = None
    messages: list[ChatMessage] | None = Field(None, min_length=1)


@router.post("/tokenize", dependencies=[Depends(Access("chat"))])
async def tokenize(body: TokenizeRequest, request: Request) -> dict[str, Any]:
    """Tokens as the model sees them (vLLM's endpoint): `messages` go through the chat template."""
    registry: EngineRegistry = request.app.state.registry
    engine = registry.find(body.model)
    if body.messages is not None:
        messages = [vars(chat_message(m, f"messages[{i}]")[0]) for i, m in enumerate(body.messages)]
        tokens = engine.tokenize(engine.apply_chat_template(messages))
    elif body.prompt is not None:
        tokens = engine.tokenize(body.prompt, special=False)
    else:
        raise InvalidRequest("Give `prompt` or `messages`.", param="prompt")
    return {"tokens": tokens, "count": len(tokens), "max_model_len": engine.info.context_window}
