"""Schema migrations with Alembic, run from code (`Database(url)` at start, or `parley db upgrade`).

Several replicas may start at once against one PostgreSQL: the upgrade holds an advisory lock, so one of them
migrates and the others find the schema current. A database created before Parley used Alembic (the tables
made by `create_all`) is adopted: missing columns are added, then it is stamped at the first revision.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
FIRST_REVISION = "0001"
PG_LOCK = 7_202_611  # advisory lock key: "parley migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    if revision == "head" and current(engine) == head():
        return  # the common case: nothing to do, and no write lock taken
    locked = _exclusive(engine)
    try:
        with locked.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCK})
            _adopt_unversioned(conn)
            command.upgrade(alembic_config(conn), revision)
    finally:
        if locked is not engine:
            locked.dispose()


def _exclusive(engine: Engine) -> Engine:
    """For SQLite, an engine whose transactions take the write lock at BEGIN and keep DDL inside them (pysqlite
    otherwise commits each CREATE at once): one process migrates, the others wait and then find it done."""
    if engine.dialect.name != "sqlite":
        return engine
    locked = create_engine(engine.url, connect_args={"timeout": 60})
    event.listen(locked, "connect", _autocommit_driver)
    event.listen(locked, "begin", lambda conn: conn.exec_driver_sql("BEGIN EXCLUSIVE"))
    return locked


def _autocommit_driver(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    dbapi_connection.isolation_level = None  # SQLAlchemy's BEGIN (above) is then the only one


def _adopt_unversioned(conn: Connection) -> None:
    inspector = inspect(conn)
    if not inspector.has_table("api_keys") or inspector.has_table("alembic_version"):
        return
    present = {c["name"] for c in inspector.get_columns("api_keys")}
    if "policy" not in present:  # added to the table before migrations existed
        conn.execute(text('ALTER TABLE api_keys ADD COLUMN "policy" VARCHAR(500)'))
    log.info("adopting a database created before migrations: stamping revision %s", FIRST_REVISION)
    command.stamp(alembic_config(conn), FIRST_REVISION)
