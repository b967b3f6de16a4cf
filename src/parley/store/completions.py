"""The completion log: one row per turn, written in batches by the log writer, read by feedback and export."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, select

from parley.store.db import Database
from parley.store.models import CompletionRow, FeedbackRow

COLUMNS = [c.name for c in CompletionRow.__table__.columns]


def as_dict(row: CompletionRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in COLUMNS}


class CompletionRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def add_many(self, rows: Iterable[dict[str, Any]]) -> int:
        """Insert rows in one transaction; a row already there (a retried batch) is left as it is."""
        rows = list(rows)
        with self.db.session.begin() as s:
            present = set(s.scalars(select(CompletionRow.id).where(CompletionRow.id.in_([r["id"] for r in rows]))))
            s.add_all(CompletionRow(**r) for r in rows if r["id"] not in present)
        return len(rows) - len(present)

    def get(self, completion_id: str) -> dict[str, Any] | None:
        with self.db.session() as s:
            row = s.get(CompletionRow, completion_id)
            return as_dict(row) if row else None

    def list(
        self, *, key_id: str | None = None, model: str | None = None, adapter: str | None = None,
        since: datetime | None = None, limit: int = 100, offset: int = 0,
    ) -> list[dict[str, Any]]:  # fmt: skip
        q = select(CompletionRow).order_by(CompletionRow.created_at.desc(), CompletionRow.id)
        for column, value in ((CompletionRow.key_id, key_id), (CompletionRow.model, model),
                              (CompletionRow.adapter, adapter)):  # fmt: skip
            if value is not None:
                q = q.where(column == value)
        if since is not None:
            q = q.where(CompletionRow.created_at >= since)
        with self.db.session() as s:
            return [as_dict(r) for r in s.scalars(q.limit(limit).offset(offset))]

    def activity(self, since: datetime, until: datetime, *, limit: int = 200_000) -> list[dict[str, Any]]:
        """What the dashboard charts, for the turns that began in [since, until): no texts, oldest first."""
        columns = [CompletionRow.created_at, CompletionRow.model, CompletionRow.adapter, CompletionRow.outcome,
                   CompletionRow.finish_reason, CompletionRow.ttft_ms, CompletionRow.latency_ms,
                   CompletionRow.prompt_tokens, CompletionRow.completion_tokens, CompletionRow.guard]  # fmt: skip
        q = (select(*columns).where(CompletionRow.created_at >= since, CompletionRow.created_at < until)
             .order_by(CompletionRow.created_at).limit(limit))  # fmt: skip
        with self.db.session() as s:
            return [dict(r._mapping) for r in s.execute(q)]

    def prune(self, before: datetime, *, keep_rated: bool = True) -> int:
        """Delete rows older than `before`; rated ones stay unless `keep_rated` is off (feedback goes too)."""
        old = CompletionRow.created_at < before
        rated = exists().where(FeedbackRow.completion_id == CompletionRow.id)
        with self.db.session.begin() as s:
            if keep_rated:
                return s.execute(delete(CompletionRow).where(old, ~rated)).rowcount or 0
            ids = select(CompletionRow.id).where(old)
            s.execute(delete(FeedbackRow).where(FeedbackRow.completion_id.in_(ids)))
            return s.execute(delete(CompletionRow).where(old)).rowcount or 0
