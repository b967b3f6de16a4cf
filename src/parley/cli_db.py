"""`parley db upgrade | current`: the database schema, managed by Alembic migrations."""

from __future__ import annotations

from typing import Annotated

import typer

db_app = typer.Typer(help="Manage the database schema (migrations run at start unless auto_migrate is off).")


def _engine(database_url: str | None):  # type: ignore[no-untyped-def]
    from parley.config import Settings
    from parley.store.db import Database

    settings = Settings(**({"database_url": database_url} if database_url else {}))
    return Database(settings.db_url(), migrate=False)


DatabaseOpt = Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL (default: settings)")]


@db_app.command("upgrade")
def upgrade(
    revision: Annotated[str, typer.Argument(help="target revision")] = "head", database_url: DatabaseOpt = None
) -> None:
    """Apply migrations up to `revision` (default: the newest)."""
    from parley.store.migrate import current, upgrade

    db = _engine(database_url)
    try:
        before = current(db.engine)
        upgrade(db.engine, revision)
        typer.echo(f"database at revision {current(db.engine)} (was {before or 'empty'})")
    finally:
        db.close()


@db_app.command("current")
def show_current(database_url: DatabaseOpt = None) -> None:
    """The schema revision the database is at, and the newest there is."""
    from parley.store.migrate import current, head

    db = _engine(database_url)
    try:
        typer.echo(f"current {current(db.engine) or 'none'}; newest {head()}")
    finally:
        db.close()
