"""`archiver run` as a real process against the simulator: health, readiness, metrics, a clean SIGTERM
in the middle of a sync, and a following `archiver sync` that completes the archive exactly once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from helpers import free_port, sim_config
from sqlmodel import select

from archiver.db.engine import make_engine, session_scope
from archiver.db.models import Clip, ClipState
from archiver.last_sync import read as read_last_syncs
from archiver.simulator import SimConfig, Simulator

CLI = "import archiver.cli.worker; from archiver.cli import main; main()"


def write_config(tmp_path: Path, sim: Simulator, port: int) -> Path:
    return sim_config(
        tmp_path,
        sim,
        '[schedule]\ninterval = "1m"\n'
        f'[server]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\nunhealthy_after = "1h"\n'
        "[log]\njson = true\n",
    )


def start(cfg: Path, *args: str, log: Path | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "ARCHIVER_CONFIG": str(cfg)}
    env.pop("ARCHIVER_DATA_DIR", None)
    out = log.open("w") if log else subprocess.PIPE
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(check: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"worker exited early with {proc.returncode} while waiting for {what}"
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            m = re.match(r"[^{ ]+(?:\{(.*)\})? (\S+)$", line)
            if not m:
                continue
            got = dict(re.findall(r'(\w+)="([^"]*)"', m[1] or ""))
            if all(got.get(k) == v for k, v in labels.items()):
                return float(m[2])
    return None


def stored_in_db(tmp_path: Path) -> int:
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'archiver.db'}")
    try:
        with session_scope(engine) as s:
            return len(s.exec(select(Clip).where(Clip.state == ClipState.stored)).all())
    finally:
        engine.dispose()


@pytest.mark.timeout(90)
def test_worker_health_metrics_sigterm_and_resume(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with Simulator(SimConfig(two_factor=False)) as sim:
        cam = sim.add_camera(sim.add_network("Home"), "Front Door")
        sim.add_clips(cam, 6)
        cfg = write_config(tmp_path, sim, port)

        # 1) first sync runs at once; health, readiness and metrics reflect it
        proc = start(cfg, "run", log=tmp_path / "worker1.log")
        try:
            wait_for(lambda: httpx.get(f"{base}/healthz").status_code == 200, 20, "/healthz", proc)

            def stored_six() -> bool:
                text = httpx.get(f"{base}/metrics").text
                return metric(text, "archiver_clips_stored_total", account="default") == 6.0

            wait_for(stored_six, 30, "6 stored clips in /metrics", proc)
            text = httpx.get(f"{base}/metrics").text
            assert metric(text, "archiver_syncs_total", account="default", result="ok") == 1.0
            assert (metric(text, "archiver_last_success_timestamp_seconds", account="default") or 0) > 0
            assert metric(text, "archiver_clips_pending", account="default", state="discovered") == 0.0
            assert metric(text, "archiver_cursor_lag_seconds", account="default") is not None
            assert metric(text, "archiver_bytes_stored_total", account="default")
            assert 'archiver_blink_request_seconds_count{account="default"' in text
            assert 'what="download clip"' in text
            ready = httpx.get(f"{base}/readyz")
            assert ready.status_code == 200, ready.text
            ui = httpx.get(f"{base}/")  # the web UI on the same port
            assert ui.status_code == 200 and "Front Door" in ui.text and "6 clips" in ui.text
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        log1 = (tmp_path / "worker1.log").read_text()
        assert sim.config.password not in log1
        assert '"msg": "sync done account=default result=ok' in log1
        ran = read_last_syncs(tmp_path / "data")["default"]  # what `archiver status` shows
        assert (ran.result, ran.stored, ran.exit_code) == ("ok", 6, 0)

        # 2) a slow sync is in flight when SIGTERM arrives: exit 0 fast, nothing half-written
        sim.add_clips(cam, 8)
        sim.faults.bandwidth_bps = 100_000
        sim.faults.latency_s = 0.1
        proc = start(cfg, "run", log=tmp_path / "worker2.log")
        try:

            def downloading() -> bool:
                text = httpx.get(f"{base}/metrics").text
                return 'what="download clip"' in text

            wait_for(downloading, 30, "a download in flight", proc)
            time.sleep(0.5)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
            assert time.monotonic() - t0 < 15
        finally:
            if proc.poll() is None:
                proc.kill()
        log2 = (tmp_path / "worker2.log").read_text()
        assert "sync cancelled account=default" in log2, log2[-2000:]
        assert not list((tmp_path / "data" / "archive").rglob("*.part"))
        assert stored_in_db(tmp_path) < 14  # it really was interrupted

        # 3) the next sync completes everything: nothing lost, nothing duplicated
        sim.faults.bandwidth_bps = 0
        sim.faults.latency_s = 0
        out = start(cfg, "sync")
        stdout, _ = out.communicate(timeout=40)
        assert out.returncode == 0, stdout
    clips = list((tmp_path / "data" / "archive").rglob("*.mp4"))
    assert len(clips) == 14
    assert stored_in_db(tmp_path) == 14
    assert not list((tmp_path / "data").rglob("*.part"))


def test_sync_trigger() -> None:
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    from archiver.config import Settings
    from archiver.worker import sync_trigger

    cron = sync_trigger(Settings(schedule={"cron": "*/15 * * * *"}))  # type: ignore[arg-type]
    assert isinstance(cron, CronTrigger)
    interval = sync_trigger(Settings(schedule={"interval": "15m"}))  # type: ignore[arg-type]
    assert isinstance(interval, IntervalTrigger) and interval.interval.total_seconds() == 900


@pytest.mark.timeout(60)
def test_worker_on_postgres(tmp_path: Path, pg_url: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with Simulator(SimConfig(two_factor=False)) as sim:
        cam = sim.add_camera(sim.add_network("Home"), "Front Door")
        sim.add_clips(cam, 3)
        cfg = write_config(tmp_path, sim, port)
        cfg.write_text(cfg.read_text() + f'[database]\nurl = "{pg_url}"\n')
        proc = start(cfg, "run", log=tmp_path / "worker.log")
        try:

            def stored() -> bool:
                text = httpx.get(f"{base}/metrics").text
                return metric(text, "archiver_clips_stored_total", account="default") == 3.0

            wait_for(stored, 30, "3 stored clips in /metrics", proc)
            text = httpx.get(f"{base}/metrics").text
            assert metric(text, "archiver_clips_pending", account="default", state="failed") == 0.0
            assert httpx.get(f"{base}/readyz").status_code == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert len(list((tmp_path / "data" / "archive").rglob("*.mp4"))) == 3


def test_readyz_reports_database_down(tmp_path: Path) -> None:
    from archiver.config import Settings
    from archiver.worker import Worker

    s = Settings(data_dir=tmp_path, server={"enabled": True, "host": "127.0.0.1", "port": 0})  # type: ignore[arg-type]
    engine = make_engine(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/nothing")
    worker = Worker(s, engine)
    from archiver.web.app import create_app
    from archiver.web.server import WebServer

    app = create_app(s, engine, metrics=worker.metrics, ready=worker.ready, destinations=[])
    srv = WebServer(app, s.server).start()
    try:
        base = f"http://127.0.0.1:{srv.port}"
        assert httpx.get(f"{base}/healthz").status_code == 200
        r = httpx.get(f"{base}/readyz")
        assert r.status_code == 503 and r.text.startswith("database unavailable")
        m = httpx.get(f"{base}/metrics")  # the DB gauges are skipped, the rest still renders
        assert m.status_code == 200 and "archiver_syncs_total" in m.text
    finally:
        srv.stop()
        engine.dispose()


@pytest.mark.timeout(60)
def test_readyz_fails_while_a_sync_runs_longer_than_unhealthy_after(tmp_path: Path) -> None:
    """A trickling clip keeps one sync busy: past ``unhealthy_after`` /readyz says so (503)."""
    import asyncio
    import contextlib

    from helpers import make_settings

    from archiver.db.engine import open_engine
    from archiver.web.app import create_app
    from archiver.worker import Worker

    with Simulator(SimConfig(two_factor=False)) as sim:
        cam = sim.add_camera(sim.add_network("Home"), "Front Door")
        sim.add_clips(cam, 2, size=400_000)
        sim.faults.bandwidth_bps = 50_000  # ~8 s per clip

        s = make_settings(
            tmp_path,
            sim,
            server={"enabled": True, "host": "127.0.0.1", "port": 0, "unhealthy_after": "1s"},
            processing={"probe": False},
        )
        engine = open_engine(s)
        worker = Worker(s, engine)
        app = create_app(s, engine, metrics=worker.metrics, ready=worker.ready, destinations=[])

        async def readyz() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as c:
                return await c.get("/readyz")

        async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
            first = await readyz()
            job = asyncio.create_task(worker.sync_job())
            await asyncio.sleep(2.5)
            during = await readyz()
            worker.stopping = True
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
            return first, during, await readyz()

        first, during, after = asyncio.run(scenario())
        engine.dispose()
    assert first.status_code == 200
    assert during.status_code == 503 and during.text.startswith("a sync has been running for"), during.text
    assert after.status_code == 200
