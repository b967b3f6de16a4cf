"""Alembic migrations on real SQLite and real PostgreSQL: fresh databases, databases from before migrations,
and several replicas upgrading one PostgreSQL at once."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import inspect, text

from parley.store.db import Database
from parley.store.keys import KeyRepository
from parley.store.migrate import current, head

# The api_keys table as `create_all` made it before the guard-policy column and before migrations.
LEGACY_DDL = """CREATE TABLE api_keys (
    id VARCHAR(32) PRIMARY KEY, name VARCHAR(200) NOT NULL, prefix VARCHAR(16) NOT NULL,
    key_hash VARCHAR(64) NOT NULL UNIQUE, scopes VARCHAR(200) NOT NULL, rpm INTEGER, tpm INTEGER,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL, expires_at TIMESTAMP WITH TIME ZONE,
    revoked_at TIMESTAMP WITH TIME ZONE)"""


def test_a_fresh_database_is_migrated_to_the_newest_revision(empty_url):
    db = Database(empty_url)
    try:
        assert current(db.engine) == head() == "0002"
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


def test_the_previous_revision_upgrades_keeping_its_rows(empty_url):
    from parley.store.migrate import upgrade

    old = Database(empty_url, migrate=False)
    upgrade(old.engine, "0001")
    assert current(old.engine) == "0001" and not inspect(old.engine).has_table("completions")
    record, key = KeyRepository(old).create("before", ["chat"])
    old.close()
    db = Database(empty_url)
    try:
        assert current(db.engine) == head()
        assert KeyRepository(db).find(key).id == record.id
        assert {"completions", "feedback", "tune_runs", "adapters"} <= set(inspect(db.engine).get_table_names())
    finally:
        db.close()


def test_the_migrations_build_exactly_the_models_tables(empty_url):
    """Alembic's autogenerate finds nothing to change: the revisions and the models agree, on both databases."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from parley.store.models import Base

    db = Database(empty_url)
    try:
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
    finally:
        db.close()
