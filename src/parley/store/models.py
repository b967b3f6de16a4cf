"""Tables. Every change to them comes with an Alembic revision in `migrations/versions/`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

Json = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    pass


class ApiKeyRow(Base):
    """An API key. Only the SHA-256 of the key is stored; `prefix` is its first characters, for humans."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    scopes: Mapped[str] = mapped_column(String(200))
    rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    policy: Mapped[str | None] = mapped_column(String(500), nullable=True)  # guard policy for this key


class CompletionRow(Base):
    """One answered (or refused, failed, cancelled) turn, as the guards left it: the completion log."""

    __tablename__ = "completions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the response id (chatcmpl-…, cmpl-…)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    key_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # chat | completion
    model: Mapped[str] = mapped_column(String(200), index=True)  # the base model
    adapter: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    profile: Mapped[str | None] = mapped_column(String(100), nullable=True)
    messages: Mapped[list[dict[str, Any]] | None] = mapped_column(Json, nullable=True)  # as the model saw them
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)  # /v1/completions
    answer: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(Json)
    decisions: Mapped[list[dict[str, Any]]] = mapped_column(Json)  # the trace: stages, steps, details
    guard: Mapped[dict[str, Any]] = mapped_column(Json)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    cached_tokens: Mapped[int] = mapped_column(Integer)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    finish_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))  # finished | failed | cancelled
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)


class FeedbackRow(Base):
    """A rating of a completion by one rater (a key, or `open` when no keys exist): one row per pair."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("completion_id", "rater", name="uq_feedback_completion_rater"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    completion_id: Mapped[str] = mapped_column(String(64), ForeignKey("completions.id"), index=True)
    rater: Mapped[str] = mapped_column(String(32))
    rating: Mapped[str] = mapped_column(String(8))  # up | down | 1..5
    label: Mapped[str] = mapped_column(String(8), index=True)  # good | bad | neutral
    correction: Mapped[str | None] = mapped_column(Text, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    tags: Mapped[list[str]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TuneRunRow(Base):
    """A fine-tuning run: its data, parameters, losses and evaluation."""

    __tablename__ = "tune_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), index=True)  # the adapter it made
    method: Mapped[str] = mapped_column(String(8))  # sft | dpo | kto
    base_model: Mapped[str] = mapped_column(String(500))
    data: Mapped[dict[str, Any]] = mapped_column(Json)
    params: Mapped[dict[str, Any]] = mapped_column(Json)
    steps: Mapped[int] = mapped_column(Integer)
    losses: Mapped[list[float]] = mapped_column(Json)
    evaluation: Mapped[dict[str, Any]] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(16))  # running | finished | failed
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AdapterRow(Base):
    """A LoRA adapter the servers offer as a model: `enabled` servers load it, disabled ones unload it."""

    __tablename__ = "adapters"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    base_model: Mapped[str] = mapped_column(String(200))  # the served model id it applies to
    gguf_path: Mapped[str] = mapped_column(String(1000))
    peft_path: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    scale: Mapped[float] = mapped_column(Float)
    enabled: Mapped[bool] = mapped_column(Boolean)
    run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
