"""`GET /admin/stats` (scope `admin`): what the dashboard and `parley stats` show."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from parley.observability.stats import aware, summarize, window
from parley.server.auth import Access

router = APIRouter(tags=["Admin"], dependencies=[Depends(Access("admin"))])

MAX_WINDOW_S = 90 * 86400


@router.get("/admin/stats")
async def stats(
    request: Request,
    window_s: Annotated[float, Query(alias="window", ge=60, le=MAX_WINDOW_S, description="seconds back")] = 3600,
    buckets: Annotated[int, Query(ge=1, le=1000)] = 60,
    low_rated: Annotated[int, Query(ge=0, le=200, description="newest bad ratings to list")] = 20,
) -> dict[str, Any]:
    """Series and totals over the window from the completion log and the feedback of every replica, the
    newest low-rated answers with their traces, and this replica's live gauges from its metrics."""
    since, until = window(window_s, buckets)
    state = request.app.state

    def read() -> tuple[list[dict[str, Any]], list[Any], list[dict[str, Any]]]:
        turns = state.completions.activity(since, until)
        ratings = state.feedback.activity(since, until)
        bad = state.feedback.low_rated(limit=low_rated, since=since) if low_rated else []
        return turns, ratings, bad

    turns, ratings, bad = await asyncio.to_thread(read)
    summary = summarize(turns, ratings, since, until, buckets)
    log = state.completion_log
    return {
        "object": "parley.stats",
        **summary,
        "low_rated": [_review_row(item) for item in bad],
        "live": state.metrics.live(),
        "log_pending": log.backlog() if log is not None else 0,  # rows not in the store yet: not counted above
    }


def _review_row(item: dict[str, Any]) -> dict[str, Any]:
    """A low-rated answer as a reviewer needs it: the question, the answer, the rating, the trace."""
    fb, c = item["feedback"], item["completion"]
    messages = c["messages"] or []
    question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), c["prompt"])
    return {
        "completion_id": c["id"], "created_at": aware(c["created_at"]).isoformat(), "rated_at": fb["updated_at"],
        "model": c["model"], "adapter": c["adapter"], "profile": c["profile"], "rating": fb["rating"],
        "correction": fb["correction"], "comment": fb["comment"], "tags": fb["tags"], "question": question,
        "answer": c["answer"], "finish_reason": c["finish_reason"], "trace": c["decisions"], "guard": c["guard"],
    }  # fmt: skip
