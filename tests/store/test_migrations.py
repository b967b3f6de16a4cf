"""Alembic migrations on real SQLite and real PostgreSQL: fresh databases, databases from before migrations,
and several replicas upgrading one PostgreSQL at once."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
import sqlalchemy
from sqlalchemy import create_engine, inspect, text

from parley.store.db import Database
from parley.store.keys import KeyRepository
from parley.store.migrate import current, head

ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"

# The api_keys table as `create_all` made it before the guard-policy column and before migrations.
LEGACY_DDL = """CREATE TABLE api_keys (
    id VARCHAR(32) PRIMARY KEY, name VARCHAR(200) NOT NULL, prefix VARCHAR(16) NOT NULL,
    key_hash VARCHAR(64) NOT NULL UNIQUE, scopes VARCHAR(200) NOT NULL, rpm INTEGER, tpm INTEGER,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL, expires_at TIMESTAMP WITH TIME ZONE,
    revoked_at TIMESTAMP WITH TIME ZONE)"""


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    """The URL of a database that does not hold Parley's tables yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    name = f"parley_mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    except sqlalchemy.exc.OperationalError:
        pytest.fail("PostgreSQL is not running on 127.0.0.1:5432 (see .ci/run)")
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


def test_a_fresh_database_is_migrated_to_the_newest_revision(empty_url):
    db = Database(empty_url)
    try:
        assert current(db.engine) == head() == "0001"
        assert {c["name"] for c in inspect(db.engine).get_columns("api_keys")} >= {"key_hash", "policy"}
        record, _ = KeyRepository(db).create("svc", ["chat"], policy="pii=flag")
        assert KeyRepository(db).get(record.id).policy == "pii=flag"
    finally:
        db.close()


def test_a_database_from_before_migrations_is_adopted_keeping_its_keys(empty_url):
    raw = Database(empty_url, migrate=False)
    with raw.engine.begin() as conn:
        conn.execute(text(LEGACY_DDL))
        conn.execute(text("INSERT INTO api_keys (id, name, prefix, key_hash, scopes, created_at) "
                          "VALUES ('old1', 'legacy', 'pk-aaaa', 'abc', 'chat', CURRENT_TIMESTAMP)"))  # fmt: skip
    raw.close()
    db = Database(empty_url)
    try:
        assert current(db.engine) == head()
        repo = KeyRepository(db)
        assert repo.get("old1").name == "legacy"
        assert repo.create("new", ["chat"], policy="injection=flag")[0].policy == "injection=flag"
    finally:
        db.close()


def test_replicas_starting_together_migrate_once(empty_url):
    code = f"from parley.store.db import Database; Database({empty_url!r}).close()"
    replicas = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [(p.wait(timeout=60), p.stderr.read()) for p in replicas]  # type: ignore[union-attr]
    assert [rc for rc, _ in results] == [0, 0, 0, 0], results
    db = Database(empty_url, migrate=False)
    assert current(db.engine) == head()
    db.close()


def test_the_db_commands_upgrade_and_report(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"

    def parley(*args):
        return subprocess.run([sys.executable, "-m", "parley", "db", *args, "--database-url", url],
                              capture_output=True, text=True, timeout=60)  # fmt: skip

    assert "current none" in parley("current").stdout
    upgraded = parley("upgrade")
    assert upgraded.returncode == 0 and f"revision {head()}" in upgraded.stdout
    assert f"current {head()}" in parley("current").stdout
