"""The database: one SQLAlchemy engine and session factory, tables created on first use."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker


class Base(DeclarativeBase):
    pass


def default_url(data_dir: Path) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data_dir / 'parley.db'}"


class Database:
    def __init__(self, url: str) -> None:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        self.url = url
        sqlite = url.startswith("sqlite")
        self.engine: Engine = create_engine(
            url,
            connect_args={"check_same_thread": False} if sqlite else {},
            pool_pre_ping=not sqlite,
        )
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        from parley.store import models  # noqa: F401 - registers the tables

        Base.metadata.create_all(self.engine)
        _add_missing_columns(self.engine)
        self.session: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()


def _add_missing_columns(engine: Engine) -> None:
    """Columns added after a table was first created (a stand-in until migrations are managed by Alembic)."""
    from sqlalchemy import inspect, text

    inspector = inspect(engine)
    for table in Base.metadata.sorted_tables:
        if not inspector.has_table(table.name):
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                ddl = column.type.compile(dialect=engine.dialect)
                with engine.begin() as conn:
                    conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {ddl}'))


def _sqlite_pragmas(conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer (CLI and server at once)
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()
