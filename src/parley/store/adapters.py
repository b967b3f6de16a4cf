"""The adapter registry: LoRA adapters the servers offer as models. Every replica reads it and loads what is
enabled, unloads what is not; `updated_at` lets them poll for changes cheaply."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from parley.store.db import Database
from parley.store.models import AdapterRow


@dataclass(frozen=True)
class Adapter:
    name: str
    base_model: str
    gguf_path: str
    peft_path: str | None
    scale: float
    enabled: bool
    run_id: str | None
    created_at: datetime
    updated_at: datetime

    def public(self) -> dict[str, object]:
        return {
            "name": self.name, "base_model": self.base_model, "gguf_path": self.gguf_path,
            "peft_path": self.peft_path, "scale": self.scale, "enabled": self.enabled, "run_id": self.run_id,
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
        }  # fmt: skip


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _record(row: AdapterRow) -> Adapter:
    return Adapter(row.name, row.base_model, row.gguf_path, row.peft_path, row.scale, row.enabled, row.run_id,
                   _aware(row.created_at), _aware(row.updated_at))  # fmt: skip


class AdapterRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def register(
        self, name: str, base_model: str, gguf_path: str, *, peft_path: str | None = None, scale: float = 1.0,
        run_id: str | None = None,
    ) -> Adapter:  # fmt: skip
        """Add an adapter, or replace one of the same name (a retrained adapter): enabled either way."""
        now = datetime.now(UTC)
        with self.db.session.begin() as s:
            row = s.get(AdapterRow, name) or AdapterRow(name=name, created_at=now)
            row.base_model, row.gguf_path, row.peft_path, row.scale = base_model, gguf_path, peft_path, scale
            row.run_id, row.enabled, row.updated_at = run_id, True, now
            s.add(row)
        return _record(row)

    def set_enabled(self, name: str, enabled: bool) -> Adapter | None:
        with self.db.session.begin() as s:
            row = s.get(AdapterRow, name)
            if row is None:
                return None
            row.enabled, row.updated_at = enabled, datetime.now(UTC)
            return _record(row)

    def get(self, name: str) -> Adapter | None:
        with self.db.session() as s:
            row = s.get(AdapterRow, name)
            return _record(row) if row else None

    def list(self) -> list[Adapter]:
        with self.db.session() as s:
            return [_record(r) for r in s.scalars(select(AdapterRow).order_by(AdapterRow.name))]

    def version(self) -> tuple[int, datetime | None]:
        """(count, newest change): changes when any adapter is added, replaced, enabled or disabled."""
        with self.db.session() as s:
            count, newest = s.execute(select(func.count(), func.max(AdapterRow.updated_at))).one()
            return count, newest
