"""KeyRepository against real SQLite and real PostgreSQL: the same behaviour on both."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy

from parley.store.db import Database
from parley.store.keys import KeyRepository, hash_key

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def _postgres_up() -> bool:
    try:
        Database(POSTGRES).close()
        return True
    except sqlalchemy.exc.OperationalError:
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def repo(request, tmp_path):
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'keys.db'}")
    else:
        if not _postgres_up():
            pytest.fail("PostgreSQL is not running on 127.0.0.1:5432 (see .ci/run)")
        db = Database(POSTGRES)
    yield KeyRepository(db)
    db.close()


def test_create_find_revoke(repo):
    name = f"svc-{uuid.uuid4().hex[:6]}"
    record, key = repo.create(name, ["chat", "admin"], rpm=10, tpm=1000)
    assert key.startswith("pk-") and len(key) > 40
    found = repo.find(key)
    assert found == record
    assert found.scopes == {"chat", "admin"} and found.status == "active"
    assert repo.find(key + "x") is None
    assert any(k.id == record.id for k in repo.list())
    revoked = repo.revoke(record.id)
    assert revoked.status == "revoked"
    assert repo.find(key).status == "revoked"
    assert repo.revoke("nope") is None


def test_expired_key_reports_expired(repo):
    _, key = repo.create("old", ["chat"], expires_at=datetime.now(UTC) - timedelta(days=1))
    assert repo.find(key).status == "expired"
    _, key2 = repo.create("new", ["chat"], expires_at=datetime.now(UTC) + timedelta(days=1))
    assert repo.find(key2).status == "active"


def test_only_the_hash_is_stored(repo):
    _, key = repo.create("hashed", ["chat"])
    with repo.db.engine.connect() as conn:
        rows = conn.execute(sqlalchemy.text("select * from api_keys")).fetchall()
    flat = " ".join(str(v) for row in rows for v in row)
    assert key not in flat
    assert hash_key(key) in flat


def test_unknown_scope_is_refused(repo):
    with pytest.raises(ValueError, match="scopes"):
        repo.create("bad", ["chat", "root"])
