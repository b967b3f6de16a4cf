"""Fine-tuning runs: what was trained on, with which parameters, the losses and the evaluation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from parley.store.db import Database
from parley.store.models import TuneRunRow

COLUMNS = [c.name for c in TuneRunRow.__table__.columns]


def as_dict(row: TuneRunRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in COLUMNS}


class TuneRunRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def start(self, name: str, method: str, base_model: str, data: dict[str, Any], params: dict[str, Any]) -> str:
        run_id = uuid.uuid4().hex[:16]
        with self.db.session.begin() as s:
            s.add(TuneRunRow(
                id=run_id, name=name, method=method, base_model=base_model, data=data, params=params, steps=0,
                losses=[], evaluation={}, status="running", created_at=datetime.now(UTC),
            ))  # fmt: skip
        return run_id

    def finish(self, run_id: str, *, steps: int, losses: list[float], status: str = "finished",
               evaluation: dict[str, Any] | None = None) -> None:  # fmt: skip
        with self.db.session.begin() as s:
            row = s.get(TuneRunRow, run_id)
            if row is None:
                raise KeyError(run_id)
            row.steps, row.losses, row.status, row.finished_at = steps, losses, status, datetime.now(UTC)
            if evaluation is not None:
                row.evaluation = evaluation

    def record_evaluation(self, run_id: str, evaluation: dict[str, Any]) -> None:
        with self.db.session.begin() as s:
            row = s.get(TuneRunRow, run_id)
            if row is None:
                raise KeyError(run_id)
            row.evaluation = {**(row.evaluation or {}), **evaluation}

    def get(self, run_id: str) -> dict[str, Any] | None:
        with self.db.session() as s:
            row = s.get(TuneRunRow, run_id)
            return as_dict(row) if row else None

    def latest(self, name: str) -> dict[str, Any] | None:
        with self.db.session() as s:
            row = s.scalar(select(TuneRunRow).where(TuneRunRow.name == name).order_by(TuneRunRow.created_at.desc()))
            return as_dict(row) if row else None
