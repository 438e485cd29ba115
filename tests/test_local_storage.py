"""Sync Module USB storage end to end: real HTTP against the simulator, SQLite in tmp_path."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from archiver.blink.local_storage import alnum, size_matches
from archiver.config import Settings, load_settings
from archiver.db import repo
from archiver.db.engine import session_scope
from archiver.db.models import Clip, ClipSource, ClipState, Lease, StoredObject
from archiver.pipeline.report import SyncReport
from archiver.pipeline.runner import open_engine, sync_all
from archiver.simulator import Faults, SimConfig, Simulator
from archiver.sources.usb import ModuleReport, UsbReport, local_identity

UPLOAD_POST = "/clip/request/"
MANIFEST_POST = "/manifest/request"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    faults = Faults(manifest_ready_after_s=0.2, command_complete_after_s=0.1, upload_delay_s=0.1)
    with Simulator(SimConfig(two_factor=False), faults) as s:
        yield s


def make_settings(
    sim: Simulator, tmp_path: Path, sync: dict[str, Any] | None = None, **local: Any
) -> Settings:
    return load_settings(
        None,
        sync=sync or {},
        data_dir=tmp_path,
        blink={
            "server_url": sim.url,
            "username": sim.config.username,
            "password": sim.config.password,
            "max_requests_per_second": 0,
            "backoff_max_s": 0.5,
        },
        database={"url": f"sqlite:///{tmp_path / 'archiver.db'}"},
        local_storage={
            "poll_interval_s": 0.05,
            "busy_pause_s": 0.05,
            "command_deadline_s": 10,
            "manifest_deadline_s": 10,
            "upload_deadline_s": 20,
            **local,
        },
    )


def run_sync(settings: Settings) -> SyncReport:
    engine = open_engine(settings)
    try:
        [report] = asyncio.run(sync_all(settings, engine))
    finally:
        engine.dispose()
    return report


def modules(report: SyncReport) -> dict[int, ModuleReport]:
    usb = report.sources["local"]
    assert isinstance(usb, UsbReport)
    return usb.modules


def archive_files(settings: Settings, suffix: str) -> list[Path]:
    return sorted(p for p in settings.archive_dir.rglob(f"*{suffix}") if p.is_file())


def rows(settings: Settings, source: ClipSource | None = None) -> list[Clip]:
    engine = open_engine(settings)
    try:
        with session_scope(engine) as s:
            q = select(Clip)
            if source is not None:
                q = q.where(Clip.source == source)
            return list(s.exec(q))
    finally:
        engine.dispose()


def archived_hashes(settings: Settings) -> list[str]:
    return sorted(sha(p) for p in archive_files(settings, ".mp4"))


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_helpers() -> None:
    assert alnum("Back Door #2") == "BackDoor2"
    assert size_matches(150, 150 * 1024 - 100) == "KiB"
    assert size_matches(153_600, 153_600) == "bytes"
    assert size_matches(10, 150_000) is None
    at = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert local_identity(7, 42, at) == "local:7:42:2024-05-01T12:00:00+00:00"


def test_usb_clips_archived_then_noop_sync(sim: Simulator, tmp_path: Path) -> None:
    net = sim.add_network("Home")
    cam = sim.add_camera(net, "Back Door")
    other_net = sim.add_network("Elsewhere")
    stray = sim.add_camera(other_net, "Garage Cam")  # not a camera of the module's network: unmapped
    sm = sim.add_sync_module(net, "SM2")
    ids = [sim.add_local_clip(sm, cam) for _ in range(3)] + [sim.add_local_clip(sm, stray)]
    settings = make_settings(sim, tmp_path)

    report = run_sync(settings)
    assert report.exit_code == 0, report
    mod = modules(report)[sm]
    summary = (mod.status, mod.manifest_clips, mod.new, mod.stored, mod.failed)
    assert summary == ("ok", 4, 4, 4, 0)
    mp4s = archive_files(settings, ".mp4")
    assert sorted(sha(p) for p in mp4s) == sorted(sim.local_clip_sha256(i) for i in ids)
    for p in mp4s:  # USB clips have no Blink thumbnail: a generated one lands next to each clip
        assert p.with_suffix(".jpg").is_file() and p.with_suffix(".jpg").read_bytes()[:3] == b"\xff\xd8\xff"
        doc = json.loads(p.with_suffix(".json").read_text())
        assert doc["source"] == "local" and doc["manifest_size"] > 0
    local = rows(settings, ClipSource.local)
    assert len(local) == 4 and all(c.state == ClipState.stored for c in local)
    unmapped = [c for c in local if c.camera_blink_id is None]
    assert [c.camera_name for c in unmapped] == ["GarageCam"]
    assert unmapped[0].identity.startswith(f"local:{sm}:GarageCam:")
    engine = open_engine(settings)
    with session_scope(engine) as s:
        assert repo.state_counts(s)[("local", "stored")] == 4

    sim.reset_requests()
    report = run_sync(settings)
    assert report.exit_code == 0, report
    assert sim.request_count(MANIFEST_POST, "POST") == 1
    assert sim.request_count(UPLOAD_POST, "POST") == 0
    assert sim.request_count("/homescreen") == 0  # discovery came from the database cache
    assert len(archive_files(settings, ".mp4")) == 4


def test_cloud_only_account_costs_nothing_once_cached(sim: Simulator, tmp_path: Path) -> None:
    net = sim.add_network("Home")
    sim.add_clips(sim.add_camera(net, "Front"), 2)
    settings = make_settings(sim, tmp_path)
    assert run_sync(settings).exit_code == 0
    assert sim.request_count("/homescreen") == 1
    sim.reset_requests()
    report = run_sync(settings)
    assert report.exit_code == 0 and modules(report) == {}
    assert sim.request_count("/homescreen") == 0 and sim.request_count("/local_storage") == 0


def test_renumbered_manifest_downloads_nothing_twice(sim: Simulator, tmp_path: Path) -> None:
    net = sim.add_network("Home")
    cam = sim.add_camera(net, "Porch")
    sm = sim.add_sync_module(net, "SM2")
    for _ in range(2):
        sim.add_local_clip(sm, cam)
    settings = make_settings(sim, tmp_path)
    assert run_sync(settings).exit_code == 0
    sim.renumber_local_clips(sm)
    late = sim.add_local_clip(sm, cam)
    sim.reset_requests()
    report = run_sync(settings)
    assert report.exit_code == 0, report
    assert sim.request_count(UPLOAD_POST, "POST") == 1  # only the new clip
    assert modules(report)[sm].new == 1
    assert len(archive_files(settings, ".mp4")) == 3
    local = rows(settings, ClipSource.local)
    assert len(local) == 3 and {c.state for c in local} == {ClipState.stored}
    assert late not in {c.blink_id for c in local}  # every row carries the newest manifest's clip id


def test_offline_module_is_reported_and_cloud_still_stored(sim: Simulator, tmp_path: Path) -> None:
    net = sim.add_network("Cabin")
    cam = sim.add_camera(net, "Deck")
    sm = sim.add_sync_module(net, "Cabin SM2")
    sim.add_local_clip(sm, cam)
    settings = make_settings(sim, tmp_path)
    assert run_sync(settings).exit_code == 0

    # offline while the discovery cache still says "active": the module answers 409 code 1007
    sim.set_sync_module_online(sm, False)
    sim.add_local_clip(sm, cam)
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30)  # not a USB recording's instant
    cloud_ids = [sim.add_clip(cam, created_at=base + timedelta(minutes=i)) for i in range(2)]
    report = run_sync(settings)
    assert report.exit_code == 1
    assert report.stored == 2 and report.failed == 0
    assert modules(report)[sm].status == "offline"
    message = f"sync module 'Cabin SM2' (id {sm}): offline; its USB clips will be fetched next run"
    assert message in report.errors, report.errors
    stored_cloud = [c for c in rows(settings, ClipSource.cloud) if c.state == ClipState.stored]
    assert {c.blink_id for c in stored_cloud} == {str(i) for i in cloud_ids}

    # next run re-reads the homescreen, which lists the module offline: reported without USB calls
    sim.reset_requests()
    report = run_sync(settings)
    assert report.exit_code == 1 and sim.request_count("/homescreen") == 1
    assert sim.request_count("/local_storage") == 0
    assert any("offline" in e for e in report.errors)

    sim.set_sync_module_online(sm, True)
    report = run_sync(settings)
    assert report.exit_code == 0, report
    assert len(rows(settings, ClipSource.local)) == 2
    assert {c.state for c in rows(settings)} == {ClipState.stored}


def test_busy_module_and_slow_uploads(sim: Simulator, tmp_path: Path) -> None:
    sim.faults.busy_rate = 0.3
    sim.faults.upload_delay_s = 0.4
    sim.faults.command_complete_after_s = 0.2
    net = sim.add_network("Home")
    cam = sim.add_camera(net, "Yard")
    sm = sim.add_sync_module(net, "SM2")
    ids = [sim.add_local_clip(sm, cam) for _ in range(4)]
    settings = make_settings(sim, tmp_path)
    report = run_sync(settings)
    assert report.exit_code == 0, report
    assert archived_hashes(settings) == sorted(sim.local_clip_sha256(i) for i in ids)
    posts = sim.request_count(UPLOAD_POST, "POST") + sim.request_count(MANIFEST_POST, "POST")
    assert posts > 5  # some of the 5 needed POSTs were answered busy and retried


def test_same_recording_in_cloud_and_on_usb_is_stored_once(sim: Simulator, tmp_path: Path) -> None:
    net = sim.add_network("Home")
    cam = sim.add_camera(net, "Drive Way")
    sm = sim.add_sync_module(net, "SM2")
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    cloud_id = sim.add_clip(cam, created_at=at)
    sim.add_local_clip(sm, cam, created_at=at)
    settings = make_settings(sim, tmp_path)

    report = run_sync(settings)
    assert report.exit_code == 0, report
    assert sim.request_count(UPLOAD_POST, "POST") == 0
    assert [sha(p) for p in archive_files(settings, ".mp4")] == [sim.clip_sha256(cloud_id)]
    assert modules(report)[sm].duplicates == 1
    report = run_sync(settings)  # the cloud copy is stored now: the USB row is its duplicate
    [local] = rows(settings, ClipSource.local)
    [cloud] = rows(settings, ClipSource.cloud)
    assert local.state == ClipState.duplicate and local.size is None and local.last_error is None
    assert local.duplicate_of == cloud.id and cloud.state == ClipState.stored
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")},
        "ARCHIVER_DATA_DIR": str(tmp_path),
        "ARCHIVER_DATABASE__URL": settings.database_url,
        "COLUMNS": "200",
    }
    status = subprocess.run(
        [sys.executable, "-c", "from archiver.cli import main; main()", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    header = next(line for line in status.stdout.splitlines() if "source" in line)
    local_line = next(line for line in status.stdout.splitlines() if " local " in line)
    cells = [c.strip() for c in header.split("┃")], [c.strip() for c in local_line.split("│")]
    assert dict(zip(*cells, strict=True))["duplicate"] == "1", status.stdout
    assert sim.request_count(UPLOAD_POST, "POST") == 0 and len(archive_files(settings, ".mp4")) == 1

    # the other way round: archived from USB first, then the cloud lists the same recording
    at2 = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)  # newer than the listing cursor
    usb_id = sim.add_local_clip(sm, cam, created_at=at2)
    assert run_sync(settings).exit_code == 0
    sim.add_clip(cam, created_at=at2 + timedelta(seconds=1))
    sim.reset_requests()
    assert run_sync(settings).exit_code == 0
    assert sim.request_count("/media/clip/") == 0
    mp4s = archive_files(settings, ".mp4")
    assert len(mp4s) == 2 and sim.local_clip_sha256(usb_id) in {sha(p) for p in mp4s}
    marked = [c for c in rows(settings, ClipSource.cloud) if c.state == ClipState.duplicate]
    stored_usb = {c.id for c in rows(settings, ClipSource.local) if c.state == ClipState.stored}
    assert len(marked) == 1 and marked[0].duplicate_of in stored_usb


def test_kill_during_upload_wait_then_resume(sim: Simulator, tmp_path: Path) -> None:
    sim.faults.upload_delay_s = 60  # the module "uploads" for a minute: the run sits in the fetch poll
    net = sim.add_network("Home")
    cam = sim.add_camera(net, "Shed")
    sm = sim.add_sync_module(net, "SM2")
    ids = [sim.add_local_clip(sm, cam) for _ in range(2)]
    settings = make_settings(sim, tmp_path)
    env = {
        **os.environ,
        "ARCHIVER_DATA_DIR": str(tmp_path),
        "ARCHIVER_DATABASE__URL": settings.database_url,
        "ARCHIVER_BLINK__SERVER_URL": sim.url,
        "ARCHIVER_BLINK__USERNAME": sim.config.username,
        "ARCHIVER_BLINK__PASSWORD": sim.config.password,
        "ARCHIVER_BLINK__MAX_REQUESTS_PER_SECOND": "0",
        "ARCHIVER_LOCAL_STORAGE__POLL_INTERVAL_S": "0.05",
        "ARCHIVER_LOCAL_STORAGE__UPLOAD_DEADLINE_S": "120",
    }
    env.pop("ARCHIVER_CONFIG", None)
    cmd = [sys.executable, "-c", "from archiver.cli import main; main()", "sync"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 30
        while sim.request_count(UPLOAD_POST, "POST") == 0:
            assert proc.poll() is None, "sync ended before any USB upload was requested"
            assert time.monotonic() < end, "no USB upload request within 30 s"
            time.sleep(0.02)
        time.sleep(0.3)  # inside the upload wait (command polls / 'Media not found' polls)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert archive_files(settings, ".mp4") == []

    sim.faults.upload_delay_s = 0.1
    engine = open_engine(settings)
    with session_scope(engine) as s:  # the killed run's lease would expire after its TTL
        for lease in s.exec(select(Lease)):
            s.delete(lease)
    engine.dispose()
    report = run_sync(settings)
    assert report.exit_code == 0, report
    assert archived_hashes(settings) == sorted(sim.local_clip_sha256(i) for i in ids)
    local = rows(settings, ClipSource.local)
    assert len(local) == 2 and {c.state for c in local} == {ClipState.stored}
    engine = open_engine(settings)
    with session_scope(engine) as s:
        clips = [o for o in s.exec(select(StoredObject)) if o.kind.value == "clip"]
    engine.dispose()
    assert len(clips) == 2 and len({o.clip_id for o in clips}) == 2

    status = subprocess.run(
        [sys.executable, "-c", "from archiver.cli import main; main()", "status"],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    local_line = next(line for line in status.stdout.splitlines() if "local" in line)
    assert "2" in local_line


def test_a_pending_usb_clip_that_left_the_card_is_reported_not_left_pending(
    sim: Simulator, tmp_path: Path
) -> None:
    net = sim.add_network("Cabin")
    cam = sim.add_camera(net, "Porch")
    sm = sim.add_sync_module(net, "SM2", local_storage=True)
    gone, kept = sim.add_local_clip(sm, cam, size=20_000), sim.add_local_clip(sm, cam, size=20_000)
    sim.faults.upload_delay_s = 30  # the first sync gives up waiting: both clips stay pending
    first = run_sync(make_settings(sim, tmp_path, upload_deadline_s=0.3))
    settings = make_settings(sim, tmp_path)
    assert first.exit_code == 1
    assert {c.state for c in rows(settings, ClipSource.local)} == {ClipState.failed}
    next(c for c in sim.state.local_clips.values() if c.clip_id == gone).deleted = True  # the card rotated it
    sim.faults.upload_delay_s = 0.1
    run_sync(settings)
    by_id = {c.blink_id: c for c in rows(settings, ClipSource.local)}
    assert by_id[kept].state == ClipState.stored
    lost = by_id[gone]
    assert lost.state == ClipState.failed and lost.deleted_upstream
    assert "no longer on the USB storage" in (lost.last_error or "")


@pytest.mark.parametrize("only", [{"cameras": ["Front Door"]}, {"networks": ["Home"]}])
def test_camera_and_network_filters_hold_for_cloud_and_usb_clips(
    sim: Simulator, tmp_path: Path, only: dict[str, list[str]]
) -> None:
    home, cabin = sim.add_network("Home"), sim.add_network("Cabin")
    front, yard, deck = (
        sim.add_camera(home, "Front Door"),
        sim.add_camera(home, "Back Yard"),
        sim.add_camera(cabin, "Deck"),
    )
    home_sm, cabin_sm = sim.add_sync_module(home, "Home SM2"), sim.add_sync_module(cabin, "Cabin SM2")
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    for i, cam in enumerate((front, yard, deck)):
        sim.add_clip(cam, created_at=base + timedelta(minutes=i))
        sim.add_local_clip(
            home_sm if cam != deck else cabin_sm, cam, created_at=base + timedelta(minutes=10 + i)
        )
    report = run_sync(make_settings(sim, tmp_path, sync=only))
    assert report.exit_code == 0, report
    wanted = {"Front Door"} if "cameras" in only else {"Front Door", "Back Yard"}
    stored = [c for c in rows(make_settings(sim, tmp_path)) if c.state == ClipState.stored]
    assert sorted((c.source, c.camera_name) for c in stored) == sorted(
        (src, cam) for src in ("cloud", "local") for cam in wanted
    )
    assert len(archive_files(make_settings(sim, tmp_path), ".mp4")) == 2 * len(wanted)
