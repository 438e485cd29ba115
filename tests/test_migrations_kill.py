"""An upgrade that a kill -9 (an OOM kill, a pod eviction, a power cut) interrupts leaves nothing half-made:
`archiver status` is killed at spread instants of its first start and of an upgrade from revision 0001,
and every later run succeeds. Processes starting at once on an empty database all succeed (they migrate
once, one after the other)."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import CLI
from test_migrations import (
    FIXTURES,
    Rows,
    assert_head_schema,
    assert_rows_kept,
    expected_after_upgrade,
    read_rows,
)

from archiver.db.engine import make_engine, open_database

KILLS = 32  # instants per scenario


def _env(data_dir: Path, url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    env["ARCHIVER_DATA_DIR"] = str(data_dir)
    if url:
        env["ARCHIVER_DATABASE__URL"] = url
    return env


def _fork_status(data_dir: Path, kill_at: int | None = None) -> int:
    """`archiver status` in a forked child (the modules are loaded already). It kills itself with SIGKILL
    just before its ``kill_at``-th database statement or commit (None: it counts them into
    ``data_dir``/statements instead); its output goes to ``data_dir``/out."""
    # what the command loads, loaded once here: not in every child (nor under the import lock of a thread
    # of this process, which a forked child could never take)
    import alembic.command  # noqa: F401
    import rich.console
    import rich.table  # noqa: F401
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    import archiver.db.models
    import archiver.db.summary  # noqa: F401
    from archiver.cli import commands, demo, maintenance, web, worker  # noqa: F401

    out = os.open(data_dir / "out", os.O_WRONLY | os.O_CREAT, 0o600)
    pid = os.fork()
    if pid:
        os.close(out)
        return pid
    code = 70
    try:
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.environ.clear()
        os.environ.update(_env(data_dir))
        sys.argv = ["archiver", "status"]
        seen = 0
        counter = open(data_dir / "statements", "a")  # noqa: SIM115

        def step(conn: Any, *_: object) -> None:
            if not conn.engine.url.database:
                return  # the in-memory schema an upgrade compares with: not the database's work
            nonlocal seen
            seen += 1
            if seen == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            if kill_at is None:
                counter.write(".")
                counter.flush()

        event.listen(Engine, "before_cursor_execute", step)
        event.listen(Engine, "commit", step)
        from archiver.cli import main

        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os._exit(code)


def _wait(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _schema(db: Path) -> tuple[list[tuple[str, str, list[str]]], list[tuple[str]]]:
    """The tables, indexes and their SQL, and the revision: what a kill may have left. (A batch
    recreation orders a table's constraints as a set iterates: the lines are compared sorted.)"""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
        version = conn.execute("SELECT version_num FROM alembic_version").fetchall() if rows else []
    lines = [(kind, name, sorted(line.strip().rstrip(",") for line in (sql or "").splitlines()))
             for kind, name, sql in rows]  # fmt: skip
    return lines, version


def _calibrate(tmp_path: Path, template: Path | None) -> tuple[int, tuple[object, object]]:
    """How many statements and commits a whole run makes, and the schema it leaves."""
    data = tmp_path / "calibrate"
    data.mkdir()
    if template is not None:
        shutil.copyfile(template, data / "archiver.db")
    assert _wait(_fork_status(data)) == 0, (data / "out").read_text()
    return len((data / "statements").read_text()), _schema(data / "archiver.db")


def _kill_at_spread_instants(tmp_path: Path, template: Path | None, before: Rows | None) -> dict[str, int]:
    """kill -9 at KILLS instants spread over a whole run (before its 1st, ..., its last statement or
    commit). After each kill the database is exactly as before the run or exactly the head schema
    (nothing half-made); on every fourth, and on the last, the next run is made too. Returns how many
    kills left the database untouched and how many came after the upgrade's commit."""
    total, head = _calibrate(tmp_path, template)
    assert total > KILLS
    untouched = _schema(template) if template is not None else ([], [])
    left_as: list[str] = []
    for n in range(KILLS):
        data = tmp_path / f"run{n}"
        data.mkdir()
        db = data / "archiver.db"
        if template is not None:
            shutil.copyfile(template, db)
        kill_at = 1 + n * (total - 1) // (KILLS - 1)
        code = _wait(_fork_status(data, kill_at))
        assert code == -signal.SIGKILL, (data / "out").read_text()
        left = _schema(db)
        assert left in (untouched, head), f"killed before statement {kill_at} of {total}"
        left_as.append("head" if left == head else "untouched")
        if n % 4 == 3:
            # the next run (what a restarted pod or the next timer does) succeeds and finds every row
            engine = open_database(f"sqlite:///{db}")
            assert_head_schema(engine)
            if before is not None:
                assert_rows_kept(before, read_rows(engine))
            engine.dispose()
    last = subprocess.run([*CLI, "status"], env=_env(tmp_path / f"run{KILLS - 2}"), capture_output=True)
    assert last.returncode == 0, last.stderr
    return {"statements": total, **{s: left_as.count(s) for s in ("untouched", "head")}}


def test_a_first_start_killed_at_any_instant_leaves_a_database_the_next_run_uses(tmp_path: Path) -> None:
    counts = _kill_at_spread_instants(tmp_path, None, None)
    print(f"first start: {KILLS} kills {counts}", end=" ")
    assert counts["untouched"] > KILLS // 2 and counts["head"] > 0


def test_an_upgrade_from_0001_killed_at_any_instant_leaves_every_row(tmp_path: Path) -> None:
    template = FIXTURES / "release-5c9e0d4.db"
    before = expected_after_upgrade(read_rows(make_engine(f"sqlite:///{template}")), "0001")
    counts = _kill_at_spread_instants(tmp_path, template, before)
    print(f"upgrade from 0001: {KILLS} kills {counts}", end=" ")
    assert counts["untouched"] > KILLS // 2 and counts["head"] > 0


@pytest.mark.parametrize("processes", [3])
def test_processes_starting_at_once_on_an_empty_database_all_succeed(
    database_url: str, tmp_path: Path, processes: int
) -> None:
    """A worker, a CronJob pod and `archiver serve` starting together: one migrates, the others wait for
    it and find the schema made."""
    procs = [
        subprocess.Popen(
            [*CLI, "status"],
            env=_env(tmp_path / "data", database_url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    assert_head_schema(make_engine(database_url))
