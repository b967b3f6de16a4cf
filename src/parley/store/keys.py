"""API keys: created once (the plaintext is returned then and never stored), verified by hash."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select

from parley.store.db import Database
from parley.store.models import ApiKeyRow

SCOPES = ("chat", "feedback", "admin", "tools")  # tools: chats that run MCP tools on the server
KEY_PREFIX = "pk-"


def hash_key(key: str) -> str:
    """Keys carry 256 random bits, so a fast hash is enough (as GitHub and Stripe tokens); no salt needed."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    scopes: frozenset[str]
    rpm: int | None
    tpm: int | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    policy: str | None = None  # guard policy overrides, e.g. "pii=flag,output:secrets=block"

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and _aware(self.expires_at) <= datetime.now(UTC):
            return "expired"
        return "active"

    def public(self) -> dict[str, object]:
        return {
            "id": self.id, "name": self.name, "prefix": self.prefix, "scopes": sorted(self.scopes),
            "rpm": self.rpm, "tpm": self.tpm, "status": self.status,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "policy": self.policy,
        }  # fmt: skip


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo else when.replace(tzinfo=UTC)  # SQLite returns naive datetimes


def _record(row: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=row.id, name=row.name, prefix=row.prefix, scopes=frozenset(filter(None, row.scopes.split(","))),
        rpm=row.rpm, tpm=row.tpm, created_at=_aware(row.created_at),
        expires_at=_aware(row.expires_at) if row.expires_at else None,
        revoked_at=_aware(row.revoked_at) if row.revoked_at else None, policy=row.policy,
    )  # fmt: skip


class KeyRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        name: str,
        scopes: list[str],
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        expires_at: datetime | None = None,
        policy: str | None = None,
    ) -> tuple[ApiKey, str]:
        unknown = set(scopes) - set(SCOPES)
        if unknown or not scopes:
            raise ValueError(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(scopes) or 'none'}")
        if policy:
            from parley.guards.base import Policy

            Policy.parse(policy)  # raises ValueError on a bad policy
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKeyRow(
            id=uuid.uuid4().hex[:12], name=name, prefix=key[:8], key_hash=hash_key(key),
            scopes=",".join(sorted(set(scopes))), rpm=rpm, tpm=tpm, created_at=datetime.now(UTC),
            expires_at=expires_at, revoked_at=None, policy=policy or None,
        )  # fmt: skip
        with self.db.session.begin() as s:
            s.add(row)
        return _record(row), key

    def list(self) -> list[ApiKey]:
        with self.db.session() as s:
            return [_record(r) for r in s.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at))]

    def get(self, key_id: str) -> ApiKey | None:
        with self.db.session() as s:
            row = s.get(ApiKeyRow, key_id)
            return _record(row) if row else None

    def revoke(self, key_id: str) -> ApiKey | None:
        with self.db.session.begin() as s:
            row = s.get(ApiKeyRow, key_id)
            if row is None:
                return None
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
            return _record(row)

    def find(self, key: str) -> ApiKey | None:
        """The key's record, whatever its status (the caller decides what revoked or expired means)."""
        with self.db.session() as s:
            row = s.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == hash_key(key)))
            return _record(row) if row else None

    def count(self) -> int:
        with self.db.session() as s:
            return s.scalar(select(func.count()).select_from(ApiKeyRow)) or 0
