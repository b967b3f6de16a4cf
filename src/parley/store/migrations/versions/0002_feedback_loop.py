"""The feedback loop: the completion log, feedback, tuning runs and the adapter registry.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "completions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created_at", When, nullable=False),
        sa.Column("key_id", sa.String(32), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("adapter", sa.String(200), nullable=True),
        sa.Column("profile", sa.String(100), nullable=True),
        sa.Column("messages", Json, nullable=True),
        sa.Column("prompt", sa.Text, nullable=True),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("params", Json, nullable=False),
        sa.Column("decisions", Json, nullable=False),
        sa.Column("guard", Json, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("cached_tokens", sa.Integer, nullable=False),
        sa.Column("ttft_ms", sa.Float, nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=True),
        sa.Column("finish_reason", sa.String(32), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.String(500), nullable=True),
    )
    for column in ("created_at", "key_id", "model", "adapter"):
        op.create_index(f"ix_completions_{column}", "completions", [column])
    op.create_table(
        "feedback",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("completion_id", sa.String(64), sa.ForeignKey("completions.id"), nullable=False),
        sa.Column("rater", sa.String(32), nullable=False),
        sa.Column("rating", sa.String(8), nullable=False),
        sa.Column("label", sa.String(8), nullable=False),
        sa.Column("correction", sa.Text, nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("tags", Json, nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.UniqueConstraint("completion_id", "rater", name="uq_feedback_completion_rater"),
    )
    for column in ("completion_id", "label", "created_at"):
        op.create_index(f"ix_feedback_{column}", "feedback", [column])
    op.create_table(
        "tune_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("base_model", sa.String(500), nullable=False),
        sa.Column("data", Json, nullable=False),
        sa.Column("params", Json, nullable=False),
        sa.Column("steps", sa.Integer, nullable=False),
        sa.Column("losses", Json, nullable=False),
        sa.Column("evaluation", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("finished_at", When, nullable=True),
    )
    op.create_index("ix_tune_runs_name", "tune_runs", ["name"])
    op.create_table(
        "adapters",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("base_model", sa.String(200), nullable=False),
        sa.Column("gguf_path", sa.String(1000), nullable=False),
        sa.Column("peft_path", sa.String(1000), nullable=True),
        sa.Column("scale", sa.Float, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
    )
    op.create_index("ix_adapters_updated_at", "adapters", ["updated_at"])


def downgrade() -> None:
    op.drop_table("adapters")
    op.drop_table("tune_runs")
    op.drop_table("feedback")
    op.drop_table("completions")
