"""`archiver demo` points at the web UI, and `archiver demo --serve` serves the demo archive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from helpers import free_port, run_cli


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}


def test_demo_ends_by_showing_how_to_open_the_ui(tmp_path: Path) -> None:
    res = run_cli(["demo", "--folder", str(tmp_path / "demo"), "--clips", "1"], _env())
    assert res.returncode == 0, res.stderr
    assert f"ARCHIVER_DATA_DIR={tmp_path / 'demo'} .venv/bin/archiver serve" in res.stdout
    assert "http://127.0.0.1:8080/" in res.stdout
    assert f".venv/bin/archiver demo --serve --folder {tmp_path / 'demo'}" in res.stdout  # the same folder


def test_demo_serve_serves_the_demo_archive(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from archiver.cli import main; main()",
            "demo",
            "--folder",
            str(tmp_path / "demo"),
            "--clips",
            "1",
            "--serve",
            "--port",
            str(port),
        ],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        page = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert page is not None and page.status_code == 200, proc.poll()
        for name in ("Front Door", "Back Yard", "Porch", "Cabin", "Home"):
            assert name in page.text
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
        assert f"http://127.0.0.1:{port}/" in out
        assert proc.returncode == 0, out[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_worker_refuses_a_public_ui_without_auth(tmp_path: Path) -> None:
    from helpers import cli_env

    class NoSim:
        url = "http://127.0.0.1:9"

    env = cli_env(
        tmp_path,
        NoSim(),  # type: ignore[arg-type]
        ARCHIVER_SERVER__ENABLED="true",
        ARCHIVER_SERVER__HOST="0.0.0.0",
        ARCHIVER_SERVER__PORT=str(free_port()),
    )
    res = run_cli(["run"], env, timeout=60)
    assert res.returncode == 2
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: refusing to serve the web UI on 0.0.0.0 without authentication")


def test_worker_status_page_says_which_account_needs_a_login(tmp_path: Path) -> None:
    """A sync that hits the 2FA wall marks the account on the worker's status page."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    import httpx
    from helpers import USER, make_settings

    from archiver.db.engine import open_engine, session_scope
    from archiver.db.models import Account
    from archiver.db.repo import get_or_create_account
    from archiver.simulator import SimConfig, Simulator
    from archiver.web.app import create_app
    from archiver.web.queries import login_needed
    from archiver.worker import Worker

    with Simulator(SimConfig(two_factor=True)) as sim:
        sim.add_camera(sim.add_network("Home"), "Front Door")
        s = make_settings(tmp_path, sim)
        engine = open_engine(s)
        acct = get_or_create_account(engine, "default", USER, "oauth")
        with session_scope(engine) as ses:  # a stored session Blink no longer accepts
            row = ses.get(Account, acct.id)
            assert row is not None
            row.access_token, row.refresh_token = "stale-access", "stale-refresh"
            row.token_expires_at = datetime.now(UTC) - timedelta(hours=1)
            ses.add(row)
            assert login_needed(row) is None  # the database alone cannot tell
        worker = Worker(s, engine)
        app = create_app(
            s, engine, metrics=worker.metrics, ready=worker.ready, login_check=worker.login_needed
        )

        async def go() -> str:
            await worker.sync_account("default")
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as c:
                return (await c.get("/status")).text

        html = asyncio.run(go())
        engine.dispose()
    assert "login needed</span>" in html and "2FA PIN" in html and "run `archiver login`" in html
    assert sim.config.password not in html
