"""Every configuration and environment error is one line naming the key, with the documented exit code
(2: fix the configuration; 1: an outage, retry later), from the real CLI, before anything is downloaded."""

# ruff: noqa: F811
from __future__ import annotations

import json
import os
import socket
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import PASSWORD, USER, free_port, run_cli
from s3_fixtures import moto_server  # noqa: F401

from archiver.simulator import Simulator

Case = Callable[[Path], tuple[dict[str, str], list[str]]]  # tmp dir -> (env, args)


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARCHIVER_", "AWS_"))}
    env.update(
        ARCHIVER_DATA_DIR=str(tmp / "data"), ARCHIVER_BLINK__SERVER_URL=f"http://127.0.0.1:{free_port()}"
    )
    env.update(extra)
    return env


def _a_file(tmp: Path) -> Path:
    path = tmp / "a-file"
    path.write_bytes(b"not a folder")
    return path


def _not_a_database(tmp: Path) -> str:
    path = tmp / "garbage.db"
    path.write_bytes(b"garbage " * 1000)
    return f"sqlite:///{path}"


def _s3(**cfg: object) -> str:
    return json.dumps([{"type": "s3", "bucket": "blink-archive", **cfg}])


CASES: dict[str, tuple[Case, int, str]] = {
    "data-dir-is-a-file": (
        lambda t: (_env(t, ARCHIVER_DATA_DIR=str(_a_file(t) / "data")), ["status"]),
        2,
        "error: data_dir: cannot create",
    ),
    "database-url-garbage": (
        lambda t: (_env(t, ARCHIVER_DATABASE__URL="nonsense"), ["status"]),
        2,
        "error: invalid setting database.url:",
    ),
    "database-url-unsupported": (
        lambda t: (_env(t, ARCHIVER_DATABASE__URL="mysql://u@localhost/db"), ["status"]),
        2,
        "error: invalid setting database.url: 'mysql' is not supported",
    ),
    "database-folder-is-a-file": (
        lambda t: (_env(t, ARCHIVER_DATABASE__URL=f"sqlite:///{_a_file(t)}/x.db"), ["status"]),
        2,
        "error: database.url: cannot create or open",
    ),
    "database-not-sqlite": (
        lambda t: (_env(t, ARCHIVER_DATABASE__URL=_not_a_database(t)), ["status"]),
        2,
        "error: database: /",  # "<path> is damaged (file is not a database): move it aside ..." (test_db)
    ),
    "database-server-down": (
        lambda t: (
            _env(t, ARCHIVER_DATABASE__URL=f"postgresql://u:Pg-Secret-1@127.0.0.1:{free_port()}/db"),
            ["status"],
        ),
        1,
        "error: database: ",
    ),
    "destinations-not-json": (
        lambda t: (_env(t, ARCHIVER_DESTINATIONS="s3://bucket"), ["status"]),
        2,
        "error: invalid setting destinations: ARCHIVER_DESTINATIONS must be JSON",
    ),
    "cameras-not-json": (
        lambda t: (_env(t, ARCHIVER_SYNC__CAMERAS="Front Door"), ["status"]),
        2,
        "error: invalid setting sync.cameras: ARCHIVER_SYNC__CAMERAS must be JSON",
    ),
    "accounts-not-json": (
        lambda t: (_env(t, ARCHIVER_ACCOUNTS="me"), ["status"]),
        2,
        "error: invalid setting accounts:",
    ),
    "unknown-destination-type": (
        lambda t: (_env(t, ARCHIVER_DESTINATIONS='[{"type": "ftp"}]'), ["status"]),
        2,
        "error: invalid setting destinations[0]:",
    ),
    "bad-bucket-name": (
        lambda t: (_env(t, ARCHIVER_DESTINATIONS=_s3(bucket="a/b")), ["status"]),
        2,
        "error: invalid setting destinations[0].bucket:",
    ),
    "bad-endpoint": (
        lambda t: (_env(t, ARCHIVER_DESTINATIONS=_s3(endpoint_url="minio:9000")), ["status"]),
        2,
        "error: invalid setting destinations[0].endpoint_url:",
    ),
    "bad-log-level": (
        lambda t: (_env(t, ARCHIVER_LOG__LEVEL="LOUD"), ["status"]),
        2,
        "error: invalid setting log.level: 'LOUD' is not a log level",
    ),
    "bad-cron": (
        lambda t: (_env(t, ARCHIVER_SCHEDULE__CRON="every day"), ["run"]),
        2,
        "error: invalid setting schedule.cron:",
    ),
    "bad-prune-interval": (
        lambda t: (_env(t, ARCHIVER_SCHEDULE__PRUNE_INTERVAL="soon"), ["run"]),
        2,
        "error: invalid setting schedule.prune_interval:",
    ),
    "bad-unhealthy-after": (
        lambda t: (_env(t, ARCHIVER_SERVER__UNHEALTHY_AFTER="x"), ["run"]),
        2,
        "error: invalid setting server.unhealthy_after:",
    ),
    "bad-failing-for": (
        lambda t: (_env(t, ARCHIVER_NOTIFY__FAILING_FOR="1 hour"), ["run"]),
        2,
        "error: invalid setting notify.failing_for:",
    ),
    "bad-discovery-interval": (
        lambda t: (_env(t, ARCHIVER_LOCAL_STORAGE__DISCOVERY_INTERVAL="daily"), ["sync"]),
        2,
        "error: invalid setting local_storage.discovery_interval:",
    ),
    "bad-since": (
        lambda t: (_env(t, ARCHIVER_SYNC__SINCE="yesterday"), ["sync"]),
        2,
        "error: invalid setting sync.since:",
    ),
    "positional-template": (
        lambda t: (_env(t, ARCHIVER_SYNC__FILENAME_TEMPLATE="{}.mp4"), ["sync"]),
        2,
        "error: invalid setting sync.filename_template: positional field",
    ),
    "bad-server-url": (
        lambda t: (_env(t, ARCHIVER_BLINK__SERVER_URL="localhost:8080"), ["sync"]),
        2,
        "error: invalid setting blink.server_url:",
    ),
    "bad-rest-template": (
        lambda t: (_env(t, ARCHIVER_BLINK__REST_URL_TEMPLATE="https://rest-{region}.example"), ["sync"]),
        2,
        "error: invalid setting blink.rest_url_template:",
    ),
    "staging-is-a-file": (
        lambda t: (_env(t, ARCHIVER_SYNC__STAGING_DIR=str(_a_file(t) / "st")), ["sync"]),
        2,
        "error: sync.staging_dir:",
    ),
    "ffmpeg-missing": (
        lambda t: (_env(t, ARCHIVER_PROCESSING__FFMPEG=str(t / "no-ffmpeg")), ["sync"]),
        2,
        "error: processing.ffmpeg",
    ),
    "disk-destination-is-a-file": (
        lambda t: (
            _env(t, ARCHIVER_DESTINATIONS=json.dumps([{"type": "disk", "path": str(_a_file(t) / "x")}])),
            ["sync"],
        ),
        2,
        "error: destinations[0]: disk destination 'disk':",
    ),
    "s3-unreachable": (
        lambda t: (
            _env(
                t,
                ARCHIVER_DESTINATIONS=_s3(
                    endpoint_url=f"http://127.0.0.1:{free_port()}",
                    access_key_id="AKID",
                    secret_access_key="S3-Secret-1",
                    region="us-east-1",
                ),
                AWS_MAX_ATTEMPTS="1",
            ),
            ["sync"],
        ),
        1,
        "error: destinations[0]: s3 destination 's3'",
    ),
    "config-file-missing": (
        lambda t: (_env(t), ["--config", str(t / "missing.toml"), "status"]),
        2,
        "error: config file not found:",
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_configuration_and_environment_errors_are_one_line_with_their_exit_code(
    tmp_path: Path, case: str
) -> None:
    setup, code, needle = CASES[case]
    env, args = setup(tmp_path)
    res = run_cli(args, env, timeout=60)
    lines = res.stderr.strip().splitlines()
    assert (res.returncode, len(lines)) == (code, 1), res.stderr
    assert lines[0].startswith(needle), lines[0]
    assert "unexpected" not in lines[0] and "Secret-1" not in res.stdout + res.stderr
    assert not (tmp_path / "data" / "staging").exists() or not any((tmp_path / "data" / "staging").iterdir())


def test_a_missing_bucket_is_found_before_any_download(tmp_path: Path, moto_server: str) -> None:
    env = _env(
        tmp_path,
        ARCHIVER_DESTINATIONS=_s3(endpoint_url=moto_server, region="us-east-1", bucket="no-such-bucket"),
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    res = run_cli(["sync"], env)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"error: destinations[0]: s3 destination 's3' ({moto_server}, bucket 'no-such-bucket'): "
        "bucket does not exist"
    ]


def test_the_health_port_in_use_names_server_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = _env(
            tmp_path,
            ARCHIVER_SERVER__ENABLED="true",
            ARCHIVER_SERVER__HOST="127.0.0.1",
            ARCHIVER_SERVER__PORT=str(port),
        )
        res = run_cli(["run"], env, timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1] == (
        f"error: server.port: 127.0.0.1:{port} is already in use (another archiver?)"
    )


@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_data_dir_names_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o500)
    res = run_cli(["status"], _env(tmp_path))
    assert res.returncode == 2 and res.stderr.startswith("error: data_dir:")


def test_a_full_disk_under_the_database_is_one_line_and_exit_1(tmp_path: Path, sim: Simulator) -> None:
    """SQLite's own "database or disk is full" (a page limit), raised in the middle of a sync's tasks."""
    sim.add_clips(sim.add_camera(sim.add_network("Home"), "Front Door"), 40, size=10_000)
    env = _env(
        tmp_path,
        ARCHIVER_BLINK__SERVER_URL=sim.url,
        ARCHIVER_BLINK__USERNAME=USER,
        ARCHIVER_BLINK__PASSWORD=PASSWORD,
        ARCHIVER_BLINK__MAX_REQUESTS_PER_SECOND="0",
    )
    assert run_cli(["status"], env).returncode == 0  # the database exists, migrated
    db = sqlite3.connect(tmp_path / "data" / "archiver.db")
    pages = db.execute("PRAGMA page_count").fetchone()[0]
    db.close()
    code = (
        "import sqlalchemy, archiver.db.engine as e\n"
        "make = e.make_engine\n"
        "def full(url):\n"
        "    engine = make(url)\n"
        f"    pragma = 'PRAGMA max_page_count={pages + 2}'\n"
        "    sqlalchemy.event.listen(engine, 'connect', lambda c, r: c.execute(pragma))\n"
        "    return engine\n"
        "e.make_engine = full\n"
        "from archiver.cli import main; main()\n"
    )
    import subprocess

    res = subprocess.run(
        [sys.executable, "-c", code, "sync"], env=env, capture_output=True, text=True, timeout=60
    )
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1, res.stderr
    assert lines[-1].startswith("error: database: disk full"), res.stderr
    assert "unexpected" not in res.stderr and "ExceptionGroup" not in res.stderr


def test_a_postgresql_database_that_does_not_exist_names_database_url(
    tmp_path: Path, pg_server_url: str
) -> None:
    url = pg_server_url.rsplit("/", 1)[0] + "/archiver_no_such_database"
    res = run_cli(["status"], _env(tmp_path, ARCHIVER_DATABASE__URL=url))
    assert res.returncode == 2
    [line] = res.stderr.strip().splitlines()
    assert line.startswith("error: database.url: ") and "does not exist" in line
