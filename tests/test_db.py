"""Schema migrations: the shipped revisions build exactly the models' schema, in place, on every start."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

from archiver.db.engine import HEAD_REVISION, _alembic_config, current_revision, make_engine, open_database


def test_head_revision_constant_matches_the_migration_scripts(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    assert ScriptDirectory.from_config(_alembic_config(engine)).get_current_head() == HEAD_REVISION


def test_migrations_build_exactly_the_models_schema(database_url: str) -> None:
    engine = open_database(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
    assert current_revision(engine) == HEAD_REVISION


def test_opening_an_existing_database_again_is_a_no_op(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    open_database(url).dispose()
    engine = open_database(url)
    assert current_revision(engine) == HEAD_REVISION
