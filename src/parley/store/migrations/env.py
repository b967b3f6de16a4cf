"""Alembic's environment: migrations run on the connection `parley.store.migrate` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from parley.store.models import Base

connection = context.config.attributes.get("connection")


def run(conn: Connection) -> None:
    # render_as_batch: SQLite's ALTER TABLE is limited, so column changes rebuild the table there.
    context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:  # `alembic` run by hand with sqlalchemy.url set
    with create_engine(context.config.get_main_option("sqlalchemy.url") or "").connect() as conn:
        run(conn)
