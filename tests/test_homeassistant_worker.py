"""`archiver run` with Home Assistant: the "sync now" button (debounced, waiting for the lease), the last
will on kill -9, offline on a clean stop, and a broker that is down never holding the worker up."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import free_port, make_settings, sim_config
from mqtt_fixtures import Broker, Listener, clip_events, retained
from sqlmodel import select

from archiver.db.engine import make_engine, session_scope
from archiver.db.lease import release, try_acquire
from archiver.db.models import Clip, ClipState
from archiver.homeassistant.bridge import SYNC_NOW_DEBOUNCE_S
from archiver.pipeline.runner import open_engine
from archiver.simulator import SimConfig, Simulator


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "mosquitto").start()
    try:
        yield b
    finally:
        b.stop()


# -- the worker (`archiver run` as a real process) ----------------------------------------------------
WORKER = "import archiver.cli.worker; from archiver.cli import main; main()"


def _start_worker(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    env["ARCHIVER_CONFIG"] = str(cfg)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", WORKER, "run"], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )


def _status(listener: Listener) -> str | None:
    got = listener.topic("blink-archiver/status")
    return got[-1].payload.decode() if got else None


@pytest.mark.timeout(120)
def test_worker_sync_now_archives_new_clips_and_kill_9_turns_availability_offline(
    tmp_path: Path, broker: Broker
) -> None:
    with Simulator(SimConfig(two_factor=False)) as sim:
        cam = sim.add_camera(sim.add_network("Home"), "Front Door")
        first = sim.add_clips(cam, 2)
        cfg = sim_config(tmp_path, sim, f'[schedule]\ninterval = "1h"\n[mqtt]\nurl = "{broker.url}"\n')
        listener = Listener(broker, ["blink-archiver/#"])
        log = tmp_path / "worker.log"
        proc = _start_worker(cfg, log)
        try:
            listener.wait(lambda: _status(listener) == "online", 30, "availability online")
            listener.wait(lambda: len(clip_events(listener)) == 2, 30, "the first sync's events")
            assert proc.poll() is None

            # three presses in a row: one more sync, which archives the new clips
            second = sim.add_clips(cam, 3)
            pressed = time.monotonic()
            for _ in range(3):
                listener.publish("blink-archiver/default/sync_now", "PRESS")
            listener.wait(lambda: len(clip_events(listener)) == 5, 30, "the events of the new clips")
            assert time.monotonic() - pressed < 15  # within a few seconds, not at the next interval (1 h)
            assert sorted(e["id"] for e in clip_events(listener)) == sorted(str(i) for i in first + second)
            time.sleep(SYNC_NOW_DEBOUNCE_S + 1)
            assert log.read_text().count("sync start account=default") == 2, log.read_text()[-3000:]
            state = json.loads(listener.topic("blink-archiver/default/state")[-1].payload)
            assert state["sync_problem"] is False and state["failed_clips"] == 0

            # another process holds the account's lease: a press waits for it, never overlaps
            engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'archiver.db'}")
            other = "elsewhere:1:cronjob"
            assert try_acquire(engine, "account:default", other, timedelta(minutes=2))
            third = sim.add_clips(cam, 1)
            listener.publish("blink-archiver/default/sync_now", "PRESS")
            time.sleep(SYNC_NOW_DEBOUNCE_S + 2)
            text = log.read_text()
            assert "waiting for the sync in progress to end" in text
            assert text.count("sync start account=default") == 2
            release(engine, "account:default", other)
            engine.dispose()
            listener.wait(
                lambda: len(clip_events(listener)) == 6, 30, "the event of the clip after the lease"
            )
            assert clip_events(listener)[-1]["id"] == str(third[0])
            assert log.read_text().count("sync start account=default") == 3

            # kill -9: the broker publishes the last will
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            listener.wait(lambda: _status(listener) == "offline", 15, "availability offline (last will)")
            assert retained(broker, "blink-archiver/status") == {"blink-archiver/status": b"offline"}

            # a clean stop says offline too (a clean disconnect does not fire the will); a press left
            # retained on the broker is stale, not a press
            listener.publish("blink-archiver/default/sync_now", "PRESS", retain=True)
            presses = log.read_text().count("pressed in Home Assistant")
            proc = _start_worker(cfg, log)
            listener.wait(lambda: _status(listener) == "online", 30, "availability online again")
            listener.wait(lambda: "ignored a retained" in log.read_text(), 10, "the stale press ignored")
            assert log.read_text().count("pressed in Home Assistant") == presses
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
            listener.wait(lambda: _status(listener) == "offline", 10, "availability offline (stop)")
        finally:
            if proc.poll() is None:
                proc.kill()
            listener.close()
    text = log.read_text()
    assert sim.config.password not in text


def test_the_worker_archives_and_stops_promptly_while_the_broker_is_down(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    from archiver.worker import Worker

    sim.add_clips(camera, 3)
    settings = make_settings(
        tmp_path, sim, mqtt={"url": f"mqtt://127.0.0.1:{free_port()}"}, schedule={"interval": "1h"}
    )
    engine = open_engine(settings)

    def stored() -> int:
        with session_scope(engine) as s:
            return len(s.exec(select(Clip).where(Clip.state == ClipState.stored)).all())

    async def scenario() -> tuple[int, float]:
        worker = Worker(settings, engine)
        run = asyncio.create_task(worker.run())
        deadline = time.monotonic() + 30
        while stored() < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        t0 = time.monotonic()
        worker.request_stop()
        code = await asyncio.wait_for(run, 20)
        return code, time.monotonic() - t0

    code, stop_s = asyncio.run(scenario())
    assert code == 0 and stored() == 3
    assert stop_s < 8  # no waiting on a broker that is not there
