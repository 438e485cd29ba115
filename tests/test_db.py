"""Schema migrations: the shipped revisions build exactly the models' schema, in place, on every start."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import Session, SQLModel, select

from archiver.db.engine import (
    HEAD_REVISION,
    _alembic_config,
    current_revision,
    make_engine,
    open_database,
    upgrade_to,
)


def test_head_revision_constant_matches_the_migration_scripts(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    assert ScriptDirectory.from_config(_alembic_config(engine)).get_current_head() == HEAD_REVISION


def test_migrations_build_exactly_the_models_schema(database_url: str) -> None:
    upgrade_to(database_url, HEAD_REVISION)  # every revision from an empty database (alembic)
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
    assert current_revision(engine) == HEAD_REVISION


def _schema(url: str) -> dict[str, object]:
    """Everything a later revision can depend on, per table: columns (type, nullability, default), primary
    key, foreign keys, indexes and unique constraints with their names; PostgreSQL's enum types. Not the
    column order (a batch copy goes by name), not SQLite's VARCHAR lengths (it ignores them) and not how a
    default is quoted."""
    import re

    from sqlalchemy import inspect, text

    engine = make_engine(url)
    insp = inspect(engine)
    sqlite = engine.dialect.name == "sqlite"

    def kind(t: object) -> str:
        return re.sub(r"VARCHAR\(\d+\)", "VARCHAR", str(t)) if sqlite else str(t)

    out: dict[str, object] = {}
    for t in sorted(insp.get_table_names()):
        columns = sorted(
            (c["name"], kind(c["type"]), c["nullable"], str(c.get("default")).strip("'"))
            for c in insp.get_columns(t)
        )
        out[t] = {
            "columns": columns,
            "pk": insp.get_pk_constraint(t)["constrained_columns"],
            "fks": sorted(
                (
                    f["name"] or "",
                    tuple(f["constrained_columns"]),
                    f["referred_table"],
                    tuple(f["referred_columns"]),
                )
                for f in insp.get_foreign_keys(t)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), i["unique"]) for i in insp.get_indexes(t)
            ),
            "unique": sorted(
                (u["name"] or "", tuple(u["column_names"])) for u in insp.get_unique_constraints(t)
            ),
        }
    if not sqlite:
        with engine.connect() as conn:
            out["enum types"] = [
                tuple(map(str, r))
                for r in conn.execute(
                    text(
                        "SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)::text"
                        " FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid GROUP BY t.typname ORDER BY 1"
                    )
                )
            ]
    engine.dispose()
    return out


def test_a_first_start_makes_the_schema_the_migrations_make(database_url: str, tmp_path: Path) -> None:
    """An empty database gets the models' tables and the head stamp in one transaction, without alembic:
    the same schema as every revision run from the first."""
    open_database(database_url).dispose()
    assert current_revision(make_engine(database_url)) == HEAD_REVISION
    if database_url.startswith("sqlite"):
        migrated = f"sqlite:///{tmp_path / 'migrated.db'}"
    else:
        import psycopg
        from sqlalchemy.engine import make_url

        u = make_url(database_url)
        with psycopg.connect(u.set(drivername="postgresql").render_as_string(False), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{u.database}_m"')
        migrated = u.set(database=f"{u.database}_m").render_as_string(hide_password=False)
    try:
        upgrade_to(migrated, HEAD_REVISION)
        assert _schema(database_url) == _schema(migrated)
    finally:
        if not database_url.startswith("sqlite"):
            with psycopg.connect(
                u.set(drivername="postgresql").render_as_string(False), autocommit=True
            ) as c:
                c.execute(f'DROP DATABASE "{u.database}_m" WITH (FORCE)')


def test_a_first_start_does_not_load_alembic(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\nfrom archiver.cli import main\nsys.argv = ['archiver', 'status']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\nprint('alembic' in sys.modules, file=sys.stderr)\n"
    )
    env = {"ARCHIVER_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stderr.strip().splitlines()[-1] == "False", out.stderr
    assert current_revision(make_engine(f"sqlite:///{tmp_path / 'archiver.db'}")) == HEAD_REVISION


def test_opening_an_existing_database_again_is_a_no_op(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    open_database(url).dispose()
    engine = open_database(url)
    assert current_revision(engine) == HEAD_REVISION


def test_upgrading_turns_old_duplicate_markers_into_duplicate_rows(database_url: str) -> None:
    from alembic import command
    from sqlalchemy import text

    from archiver.db.engine import make_engine
    from archiver.db.models import Clip, ClipState

    engine = make_engine(database_url)
    command.upgrade(_alembic_config(engine), "0001")
    marker = "duplicate: same recording archived from the cloud as cloud:1"
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO account (id, name, auth_kind, hardware_id, created_at) "
                "VALUES (1, 'home', 'oauth', 'hw', CURRENT_TIMESTAMP)"
            )
        )
        for cid, source, identity, state, error in (
            (1, "cloud", "cloud:1", "stored", None),
            (2, "local", "local:5:7:2024-05-01T12:00:00+00:00", "stored", marker),
        ):
            conn.execute(
                text(
                    "INSERT INTO clip (id, account_id, source, identity, blink_id, created_at,"
                    " deleted_upstream, partial, state, attempts, last_error, discovered_at)"
                    " VALUES (:id, 1, :source, :identity, 'x', CURRENT_TIMESTAMP, false, false,"
                    " :state, 0, :error, CURRENT_TIMESTAMP)"
                ),
                {"id": cid, "source": source, "identity": identity, "state": state, "error": error},
            )
    engine = open_database(database_url)
    with Session(engine) as s:
        rows = {c.id: c for c in s.exec(select(Clip))}
    assert rows[2].state == ClipState.duplicate and rows[2].duplicate_of == 1 and rows[2].last_error is None
    assert rows[1].state == ClipState.stored and rows[2].source == "local"


# ------------------------------------------------------------------------------------ a damaged file
def _damage_page_of(path: Path, table: str) -> None:
    """Overwrite the b-tree header of ``table``'s root page: SQLite calls the file malformed."""
    import sqlite3

    with sqlite3.connect(path) as db:
        (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(path, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xff" * 12)


def _status(tmp_path: Path) -> tuple[int, list[str]]:
    from helpers import run_cli

    env = {"PATH": "/usr/bin:/bin", "ARCHIVER_DATA_DIR": str(tmp_path)}
    out = run_cli(["status"], env)
    return out.returncode, out.stderr.strip().splitlines()


def test_a_file_that_is_not_a_database_stops_with_one_line_naming_reindex(tmp_path: Path) -> None:
    db = tmp_path / "archiver.db"
    db.write_bytes(b"not a database " * 500)
    code, [line] = _status(tmp_path)
    assert code == 2
    assert line.startswith(f"error: database: {db} is damaged (file is not a database): move it aside")
    assert "`archiver reindex`" in line
    assert db.read_bytes() == b"not a database " * 500  # nothing written over it


def test_a_malformed_database_stops_with_one_line_naming_reindex(tmp_path: Path) -> None:
    db = tmp_path / "archiver.db"
    open_database(f"sqlite:///{db}").dispose()
    _damage_page_of(db, "alembic_version")
    code, [line] = _status(tmp_path)
    assert code == 2
    assert "is damaged (database disk image is malformed)" in line and "`archiver reindex`" in line


def test_verify_runs_sqlites_quick_check_and_names_reindex(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from archiver.db.models import Account, Clip
    from archiver.verify import database_problems

    db = tmp_path / "archiver.db"
    engine = open_database(f"sqlite:///{db}")
    with Session(engine) as s:
        s.add(Account(id=1, name="home", hardware_id="hw"))
        s.flush()
        for n in range(300):
            s.add(Clip(account_id=1, identity=f"cloud:{n}", blink_id=str(n), created_at=datetime.now(UTC)))
        s.commit()
        assert database_problems(s) == []
    engine.dispose()
    _damage_page_of(db, "clip")
    engine = open_database(f"sqlite:///{db}")  # what status and sync read is intact: it opens
    with Session(engine) as s:
        problems = database_problems(s)
    assert problems and all("archiver reindex" in p for p in problems)
    assert "malformed" in problems[0] or "page" in problems[0]
    from helpers import run_cli

    out = run_cli(["verify"], {"PATH": "/usr/bin:/bin", "ARCHIVER_DATA_DIR": str(tmp_path)})
    assert out.returncode == 1
    assert any(line.strip().startswith("error: database: ") and "archiver reindex" in line
               for line in out.stderr.splitlines()), out.stderr  # fmt: skip


def test_a_damaged_file_found_while_running_is_one_line_naming_reindex() -> None:
    import sqlite3

    from sqlalchemy.exc import DatabaseError

    from archiver.errors import describe

    for reason in ("database disk image is malformed", "file is not a database"):
        err = describe(DatabaseError("SELECT 1", {}, sqlite3.DatabaseError(reason)))
        assert err is not None and err.exit_code == 2
        assert str(err).startswith(f"database: the SQLite file is damaged ({reason})")
        assert "`archiver reindex`" in str(err)
