"""Start-up structure of the CLI: `--help` and `status` load no more than they need (not timed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from archiver.db.engine import open_database
from archiver.simulator import Simulator
from tests.helpers import cli_env, run_cli, sim_config

HEAVY = ("pydantic_settings", "sqlalchemy", "sqlmodel", "httpx", "alembic", "av", "boto3", "rich")


def _loaded_after(args: list[str], data_dir: Path) -> set[str]:
    code = (
        "import json, sys\n"
        "from archiver.cli import main\n"
        f"sys.argv = ['archiver', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)\n"
    )
    env = {"ARCHIVER_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"}
    cp = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    return set(json.loads(cp.stderr.strip().splitlines()[-1]))


def test_help_imports_no_settings_database_or_http_library(tmp_path: Path) -> None:
    assert not _loaded_after(["--help"], tmp_path) & set(HEAVY)


def test_status_reads_the_database_without_the_orm(tmp_path: Path) -> None:
    open_database(f"sqlite:///{tmp_path / 'archiver.db'}").dispose()  # created (migrations need alembic)
    loaded = _loaded_after(["status"], tmp_path)
    assert "sqlalchemy" in loaded  # it did read the database
    assert not loaded & {"sqlmodel", "httpx", "alembic", "av", "boto3"}


def test_sync_and_status_processes_print_everything_and_leave_the_database_folded_back(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    """`sync` and `status` end the process at once after releasing the database (no interpreter
    teardown): every line is still printed, the exit code kept, SQLite's WAL folded into the file."""
    sim.add_clips(camera, 3, size=20_000)
    sim.quirks.forbidden_ids = {sim.add_clip(camera, size=20_000)}
    cfg = sim_config(tmp_path, sim)
    env = cli_env(tmp_path / "data", sim)

    synced = run_cli(["--config", str(cfg), "sync"], env)
    assert synced.returncode == 1, synced.stderr  # one clip refused
    assert "stored 3, failed 1" in synced.stdout
    assert "refused (HTTP 403)" in synced.stderr

    status = run_cli(["--config", str(cfg), "status"], env)
    assert status.returncode == 0, status.stderr
    assert status.stdout.rstrip().endswith("(HTTP 403)")  # the last line, the failed clip, is there
    assert "archive size:" in status.stdout
    assert not list((tmp_path / "data").glob("*.db-wal"))
