"""Logs: secrets redacted everywhere (tracebacks too), terminal control characters escaped, database
errors never print a statement's parameters."""

from __future__ import annotations

import io
import logging
import sqlite3
import threading
from pathlib import Path

import pytest
from helpers import PASSWORD, USER, cli_env, run_cli

from archiver.logs import REDACTOR, escape_controls, safe_markup, setup_logging
from archiver.simulator import SimConfig, Simulator


@pytest.fixture
def stream() -> io.StringIO:
    out = io.StringIO()
    setup_logging("DEBUG", stream=out)
    yield out
    setup_logging("WARNING")


def test_control_characters_in_plain_log_lines_are_escaped(stream: io.StringIO) -> None:
    logging.getLogger("archiver.test").info("camera=%s", "Front\x1b[2J\x1b[31mDoor\nFAKE ERROR line\u202e")
    text = stream.getvalue()
    assert text.count("\n") == 1  # one record, one line
    assert "\x1b" not in text and "\u202e" not in text
    assert "Front\\x1b[2J\\x1b[31mDoor\\x0aFAKE ERROR line\\u202e" in text


def test_tracebacks_go_through_the_redactor(stream: io.StringIO) -> None:
    REDACTOR.add("Tr4ceback-Secret-Value")
    try:
        raise RuntimeError("token Tr4ceback-Secret-Value and \x1b[31m")
    except RuntimeError:
        logging.getLogger("archiver.test").exception("failed")
    text = stream.getvalue()
    assert "Traceback" in text and "RuntimeError" in text
    assert "Tr4ceback-Secret-Value" not in text and "\x1b" not in text


def test_an_uncaught_exception_in_a_thread_is_logged_redacted(stream: io.StringIO) -> None:
    REDACTOR.add("Thr3ad-Secret-Value")

    def boom() -> None:
        raise ValueError("refresh_token=Thr3ad-Secret-Value")

    t = threading.Thread(target=boom, name="worker-1")
    t.start()
    t.join()
    text = stream.getvalue()
    assert "uncaught ValueError in thread worker-1" in text and "Thr3ad-Secret-Value" not in text


def test_safe_markup_shows_server_text_as_written() -> None:
    assert safe_markup("[bold red]x[/]\x07") == "\\[bold red]x\\[/]\\x07"
    assert escape_controls("a\tb\nc", keep_newlines=True) == "a\\x09b\nc"


@pytest.fixture
def sim_plain() -> Simulator:
    with Simulator(SimConfig(two_factor=False)) as s:
        s.add_clips(s.add_camera(s.add_network("Home"), "Front Door"), 2, size=20_000)
        yield s


def test_a_database_error_while_saving_refreshed_tokens_prints_no_token(
    tmp_path: Path, sim_plain: Simulator
) -> None:
    env = cli_env(tmp_path, sim_plain)
    res = run_cli(["login", "--username", USER, "--password-stdin"], env, input=PASSWORD)
    assert res.returncode == 0, res.stderr
    db = sqlite3.connect(tmp_path / "archiver.db")
    db.execute(
        "CREATE TRIGGER no_token_save BEFORE UPDATE OF access_token ON account "
        "BEGIN SELECT RAISE(ABORT, 'simulated failure'); END"
    )
    db.commit()
    db.close()
    sim_plain.expire_tokens()  # the sync must refresh, and the refreshed pair cannot be saved
    res = run_cli(["-v", "sync"], env)
    text = res.stdout + res.stderr
    issued = [*sim_plain.state.access_tokens, *sim_plain.state.refresh_tokens]
    assert sim_plain.state.refresh_count >= 1 and len(issued) >= 3
    assert "simulated failure" in text or res.returncode != 0
    for token in issued:
        assert token not in text
    assert "[parameters:" not in text


def test_status_escapes_markup_and_controls_from_the_server(tmp_path: Path, sim_plain: Simulator) -> None:
    env = cli_env(tmp_path, sim_plain)
    run_cli(["login", "--username", USER, "--password-stdin"], env, input=PASSWORD)
    assert run_cli(["sync"], env).returncode == 0
    db = sqlite3.connect(tmp_path / "archiver.db")
    db.execute("UPDATE clip SET state='failed', attempts=1, last_error=? ", ("[bold red]boom[/]\x1b[2J",))
    db.commit()
    db.close()
    res = run_cli(["status"], env)
    assert res.returncode == 0, res.stderr
    assert "[bold red]boom[/]\\x1b[2J" in res.stdout and "\x1b" not in res.stdout


def test_a_crash_with_v_prints_a_redacted_traceback_and_one_error_line(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    env.update(ARCHIVER_DATA_DIR=str(tmp_path), ARCHIVER_BLINK__PASSWORD="Cr4sh-Secret-Pw")
    code = (
        "import archiver.db.engine as e\n"
        "def boom(settings):\n"
        "    raise RuntimeError('bug while holding ' + settings.blink.password.get_secret_value())\n"
        "e.open_engine = boom\n"
        "from archiver.cli import main; main()\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, "-v", "status"], env=env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 1
    assert "Traceback" in res.stderr and "Cr4sh-Secret-Pw" not in res.stdout + res.stderr
    assert (
        res.stderr.strip().splitlines()[-1]
        == "error: unexpected RuntimeError: bug while holding *** (run with -v for details)"
    )


def test_human_log_lines_have_no_timestamp_are_redacted_and_escaped() -> None:
    out = io.StringIO()
    REDACTOR.add("Hum4n-Secret")
    setup_logging("WARNING", stream=out, human=True)
    try:
        log = logging.getLogger("archiver.test")
        log.info("not shown")
        log.warning("camera=%s password Hum4n-Secret", "Front\x1b[2JDoor")
    finally:
        setup_logging("WARNING")
    assert out.getvalue() == "warning: camera=Front\\x1b[2JDoor password ***\n"
