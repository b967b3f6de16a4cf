"""The database: one SQLAlchemy engine and session factory; the schema kept current by Alembic."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def default_url(data_dir: Path) -> str:
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data_dir / 'parley.db'}"


class Database:
    def __init__(self, url: str, *, migrate: bool = True) -> None:
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
        if migrate:
            from parley.store.migrate import upgrade

            upgrade(self.engine)
        self.session: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = conn.cursor()
    cur.execute("PRAGMA busy_timeout=5000")  # first: switching the journal below waits for other writers too
    cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer (CLI and server at once)
    cur.close()
