"""Feedback on completions: `POST /v1/feedback` (scope `feedback`), `GET /v1/feedback` (scope `admin`)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from parley.completion_log import logged
from parley.errors import InvalidRequest, NotFound, PermissionDenied
from parley.protocol.openai import Body
from parley.server.auth import Access
from parley.store.feedback import OPEN_RATER, FeedbackFilter
from parley.store.keys import ApiKey

router = APIRouter(tags=["Feedback"])


class FeedbackCreate(Body):
    completion_id: str = Field(min_length=1, max_length=64)
    rating: Literal["up", "down"] | Annotated[int, Field(ge=1, le=5)]
    correction: str | None = Field(None, max_length=100_000, description="a better answer")
    comment: str | None = Field(None, max_length=10_000)
    tags: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list, max_length=20)


async def _completion(request: Request, completion_id: str) -> dict[str, Any]:
    row = await logged(request.app.state.completions, request.app.state.completion_log, completion_id)
    if row is None:
        raise NotFound(f"No completion with id {completion_id!r} (or it is older than the log keeps).",
                       param="completion_id")  # fmt: skip
    return row


@router.post("/v1/feedback", dependencies=[Depends(Access("feedback"))], status_code=201)
async def rate(body: FeedbackCreate, request: Request) -> JSONResponse:
    """Rate a completion (thumbs or 1–5 stars), optionally with a better answer. A key may rate only the
    completions it made (an `admin` key any); a second rating by the same key replaces the first."""
    key: ApiKey | None = request.state.api_key
    completion = await _completion(request, body.completion_id)
    if key is not None and completion["key_id"] != key.id and "admin" not in key.scopes:
        raise PermissionDenied("A key may rate only the completions it made.")
    if body.correction is not None and not body.correction.strip():
        raise InvalidRequest("correction must not be blank.", param="correction")
    rating = str(body.rating)
    row, created = await asyncio.to_thread(
        request.app.state.feedback.rate, body.completion_id, key.id if key is not None else OPEN_RATER, rating,
        correction=body.correction, comment=body.comment, tags=body.tags,
    )  # fmt: skip
    request.app.state.metrics.rated(rating)
    if completion.get("profile"):
        request.app.state.tuner.rated()
    return JSONResponse(row, status_code=201 if created else 200)


@router.get("/v1/feedback", dependencies=[Depends(Access("admin"))])
async def list_feedback(
    request: Request,
    completion_id: str | None = None,
    rater: str | None = None,
    model: str | None = None,
    adapter: str | None = None,
    label: Literal["good", "bad", "neutral"] | None = None,
    has_correction: bool | None = None,
    tag: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Feedback, newest first, filtered."""
    f = FeedbackFilter(completion_id, rater, model, adapter, label, has_correction, tag, since, until)
    rows = await asyncio.to_thread(request.app.state.feedback.list, f, limit=limit + 1, offset=offset)
    return {"object": "list", "data": rows[:limit], "has_more": len(rows) > limit}
