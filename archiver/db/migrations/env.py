"""Alembic environment. ``archiver.db.engine.upgrade_to`` passes the connection to run on: it holds the one
locked transaction every revision of an upgrade runs in (see ``migration_connection``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import archiver.db.models  # noqa: F401  (registers the tables)

target_metadata = SQLModel.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        transactional_ddl=True,  # SQLite too: the connection's transaction holds the DDL (no autocommit)
    )
    with context.begin_transaction():  # the caller's transaction: a no-op here, committed by the caller
        context.run_migrations()


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from archiver.db.engine import migration_connection

    engine = context.config.attributes.get("engine")
    url = engine.url if engine is not None else context.config.get_main_option("sqlalchemy.url")
    # `alembic` command line (writing new revisions) or a caller with only an engine: same transaction
    with migration_connection(url or "sqlite://") as connection:
        _run(connection)


run_migrations()
