"""`archiver demo` points at the web UI, and `archiver demo --serve` serves the demo archive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from conftest import free_port, run_cli


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}


def test_demo_ends_by_showing_how_to_open_the_ui(tmp_path: Path) -> None:
    res = run_cli(["demo", "--folder", str(tmp_path / "demo"), "--clips", "1"], _env())
    assert res.returncode == 0, res.stderr
    assert f"ARCHIVER_DATA_DIR={tmp_path / 'demo'} archiver serve" in res.stdout
    assert "http://127.0.0.1:8080/" in res.stdout and "archiver demo --serve" in res.stdout


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
