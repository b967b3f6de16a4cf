"""Feedback: ratings and corrections of logged completions, one per (completion, rater)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, cast, select
from sqlalchemy.exc import IntegrityError

from parley.store.db import Database
from parley.store.models import CompletionRow, FeedbackRow

OPEN_RATER = "open"  # the rater when no keys exist (open mode)
RatedCompletion = tuple[dict[str, Any], list[dict[str, Any]]]  # (the logged completion, its ratings)


def label_of(rating: str) -> str:
    """up / 4 / 5 → good; down / 1 / 2 → bad; 3 → neutral."""
    if rating in ("up", "4", "5"):
        return "good"
    if rating in ("down", "1", "2"):
        return "bad"
    return "neutral"


@dataclass(frozen=True)
class FeedbackFilter:
    completion_id: str | None = None
    rater: str | None = None
    model: str | None = None
    adapter: str | None = None
    label: str | None = None
    has_correction: bool | None = None
    tag: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def public(row: FeedbackRow) -> dict[str, Any]:
    return {
        "id": row.id, "object": "feedback", "completion_id": row.completion_id, "rater": row.rater,
        "rating": int(row.rating) if row.rating.isdigit() else row.rating, "label": row.label,
        "correction": row.correction, "comment": row.comment, "tags": list(row.tags or []),
        "created_at": _aware(row.created_at).isoformat(), "updated_at": _aware(row.updated_at).isoformat(),
    }  # fmt: skip


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)  # SQLite returns naive datetimes


class FeedbackRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def rate(
        self, completion_id: str, rater: str, rating: str, *, correction: str | None = None,
        comment: str | None = None, tags: list[str] | None = None,
    ) -> tuple[dict[str, Any], bool]:  # fmt: skip
        """Record a rating, replacing this rater's earlier one of the same completion. (row, created)."""
        for attempt in (1, 2):
            try:
                return self._upsert(completion_id, rater, rating, correction, comment, tags)
            except IntegrityError:  # the same rater's first rating twice at once: the second one updates
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _upsert(
        self, completion_id: str, rater: str, rating: str, correction: str | None, comment: str | None,
        tags: list[str] | None,
    ) -> tuple[dict[str, Any], bool]:  # fmt: skip
        now = datetime.now(UTC)
        with self.db.session.begin() as s:
            row = s.scalar(select(FeedbackRow).where(FeedbackRow.completion_id == completion_id,
                                                     FeedbackRow.rater == rater).with_for_update())  # fmt: skip
            created = row is None
            if row is None:
                row = FeedbackRow(id=uuid.uuid4().hex[:16], completion_id=completion_id, rater=rater, created_at=now)
                s.add(row)
            row.rating, row.label = rating, label_of(rating)
            row.correction, row.comment, row.tags = correction, comment, list(tags or [])
            row.updated_at = now
        return public(row), created

    def list(self, f: FeedbackFilter, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        q = select(FeedbackRow).order_by(FeedbackRow.created_at.desc(), FeedbackRow.id)
        if f.model is not None or f.adapter is not None:
            q = q.join(CompletionRow, FeedbackRow.completion_id == CompletionRow.id)
        q = _filtered(q, f)
        with self.db.session() as s:
            return [public(r) for r in s.scalars(q.limit(limit).offset(offset))]

    def activity(self, since: datetime, until: datetime) -> list[tuple[datetime, str]]:
        """(when, label) of each rating given or changed in [since, until), oldest first."""
        when = FeedbackRow.updated_at
        q = select(when, FeedbackRow.label).where(when >= since, when < until).order_by(when)
        with self.db.session() as s:
            return [(_aware(at), label) for at, label in s.execute(q)]

    def low_rated(self, *, limit: int = 20, since: datetime | None = None) -> list[dict[str, Any]]:
        """The newest bad ratings with the completion they rate (its messages, answer and trace)."""
        from parley.store.completions import as_dict

        q = (select(FeedbackRow, CompletionRow).join(CompletionRow, FeedbackRow.completion_id == CompletionRow.id)
             .where(FeedbackRow.label == "bad").order_by(FeedbackRow.updated_at.desc(), FeedbackRow.id))  # fmt: skip
        if since is not None:
            q = q.where(FeedbackRow.updated_at >= since)
        with self.db.session() as s:
            return [{"feedback": public(fb), "completion": as_dict(c)} for fb, c in s.execute(q.limit(limit))]

    def profile_ratings(self) -> Iterator[tuple[str, dict[str, Any], str]]:
        """(profile, logged parameters, rating) of every rating of a turn that used a profile."""
        q = (select(CompletionRow.profile, CompletionRow.params, FeedbackRow.rating)
             .join(CompletionRow, FeedbackRow.completion_id == CompletionRow.id)
             .where(CompletionRow.profile.is_not(None)))  # fmt: skip
        with self.db.session() as s:
            yield from ((p, params, r) for p, params, r in s.execute(q))

    def rated_completions(self, f: FeedbackFilter | None = None) -> Iterator[RatedCompletion]:
        """Each rated completion (as logged) with all its ratings, oldest first: what datasets are made of."""
        from parley.store.completions import as_dict

        q = select(FeedbackRow, CompletionRow).join(CompletionRow, FeedbackRow.completion_id == CompletionRow.id)
        q = _filtered(q, f or FeedbackFilter()).order_by(CompletionRow.created_at, CompletionRow.id)
        with self.db.session() as s:
            current: RatedCompletion | None = None
            for fb, completion in s.execute(q):
                if current is None or current[0]["id"] != completion.id:
                    if current is not None:
                        yield current
                    current = (as_dict(completion), [])
                current[1].append(public(fb))
            if current is not None:
                yield current


def _filtered(q: Any, f: FeedbackFilter) -> Any:
    """`q` selects from feedback joined to completions when the filter names a model or an adapter."""
    columns = [
        (f.completion_id, FeedbackRow.completion_id), (f.rater, FeedbackRow.rater), (f.model, CompletionRow.model),
        (f.adapter, CompletionRow.adapter), (f.label, FeedbackRow.label),
    ]  # fmt: skip
    for value, column in columns:
        if value is not None:
            q = q.where(column == value)
    if f.since is not None:
        q = q.where(FeedbackRow.created_at >= f.since)
    if f.until is not None:
        q = q.where(FeedbackRow.created_at < f.until)
    if f.has_correction is not None:
        q = q.where(FeedbackRow.correction.is_not(None) if f.has_correction else FeedbackRow.correction.is_(None))
    if f.tag is not None:  # tags are few and short: matched in their JSON text, on SQLite and PostgreSQL alike
        q = q.where(cast(FeedbackRow.tags, String).like(f'%"{f.tag}"%'))
    return q
