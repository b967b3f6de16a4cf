"""`/v1/moderations` in OpenAI's format, from the guards (`parley.guards.moderation`)."""

from __future__ import annotations

import asyncio
import uuid

from fastapi import APIRouter, Depends, Request

from parley.errors import GuardsUnavailable, InvalidRequest
from parley.guards.moderation import MODEL, moderate
from parley.protocol.openai import ModerationRequest, ModerationResponse, ModerationResult
from parley.server.auth import Access
from parley.server.routes.openai import ERRORS

router = APIRouter(tags=["OpenAI-compatible"], dependencies=[Depends(Access("chat"))])

MAX_INPUTS = 32


@router.post("/v1/moderations", response_model=ModerationResponse, responses=ERRORS)
async def moderations(body: ModerationRequest, request: Request) -> ModerationResponse:
    """Classify text: OpenAI's categories (those the guards can judge are scored; the rest are listed with an
    empty `category_applied_input_types`) and Parley's `prompt-injection`, `pii` and `secrets`."""
    if body.model not in (None, MODEL, "omni-moderation-latest", "text-moderation-latest"):
        raise InvalidRequest(f"The moderation model is `{MODEL}`.", param="model")
    texts = _texts(body.input)
    guards = request.app.state.guards.get()
    if guards is None:
        raise GuardsUnavailable("The guards are off on this server (guards = false): nothing can moderate.")
    results = await asyncio.to_thread(moderate, guards, texts)
    return ModerationResponse(id=f"modr-{uuid.uuid4().hex}", model=MODEL,
                              results=[ModerationResult(**r) for r in results])  # fmt: skip


def _texts(value: str | list[str] | list[dict]) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not items:
        raise InvalidRequest("input must not be empty.", param="input")
    if len(items) > MAX_INPUTS:
        raise InvalidRequest(f"At most {MAX_INPUTS} inputs per request.", param="input")
    texts = []
    for i, item in enumerate(items):
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
            texts.append(item["text"])
        else:
            raise InvalidRequest("Only text inputs can be moderated here.", param=f"input[{i}]")
    return texts
