"""Upgrades from every released schema: databases made by releases 5c9e0d4 (revision 0001) and 29ba6ac
(revision 0007) with their own code (tests/fixtures/db, see make_release_db.py), and a database at each
earlier revision, upgrade to head on SQLite and PostgreSQL with every row and token intact; the next sync
downloads nothing again. Plus what an interrupted or failed upgrade leaves: nothing half-made."""

from __future__ import annotations

import shutil
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from helpers import run_sync, usb_settings
from sqlalchemy import MetaData, create_engine, inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from archiver.db.engine import HEAD_REVISION, current_revision, make_engine, open_database, upgrade_to
from archiver.errors import ConfigError
from archiver.simulator import SimConfig, Simulator

FIXTURES = Path(__file__).parent / "fixtures" / "db"
sys.path.insert(0, str(FIXTURES))
from make_release_db import CLOUD_CLIPS, LOCAL_CLIPS, build_world  # noqa: E402

RELEASES = {"5c9e0d4": "0001", "29ba6ac": "0007"}
REVISIONS = ["0001", "0002", "0003", "0004", "0005", "0006", "0007"]
Rows = dict[str, list[dict[str, Any]]]


def _norm(value: Any) -> Any:
    if isinstance(value, datetime):  # SQLite gives naive UTC, PostgreSQL aware
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    if hasattr(value, "value"):  # an enum member
        return value.value
    return value


def read_rows(engine: Engine) -> Rows:
    """Every row of every table (but alembic's), keyed by table, in primary-key order."""
    meta = MetaData()
    meta.reflect(engine)
    out: Rows = {}
    with engine.connect() as conn:
        for table in meta.sorted_tables:
            if table.name == "alembic_version":
                continue
            order = list(table.primary_key.columns) or list(table.columns)
            out[table.name] = [
                {k: _norm(v) for k, v in row._mapping.items()}
                for row in conn.execute(table.select().order_by(*order))
            ]
    return out


def release_copy(release: str, tmp_path: Path) -> Path:
    path = tmp_path / f"release-{release}.db"
    shutil.copyfile(FIXTURES / f"release-{release}.db", path)
    return path


def seed_at(url: str, revision: str, source: Path) -> None:
    """A database at ``revision`` (built by that revision's migrations) holding ``source``'s rows in the
    columns and tables that revision has."""
    upgrade_to(url, revision)
    rows = read_rows(create_engine(f"sqlite:///{source}"))
    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine)
    with engine.begin() as conn:
        for table in meta.sorted_tables:
            keep = [dict((k, v) for k, v in r.items() if k in table.c) for r in rows.get(table.name, [])]
            if keep:
                conn.execute(table.insert(), keep)
            if conn.dialect.name == "postgresql" and "id" in table.c and keep:
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                  f"(SELECT max(id) FROM {table.name}))"))  # fmt: skip
    engine.dispose()


def expected_after_upgrade(before: Rows, revision: str) -> Rows:
    """``before`` as head holds it: revision 0003 turned the old duplicate marker into a duplicate row."""
    if revision >= "0003":
        return before
    clips = {c["identity"]: c for c in before["clip"]}
    out = {name: [dict(r) for r in rows] for name, rows in before.items()}
    for clip in out["clip"]:
        marker = clip["last_error"] or ""
        if marker.startswith("duplicate: same recording archived from"):
            twin = clips[marker.rsplit(" as ", 1)[-1]]
            clip.update(state="duplicate", last_error=None, duplicate_of=twin["id"])
    return out


def assert_rows_kept(before: Rows, after: Rows) -> None:
    for table, rows in before.items():
        got = after[table]
        assert len(got) == len(rows), table
        for old, new in zip(rows, got, strict=True):
            assert {k: new[k] for k in old} == old, table


def assert_head_schema(engine: Engine) -> None:
    assert current_revision(engine) == HEAD_REVISION
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
        tables = set(inspect(conn).get_table_names())
    assert not {t for t in tables if t.startswith("_alembic_tmp_")}


def database_at(backend: str, tmp_path: Path, revision: str, source: Path, pg: Any) -> str:
    url = f"sqlite:///{tmp_path / 'archiver.db'}" if backend == "sqlite" else str(pg())
    seed_at(url, revision, source)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pg(request: pytest.FixtureRequest) -> Any:
    return lambda: request.getfixturevalue("pg_url")


@pytest.mark.parametrize("release", list(RELEASES))
def test_a_released_database_upgrades_with_every_row_and_the_next_sync_downloads_nothing(
    release: str, backend: str, tmp_path: Path, pg: Any
) -> None:
    revision = RELEASES[release]
    (tmp_path / "fixture").mkdir()
    source = release_copy(release, tmp_path / "fixture")
    if backend == "sqlite":  # the very file that release wrote
        url = f"sqlite:///{release_copy(release, tmp_path)}"
    else:
        url = str(pg())
        seed_at(url, revision, source)
    before = read_rows(make_engine(url))
    assert current_revision(make_engine(url)) == revision
    assert sum(1 for c in before["clip"] if c["state"] == "stored") >= CLOUD_CLIPS + LOCAL_CLIPS
    assert before["storedobject"] and before["account"][0]["refresh_token"]

    engine = open_database(url)
    assert_head_schema(engine)
    after = read_rows(engine)
    assert_rows_kept(expected_after_upgrade(before, revision), after)
    assert {c["state"] for c in after["clip"]} >= {"stored", "discovered", "downloaded", "failed", "pruned",
                                                    "duplicate"}  # fmt: skip
    with engine.begin() as conn:  # the listing starts over: every clip Blink has is listed again
        conn.execute(text("DELETE FROM cursor"))
        conn.execute(text("UPDATE account SET login_needed_reason = NULL, pending_signin = NULL"))
        conn.execute(text("DELETE FROM rate_memory"))  # the fixture's learned 1.5 requests/s: a slow test
    engine.dispose()

    with Simulator(SimConfig(two_factor=False)) as sim:
        ids = build_world(sim)
        archived = {c["identity"] for c in after["clip"] if c["source"] == "cloud" and c["state"] == "stored"}
        assert {f"cloud:{i}" for i in ids} == archived, (
            "the simulator numbers clips differently: see make_release_db"
        )
        settings = usb_settings(tmp_path / "data", sim, database={"url": url})
        report = run_sync(settings)
        assert report.ok, report
        assert report.stored == 0 and report.new == 0, report
        assert sim.request_count("/media/clip/") == 0
        assert sim.request_count("/clip/request/", method="POST") == 0  # no USB clip uploaded
    assert_rows_kept(
        {t: after[t] for t in ("clip", "storedobject")},
        {t: read_rows(make_engine(url))[t] for t in ("clip", "storedobject")},
    )


@pytest.mark.parametrize("revision", REVISIONS)
def test_a_database_at_each_earlier_revision_upgrades_with_every_row(
    revision: str, backend: str, tmp_path: Path, pg: Any
) -> None:
    source = FIXTURES / ("release-5c9e0d4.db" if revision < "0003" else "release-29ba6ac.db")
    url = database_at(backend, tmp_path, revision, source, pg)
    before = read_rows(make_engine(url))
    assert current_revision(make_engine(url)) == revision
    engine = open_database(url)
    assert_head_schema(engine)
    assert_rows_kept(expected_after_upgrade(before, revision), read_rows(engine))


def test_the_upgrade_of_a_release_database_is_one_transaction(tmp_path: Path) -> None:
    """A reference no row satisfies makes the foreign-key check before the commit refuse: nothing of the
    upgrade is left (revision, tables, columns) and the message is one line."""
    path = release_copy("5c9e0d4", tmp_path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE storedobject SET clip_id = 999 WHERE id = 1")
        schema = db.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    with pytest.raises(ConfigError, match="broken reference") as err:
        open_database(f"sqlite:///{path}")
    assert "\n" not in str(err.value)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("0001",)]
        assert db.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema


# ------------------------------------------------------------------ what an older release's crash left
def _sqlite(path: Path, *statements: str) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA foreign_keys=OFF")
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()


def test_a_batch_copy_left_beside_its_table_is_dropped_and_the_upgrade_goes_on(tmp_path: Path) -> None:
    """The brick of the 0003 upgrade (release 29ba6ac on a database of 5c9e0d4): `_alembic_tmp_clip`
    beside an intact `clip`, the revision still 0001."""
    path = release_copy("5c9e0d4", tmp_path)
    before = read_rows(make_engine(f"sqlite:///{path}"))
    _sqlite(path, "CREATE TABLE _alembic_tmp_clip AS SELECT * FROM clip")
    engine = open_database(f"sqlite:///{path}")
    assert_head_schema(engine)
    assert_rows_kept(expected_after_upgrade(before, "0001"), read_rows(engine))


def test_the_empty_tables_of_a_killed_first_start_are_made_again(tmp_path: Path) -> None:
    """An older release killed in its first start: an empty alembic_version and some empty tables
    (`table account already exists` for every later run of that release)."""
    path = tmp_path / "archiver.db"
    _sqlite(
        path,
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",
        "CREATE TABLE account (id INTEGER NOT NULL PRIMARY KEY, name VARCHAR NOT NULL)",
        "CREATE TABLE lease (name VARCHAR NOT NULL PRIMARY KEY)",
    )
    assert_head_schema(open_database(f"sqlite:///{path}"))


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (  # only the batch copy survived: its table cannot be told complete
            ["CREATE TABLE _alembic_tmp_clip AS SELECT * FROM clip", "DROP TABLE clip"],
            "temporary copy",
        ),
        (["DELETE FROM alembic_version"], "no schema revision"),  # rows, but no revision
        (["ALTER TABLE clip DROP COLUMN codec"], "lacks codec"),  # less than its revision: not ours
    ],
)
def test_a_half_made_database_that_cannot_be_repaired_is_one_line_naming_reindex(
    tmp_path: Path, damage: list[str], says: str
) -> None:
    path = release_copy("5c9e0d4", tmp_path)
    _sqlite(path, *damage)
    schema = sqlite3.connect(path).execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
    with pytest.raises(ConfigError, match=says) as err:
        open_database(f"sqlite:///{path}")
    assert "archiver reindex" in str(err.value) and "\n" not in str(err.value)
    assert err.value.exit_code == 2
    assert (
        sqlite3.connect(path).execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()
        == schema
    )


@pytest.mark.parametrize(
    ("revision", "damage"),
    [
        # an older release's interrupted 0002 added one of its three columns
        ("0001", ["ALTER TABLE account ADD COLUMN pending_signin VARCHAR"]),
        # ... 0004 added its column and index, not the index on storedobject.key
        (
            "0003",
            [
                "ALTER TABLE clip ADD COLUMN archive_key VARCHAR",
                "CREATE UNIQUE INDEX ix_clip_archive_key ON clip (archive_key)",
            ],
        ),
        # ... 0005 created its table
        ("0004", ["CREATE TABLE rate_memory (account_id INTEGER NOT NULL PRIMARY KEY, rate FLOAT)"]),
        # ... 0007 made one of its two indexes
        ("0006", ["CREATE INDEX ix_clip_state_camera ON clip (state, account_id, created_at)"]),
    ],
)
def test_what_an_interrupted_upgrade_of_an_older_release_added_is_undone_and_the_upgrade_runs(
    tmp_path: Path, revision: str, damage: list[str]
) -> None:
    source = FIXTURES / ("release-5c9e0d4.db" if revision < "0003" else "release-29ba6ac.db")
    url = database_at("sqlite", tmp_path, revision, source, None)
    before = read_rows(make_engine(url))
    _sqlite(tmp_path / "archiver.db", *damage)
    engine = open_database(url)
    assert_head_schema(engine)
    assert_rows_kept(expected_after_upgrade(before, revision), read_rows(engine))


def test_a_database_newer_than_the_code_is_one_line_exit_2_and_untouched(
    database_url: str, tmp_path: Path
) -> None:
    from helpers import run_cli

    open_database(database_url).dispose()
    engine = make_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
        conn.execute(text("ALTER TABLE clip ADD COLUMN from_the_future INTEGER"))
    before = read_rows(engine)
    env = {"PATH": "/usr/bin:/bin", "ARCHIVER_DATA_DIR": str(tmp_path / "data"),
           "ARCHIVER_DATABASE__URL": database_url}  # fmt: skip
    out = run_cli(["status"], env)
    assert out.returncode == 2, out.stderr
    [line] = out.stderr.strip().splitlines()
    assert "revision 0099 is newer than this release" in line and "nothing was changed" in line
    assert current_revision(engine) == "0099" and read_rows(engine) == before
