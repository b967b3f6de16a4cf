"""Alembic's environment: migrations run on the connection `parley.store.migrate` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from parley.store.models import Base

connection = context.config.attributes.get("connection")
options = {"target_metadata": Base.metadata, "render_as_batch": True}  # batch: SQLite's ALTER TABLE is limited

if connection is not None:
    context.configure(connection=connection, **options)
    with context.begin_transaction():
        context.run_migrations()
else:  # `alembic` run by hand with sqlalchemy.url set
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        context.configure(connection=conn, **options)
        with context.begin_transaction():
            context.run_migrations()
