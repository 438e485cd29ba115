"""Kill -9 at random moments, then sync again: nothing lost, nothing duplicated, nothing half-written."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import PASSWORD, USER, archive_files, cli_env, run_cli, sha256
from sqlmodel import Session, func, select

from archiver.db.engine import make_engine
from archiver.db.models import Clip, ClipState, StoredObject
from archiver.simulator import SimConfig, Simulator


@pytest.mark.timeout(400)
def test_kill_9_at_random_moments_then_sync_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    rng = random.Random(7)
    with Simulator(SimConfig(two_factor=False)) as sim:
        net = sim.add_network("Home")
        ids = [
            *sim.add_clips(sim.add_camera(net, "Front Door"), 15, size=150_000),
            *sim.add_clips(sim.add_camera(net, "Garage"), 15, size=150_000),
        ]
        sim.faults.latency_s = 0.01
        sim.faults.bandwidth_bps = 400_000  # a sync of the 30 clips takes seconds: there is time to kill it
        env = cli_env(tmp_path, sim, ARCHIVER_BLINK__USERNAME=USER, ARCHIVER_BLINK__PASSWORD=PASSWORD)
        cameras = [sim.add_camera(net, "Side Gate")]
        kills = 0
        for _ in range(20):  # until 6 syncs were really interrupted, however fast the machine is
            if kills >= 6:
                break
            proc = subprocess.Popen(
                [sys.executable, "-c", "from archiver.cli import main; main()", "sync"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(rng.uniform(0.8, 3.5))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            else:  # that sync finished everything: give the next one work to be interrupted in
                ids += sim.add_clips(cameras[0], 24, size=150_000)
            proc.wait()
        assert kills >= 5, "the loop must really interrupt syncs"
        sim.faults.latency_s = 0
        sim.faults.bandwidth_bps = 0
        res = run_cli(["sync"], env)
        assert res.returncode == 0, res.stderr

        archive = tmp_path / "archive"
        clips = archive_files(archive, ".mp4")
        assert sorted(sha256(p) for p in clips) == sorted(sim.clip_sha256(i) for i in ids)
        assert len(archive_files(archive, ".jpg")) == len(ids)
        assert len(archive_files(archive, ".json")) == len(ids)
        leftovers = [
            p
            for p in tmp_path.rglob("*")
            if p.is_file() and (p.name.endswith(".part") or p.name.startswith("."))
        ]
        assert leftovers == []
        with Session(make_engine(f"sqlite:///{tmp_path / 'archiver.db'}")) as s:
            assert s.exec(select(func.count()).select_from(Clip)).one() == len(ids)
            assert s.exec(
                select(func.count()).select_from(Clip).where(Clip.state == ClipState.stored)
            ).one() == len(ids)
            assert s.exec(select(func.count()).select_from(StoredObject)).one() == 3 * len(ids)
