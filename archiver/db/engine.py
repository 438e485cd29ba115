"""Engine, sessions and schema upgrades (alembic migrations shipped inside the package)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from archiver.errors import ConfigError, os_reason

if TYPE_CHECKING:
    from sqlmodel import Session

    from archiver.config import Settings

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
HEAD_REVISION = "0011"  # the newest file in migrations/versions (a test keeps the two in step)


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


def _alembic_config(engine: Engine | None = None, connection: Connection | None = None):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        cfg.attributes["engine"] = engine
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


# ----------------------------------------------------------------------------------------- corrupt files
_CORRUPT = ("file is not a database", "database disk image is malformed", "malformed database schema")


def is_corrupt(exc: BaseException) -> bool:
    """A SQLite error that means the file itself is damaged (no retry, no migration can help)."""
    orig = getattr(exc, "orig", None) or exc
    low = " ".join(str(orig).split()).lower()
    return any(marker in low for marker in _CORRUPT)


def corrupt_error(url: str | URL, exc: BaseException) -> ConfigError:
    """The one line for a damaged SQLite file: how to get back (the archive is the truth)."""
    path = make_url(url).database or "the database file"
    orig = getattr(exc, "orig", None) or exc
    reason = " ".join(str(orig).split())[:80]
    return ConfigError(
        f"database: {path} is damaged ({reason}): move it aside (mv {path} {path}.broken) and run "
        "`archiver reindex` to rebuild it from the archive"
    )


# --------------------------------------------------------------------------------------------- revision
def current_revision(engine: Engine | Connection) -> str | None:
    """The revision the database is stamped with; None when it has none (new or not ours)."""
    try:
        if isinstance(engine, Connection):
            return _read_revision(engine)
        with engine.connect() as conn:
            return _read_revision(conn)
    except SQLAlchemyError as exc:
        if is_corrupt(exc):
            raise corrupt_error(engine.engine.url, exc) from None
        return None


def _read_revision(conn: Connection) -> str | None:
    rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return rows[0] if len(rows) == 1 else None


# --------------------------------------------------------------------------------- the migration lock
_PG_LOCK_KEY = 0x626C696E6B  # "blink": pg_advisory_xact_lock's key for schema upgrades


@contextmanager
def migration_connection(url: str | URL) -> Iterator[Connection]:
    """One connection holding one transaction that every schema change runs in, committed at the end or
    rolled back on any error or kill, and held under a lock that serializes upgrades between processes.

    SQLite: pysqlite must not commit around DDL, so this connection (only this one: the runtime engine is
    unchanged) runs with the driver's own transaction handling off and says ``BEGIN IMMEDIATE`` itself
    (SQLAlchemy's recipe for pysqlite's transactional DDL); the immediate write lock makes a second
    process wait (busy timeout) until the first committed. Foreign keys are off for the transaction (they
    can be switched only outside one), so a batch table recreation does not trip them; ``PRAGMA
    foreign_key_check`` runs before the commit, as SQLite's documentation prescribes for schema changes.
    PostgreSQL: DDL is transactional; ``pg_advisory_xact_lock`` serializes the upgrades."""
    sqlite = str(url).startswith("sqlite")
    if sqlite:
        _prepare_sqlite_file(str(url))
        engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _no_driver_transactions(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # no implicit BEGIN/COMMIT by pysqlite
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=OFF")  # only outside a transaction
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn) -> None:  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        engine = create_engine(url, poolclass=NullPool, hide_parameters=True)
    try:
        with engine.connect() as conn, conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            yield conn
            if sqlite:
                bad = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                if bad:
                    table, rowid, parent, _ = bad[0]
                    raise ConfigError(
                        f"database: the upgrade would leave {len(bad)} broken reference(s) (first: "
                        f"{table} row {rowid} -> {parent}); nothing was changed: move the database aside "
                        "and run `archiver reindex`"
                    )
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------ half-made schemas
def _repair_half_schema(conn: Connection, revision: str | None) -> None:
    """What an older release's crash left (it ran SQLite DDL outside a transaction): a batch operation's
    temporary copy beside its intact table is dropped; tables without a recorded revision are dropped when
    they are all empty (a killed first start). Anything else is one line with the way out."""
    from sqlalchemy import inspect
    from sqlmodel import SQLModel

    import archiver.db.models  # noqa: F401  (registers the tables)

    tables = set(inspect(conn).get_table_names())
    for tmp in sorted(t for t in tables if t.startswith("_alembic_tmp_")):
        original = tmp.removeprefix("_alembic_tmp_")
        if original not in tables:
            raise ConfigError(
                f"database: an interrupted upgrade left table {original!r} only in its temporary copy "
                f"{tmp!r}: move the database aside and run `archiver reindex` to rebuild it from the archive"
            )
        log.warning("database: dropping %s, left by an interrupted upgrade (%s is intact)", tmp, original)
        conn.exec_driver_sql(f'DROP TABLE "{tmp}"')
    if revision is not None:
        return
    ours = [t for t in reversed(SQLModel.metadata.sorted_tables) if t.name in tables]
    if not ours:
        return
    if any(conn.execute(select(func.count()).select_from(t)).scalar() for t in ours):
        raise ConfigError(
            "database: it holds tables but no schema revision (not made by blink-archiver, or by a "
            "release older than 5c9e0d4): move it aside and run `archiver reindex`"
        )
    log.warning("database: dropping the empty tables of an interrupted first start; creating them again")
    for table in ours:
        conn.exec_driver_sql(f'DROP TABLE "{table.name}"')
    conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    if conn.dialect.name == "postgresql":
        for enum in ("clipsource", "clipstate", "objectkind"):
            conn.exec_driver_sql(f"DROP TYPE IF EXISTS {enum}")


SchemaShape = dict[str, tuple[set[str], set[str]]]  # table -> (columns, explicit indexes)


def _sqlite_shape(conn: Connection) -> SchemaShape:
    shape: SchemaShape = {}
    for (table,) in conn.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).all():
        columns = {row[1] for row in conn.exec_driver_sql(f'PRAGMA table_info("{table}")').all()}
        shape[table] = (columns, set())
    for name, table in conn.exec_driver_sql(
        "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
    ).all():
        if table in shape:
            shape[table][1].add(name)
    return shape


def _shape_at(revision: str) -> SchemaShape:
    """The tables, columns and indexes ``revision``'s migrations make (built in memory, on SQLite)."""
    from alembic import command
    from sqlalchemy.pool import StaticPool

    memory = create_engine("sqlite://", poolclass=StaticPool)
    try:
        with memory.connect() as conn, conn.begin():
            command.upgrade(_alembic_config(connection=conn), revision)
            return _sqlite_shape(conn)
    finally:
        memory.dispose()


def _undo_partial_revision(conn: Connection, revision: str) -> None:
    """An older release ran each SQLite DDL statement of a revision on its own: a crash could leave some
    of the next revision's columns, indexes or tables while the recorded revision stayed. What the schema
    holds beyond ``revision``'s own is removed where that loses nothing (an index, an added column, an
    empty table), so the next revision runs again whole; a schema that lacks part of its revision is one
    line with the way out."""
    if conn.dialect.name != "sqlite":
        return  # PostgreSQL's DDL was always transactional
    expected = _shape_at(revision)
    actual = _sqlite_shape(conn)
    way_out = "move the database aside and run `archiver reindex`"
    for table, (columns, _indexes) in expected.items():
        if table == "alembic_version":
            continue
        if table not in actual or columns - actual[table][0]:
            lacks = sorted(columns - actual[table][0]) if table in actual else ["the table"]
            raise ConfigError(
                f"database: its schema is not revision {revision}'s (table {table} lacks "
                f"{', '.join(lacks)}): {way_out}"
            )
    for table, (columns, indexes) in sorted(actual.items()):
        if table == "alembic_version" or table.startswith("_alembic_tmp_"):
            continue
        if table not in expected:
            if conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar():
                raise ConfigError(
                    f"database: table {table} holds rows but revision {revision} has no such table: {way_out}"
                )
            log.warning("database: dropping table %s, left by an interrupted upgrade", table)
            conn.exec_driver_sql(f'DROP TABLE "{table}"')
            continue
        for index in sorted(indexes - expected[table][1]):
            log.warning("database: dropping index %s, left by an interrupted upgrade", index)
            conn.exec_driver_sql(f'DROP INDEX "{index}"')
        for column in sorted(columns - expected[table][0]):
            log.warning("database: dropping column %s.%s, left by an interrupted upgrade", table, column)
            try:
                conn.exec_driver_sql(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
            except OperationalError as exc:
                raise ConfigError(
                    f"database: column {table}.{column}, left by an interrupted upgrade, cannot be removed "
                    f"({' '.join(str(exc.orig).split())[:80]}): {way_out}"
                ) from None


def _check_known(revision: str) -> None:
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    try:
        ScriptDirectory.from_config(_alembic_config()).get_revision(revision)
    except CommandError:
        raise ConfigError(
            f"database: its schema revision {revision} is newer than this release knows (newest "
            f"{HEAD_REVISION}): run the release that upgraded it, or a newer one; nothing was changed"
        ) from None


def upgrade_to(url: str | URL, target: str = "head") -> None:
    """Bring the schema to ``target`` in one locked transaction (see :func:`migration_connection`). An
    empty database brought to ``"head"`` gets the models' tables and the head stamp (:func:`_create_head`):
    no alembic, no eight revisions on a first start."""
    with migration_connection(url) as conn:
        revision = _read_revision(conn) if _has_version_table(conn) else None
        if revision is not None:
            _check_known(revision)
        _repair_half_schema(conn, revision)
        if revision == HEAD_REVISION and target == "head":
            return  # another process upgraded it while this one waited for the lock
        if revision is None and target == "head" and not _tables(conn):
            _create_head(conn)
            return
        if revision is not None and revision != HEAD_REVISION:
            _undo_partial_revision(conn, revision)
        from alembic import command

        try:
            command.upgrade(_alembic_config(connection=conn), target)
        except OperationalError as exc:
            if revision is None or is_corrupt(exc):
                raise
            reason = " ".join(str(exc.orig).split())[:80]
            if "already exists" in reason or "duplicate column" in reason:
                raise ConfigError(
                    f"database: upgrading from revision {revision} failed ({reason}): an older release's "
                    "interrupted upgrade left its schema half-made; nothing was changed: move it aside and "
                    "run `archiver reindex`"
                ) from None
            raise


def _tables(conn: Connection) -> list[str]:
    from sqlalchemy import inspect

    return list(inspect(conn).get_table_names())


def _create_head(conn: Connection) -> None:
    """The head schema on an empty database: the models' tables and alembic's stamp, in the caller's
    transaction. tests/test_db.py keeps it equal to what the migrations make, on SQLite and PostgreSQL."""
    from sqlmodel import SQLModel

    import archiver.db.models  # noqa: F401  (registers the tables)

    SQLModel.metadata.create_all(conn)
    conn.exec_driver_sql(  # alembic's own version table
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
        "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))"
    )
    conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": HEAD_REVISION})


def _has_version_table(conn: Connection) -> bool:
    from sqlalchemy import inspect

    return bool(inspect(conn).has_table("alembic_version"))


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision, in place (idempotent, safe on every start, whichever
    processes start at once). Alembic is only loaded when the database is not at the head revision
    already (it costs start-up time)."""
    if current_revision(engine) == HEAD_REVISION:
        return
    try:
        upgrade_to(engine.url)
    except SQLAlchemyError as exc:
        if is_corrupt(exc):
            raise corrupt_error(engine.url, exc) from None
        raise


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
