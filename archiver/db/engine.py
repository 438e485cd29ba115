"""Engine, sessions and schema upgrades (alembic migrations shipped inside the package)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from archiver.errors import ConfigError, os_reason

if TYPE_CHECKING:
    from sqlmodel import Session

    from archiver.config import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
HEAD_REVISION = "0010"  # the newest file in migrations/versions (a test keeps the two in step)


def _prepare_sqlite_file(url: str) -> None:
    """Create the parent folder and the file itself with 0600: it holds tokens."""
    u = make_url(url)
    db = u.database
    if not db or db == ":memory:":
        return
    path = Path(db)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        else:
            os.chmod(path, 0o600)
    except OSError as exc:
        raise ConfigError(f"database.url: cannot create or open {path}: {os_reason(exc)}") from None


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        _prepare_sqlite_file(url)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a killed process loses no committed transaction; a power cut may roll back the
            # last few, which only means refetching clips (puts are idempotent, rows never run ahead of
            # the files they describe).
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # hide_parameters: an error must never print the values of a statement (refreshed tokens)
    return create_engine(url, pool_pre_ping=True, hide_parameters=True)


def _alembic_config(engine: Engine):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except SQLAlchemyError:
        return None


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision, in place (idempotent, safe on every start). Alembic is
    only loaded when the database is not at the head revision already (it costs start-up time)."""
    if current_revision(engine) == HEAD_REVISION:
        return
    from alembic import command

    command.upgrade(_alembic_config(engine), "head")


def open_database(url: str) -> Engine:
    engine = make_engine(url)
    migrate(engine)
    return engine


def open_engine(settings: Settings) -> Engine:
    """The configured database, created and migrated (its folder made under the data dir)."""
    try:
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # tokens, staged clips
    except OSError as exc:
        raise ConfigError(f"data_dir: cannot create {settings.data_dir}: {os_reason(exc)}") from None
    if not os.access(settings.data_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"data_dir: {settings.data_dir} is not writable")
    return open_database(settings.database_url)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    from sqlmodel import Session  # the ORM loads on first use: `archiver status` reads with Core only

    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
