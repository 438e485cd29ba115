"""Sync Module USB storage end to end: real HTTP against the simulator, SQLite in tmp_path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import CLI, archive_files, cli_env, run_cli, run_sync, sha256, usb_settings
from sqlmodel import select

from archiver.blink.local_storage import alnum, size_matches
from archiver.config import Settings
from archiver.db import repo
from archiver.db.engine import session_scope
from archiver.db.models import Camera, Clip, ClipSource, ClipState, Lease, StoredObject, SyncModule
from archiver.pipeline.report import SyncReport
from archiver.pipeline.runner import open_engine
from archiver.simulator import Simulator
from archiver.sources.usb import ModuleReport, UsbReport, local_identity

UPLOAD_POST = "/clip/request/"
MANIFEST_POST = "/manifest/request"


def modules(report: SyncReport) -> dict[int, ModuleReport]:
    usb = report.sources["local"]
    assert isinstance(usb, UsbReport)
    return usb.modules


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
    return sorted(sha256(p) for p in archive_files(settings.archive_dir, ".mp4"))


def test_helpers() -> None:
    assert alnum("Back Door #2") == "BackDoor2"
    assert size_matches(150, 150 * 1024 - 100) == "KiB"
    assert size_matches(153_600, 153_600) == "bytes"
    assert size_matches(10, 150_000) is None
    at = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert local_identity(7, 42, at) == "local:7:42:2024-05-01T12:00:00+00:00"


def test_usb_clips_archived_then_noop_sync(usb_sim: Simulator, tmp_path: Path) -> None:
    net = usb_sim.add_network("Home")
    cam = usb_sim.add_camera(net, "Back Door")
    other_net = usb_sim.add_network("Elsewhere")
    stray = usb_sim.add_camera(other_net, "Garage Cam")  # not a camera of the module's network: unmapped
    sm = usb_sim.add_sync_module(net, "SM2")
    ids = [usb_sim.add_local_clip(sm, cam) for _ in range(3)] + [usb_sim.add_local_clip(sm, stray)]
    settings = usb_settings(tmp_path, usb_sim)

    report = run_sync(settings)
    assert report.exit_code == 0, report
    mod = modules(report)[sm]
    summary = (mod.status, mod.manifest_clips, mod.new, mod.stored, mod.failed)
    assert summary == ("ok", 4, 4, 4, 0)
    mp4s = archive_files(settings.archive_dir, ".mp4")
    assert sorted(sha256(p) for p in mp4s) == sorted(usb_sim.local_clip_sha256(i) for i in ids)
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

    usb_sim.reset_requests()
    report = run_sync(settings)
    assert report.exit_code == 0, report
    assert usb_sim.request_count(MANIFEST_POST, "POST") == 1
    assert usb_sim.request_count(UPLOAD_POST, "POST") == 0
    assert usb_sim.request_count("/homescreen") == 0  # discovery came from the database cache
    assert len(archive_files(settings.archive_dir, ".mp4")) == 4


def test_cloud_only_account_costs_nothing_once_cached(usb_sim: Simulator, tmp_path: Path) -> None:
    net = usb_sim.add_network("Home")
    usb_sim.add_clips(usb_sim.add_camera(net, "Front"), 2)
    settings = usb_settings(tmp_path, usb_sim)
    assert run_sync(settings).exit_code == 0
    assert usb_sim.request_count("/homescreen") == 1
    usb_sim.reset_requests()
    report = run_sync(settings)
    assert report.exit_code == 0 and modules(report) == {}
    assert usb_sim.request_count("/homescreen") == 0 and usb_sim.request_count("/local_storage") == 0


def test_odd_homescreen_items_are_skipped_with_a_warning_and_the_others_are_read(
    usb_sim: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One odd camera, network or Sync Module (an id past 2**63, negative, a string, missing) used to
    fail the whole homescreen, so no USB clip was archived: now each is skipped with one warning."""
    net = usb_sim.add_network("Home")
    cam = usb_sim.add_camera(net, "Back Door")
    sm = usb_sim.add_sync_module(net, "SM2")
    ids = [usb_sim.add_local_clip(sm, cam) for _ in range(2)]
    front = usb_sim.add_camera(net, "Front")
    cloud = usb_sim.add_clips(front, 2)
    usb_sim.quirks.homescreen_items = {
        "cameras": [
            {"id": 2**63, "network_id": net, "name": "Huge Cam"},
            {"id": -5, "network_id": net, "name": "Negative Cam"},
            {"network_id": net, "name": "Nameless Id Cam"},
            {"id": cam, "network_id": net, "name": "Twin Of Back Door"},  # an id listed twice
        ],
        "owls": [{"id": "owl-7", "network_id": net, "name": "String Owl"}],
        "networks": [{"id": 2**64, "name": "Huge Net"}],
        "sync_modules": [
            {"id": 2**63 + 1, "network_id": net, "name": "Huge SM", "local_storage_status": "active"}
        ],
    }
    settings = usb_settings(tmp_path, usb_sim)
    with caplog.at_level("WARNING", logger="archiver"):
        report = run_sync(settings)
    assert report.exit_code == 0, report
    assert "7 homescreen items were unusable and skipped (see the log)" in report.notes
    skipped = [r.getMessage() for r in caplog.records if "homescreen: skipped" in r.getMessage()]
    assert len(skipped) == 7
    for name in ("Huge Cam", "Negative Cam", "Nameless Id Cam", "Twin Of Back Door", "String Owl"):
        assert sum(name in line for line in skipped) == 1, (name, skipped)
    for name in ("Huge Net", "Huge SM"):
        assert sum(name in line for line in skipped) == 1, (name, skipped)
    assert modules(report)[sm].stored == 2
    local = rows(settings, ClipSource.local)
    assert [c.camera_blink_id for c in local] == [cam, cam]  # the real camera was read and mapped
    assert archived_hashes(settings) == sorted(
        [usb_sim.local_clip_sha256(i) for i in ids] + [usb_sim.clip_sha256(i) for i in cloud]
    )
    engine = open_engine(settings)
    with session_scope(engine) as s:
        assert sorted(s.exec(select(Camera.blink_id))) == sorted([cam, front])
        assert list(s.exec(select(SyncModule.blink_id))) == [sm]
    engine.dispose()


def test_renumbered_manifest_downloads_nothing_twice(usb_sim: Simulator, tmp_path: Path) -> None:
    net = usb_sim.add_network("Home")
    cam = usb_sim.add_camera(net, "Porch")
    sm = usb_sim.add_sync_module(net, "SM2")
    for _ in range(2):
        usb_sim.add_local_clip(sm, cam)
    settings = usb_settings(tmp_path, usb_sim)
    assert run_sync(settings).exit_code == 0
    usb_sim.renumber_local_clips(sm)
    late = usb_sim.add_local_clip(sm, cam)
    usb_sim.reset_requests()
    report = run_sync(settings)
    assert report.exit_code == 0, report
    assert usb_sim.request_count(UPLOAD_POST, "POST") == 1  # only the new clip
    assert modules(report)[sm].new == 1
    assert len(archive_files(settings.archive_dir, ".mp4")) == 3
    local = rows(settings, ClipSource.local)
    assert len(local) == 3 and {c.state for c in local} == {ClipState.stored}
    assert late not in {c.blink_id for c in local}  # every row carries the newest manifest's clip id


def test_offline_module_is_reported_and_cloud_still_stored(usb_sim: Simulator, tmp_path: Path) -> None:
    net = usb_sim.add_network("Cabin")
    cam = usb_sim.add_camera(net, "Deck")
    sm = usb_sim.add_sync_module(net, "Cabin SM2")
    usb_sim.add_local_clip(sm, cam)
    settings = usb_settings(tmp_path, usb_sim)
    assert run_sync(settings).exit_code == 0

    # offline while the discovery cache still says "active": the module answers 409 code 1007
    usb_sim.set_sync_module_online(sm, False)
    usb_sim.add_local_clip(sm, cam)
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30)  # not a USB recording's instant
    cloud_ids = [usb_sim.add_clip(cam, created_at=base + timedelta(minutes=i)) for i in range(2)]
    report = run_sync(settings)
    assert report.exit_code == 1
    assert report.stored == 2 and report.failed == 0
    assert modules(report)[sm].status == "offline"
    message = f"sync module 'Cabin SM2' (id {sm}): offline; its USB clips will be fetched next run"
    assert message in report.errors, report.errors
    stored_cloud = [c for c in rows(settings, ClipSource.cloud) if c.state == ClipState.stored]
    assert {c.blink_id for c in stored_cloud} == {str(i) for i in cloud_ids}

    # next run re-reads the homescreen, which lists the module offline: reported without USB calls
    usb_sim.reset_requests()
    report = run_sync(settings)
    assert report.exit_code == 1 and usb_sim.request_count("/homescreen") == 1
    assert usb_sim.request_count("/local_storage") == 0
    assert any("offline" in e for e in report.errors)

    usb_sim.set_sync_module_online(sm, True)
    report = run_sync(settings)
    assert report.exit_code == 0, report
    assert len(rows(settings, ClipSource.local)) == 2
    assert {c.state for c in rows(settings)} == {ClipState.stored}


def test_busy_module_and_slow_uploads(usb_sim: Simulator, tmp_path: Path) -> None:
    usb_sim.faults.busy_rate = 0.3
    usb_sim.faults.upload_delay_s = 0.4
    usb_sim.faults.command_complete_after_s = 0.2
    net = usb_sim.add_network("Home")
    cam = usb_sim.add_camera(net, "Yard")
    sm = usb_sim.add_sync_module(net, "SM2")
    ids = [usb_sim.add_local_clip(sm, cam) for _ in range(4)]
    settings = usb_settings(tmp_path, usb_sim)
    report = run_sync(settings)
    assert report.exit_code == 0, report
    assert archived_hashes(settings) == sorted(usb_sim.local_clip_sha256(i) for i in ids)
    posts = usb_sim.request_count(UPLOAD_POST, "POST") + usb_sim.request_count(MANIFEST_POST, "POST")
    assert posts > 5  # some of the 5 needed POSTs were answered busy and retried


def test_same_recording_in_cloud_and_on_usb_is_stored_once(usb_sim: Simulator, tmp_path: Path) -> None:
    net = usb_sim.add_network("Home")
    cam = usb_sim.add_camera(net, "Drive Way")
    sm = usb_sim.add_sync_module(net, "SM2")
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    cloud_id = usb_sim.add_clip(cam, created_at=at)
    usb_sim.add_local_clip(sm, cam, created_at=at)
    settings = usb_settings(tmp_path, usb_sim)

    report = run_sync(settings)
    assert report.exit_code == 0, report
    assert usb_sim.request_count(UPLOAD_POST, "POST") == 0
    assert [sha256(p) for p in archive_files(settings.archive_dir, ".mp4")] == [usb_sim.clip_sha256(cloud_id)]
    assert modules(report)[sm].duplicates == 1
    report = run_sync(settings)  # the cloud copy is stored now: the USB row is its duplicate
    [local] = rows(settings, ClipSource.local)
    [cloud] = rows(settings, ClipSource.cloud)
    assert local.state == ClipState.duplicate and local.size is None and local.last_error is None
    assert local.duplicate_of == cloud.id and cloud.state == ClipState.stored
    status = run_cli(["status"], cli_env(tmp_path, usb_sim, COLUMNS="200"), timeout=60)
    header = next(line for line in status.stdout.splitlines() if "source" in line)
    local_line = next(line for line in status.stdout.splitlines() if " USB " in line)  # stored as "local"
    cells = [c.strip() for c in header.split("┃")], [c.strip() for c in local_line.split("│")]
    assert dict(zip(*cells, strict=True))["duplicate"] == "1", status.stdout
    assert (
        usb_sim.request_count(UPLOAD_POST, "POST") == 0
        and len(archive_files(settings.archive_dir, ".mp4")) == 1
    )

    # the other way round: archived from USB first, then the cloud lists the same recording
    at2 = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)  # newer than the listing cursor
    usb_id = usb_sim.add_local_clip(sm, cam, created_at=at2)
    assert run_sync(settings).exit_code == 0
    usb_sim.add_clip(cam, created_at=at2 + timedelta(seconds=1))
    usb_sim.reset_requests()
    assert run_sync(settings).exit_code == 0
    assert usb_sim.request_count("/media/clip/") == 0
    mp4s = archive_files(settings.archive_dir, ".mp4")
    assert len(mp4s) == 2 and usb_sim.local_clip_sha256(usb_id) in {sha256(p) for p in mp4s}
    marked = [c for c in rows(settings, ClipSource.cloud) if c.state == ClipState.duplicate]
    stored_usb = {c.id for c in rows(settings, ClipSource.local) if c.state == ClipState.stored}
    assert len(marked) == 1 and marked[0].duplicate_of in stored_usb


def test_kill_during_upload_wait_then_resume(usb_sim: Simulator, tmp_path: Path) -> None:
    usb_sim.faults.upload_delay_s = 60  # the module "uploads" for a minute: the run sits in the fetch poll
    net = usb_sim.add_network("Home")
    cam = usb_sim.add_camera(net, "Shed")
    sm = usb_sim.add_sync_module(net, "SM2")
    ids = [usb_sim.add_local_clip(sm, cam) for _ in range(2)]
    settings = usb_settings(tmp_path, usb_sim)
    env = cli_env(
        tmp_path,
        usb_sim,
        ARCHIVER_BLINK__USERNAME=usb_sim.config.username,
        ARCHIVER_BLINK__PASSWORD=usb_sim.config.password,
        ARCHIVER_LOCAL_STORAGE__POLL_INTERVAL_S="0.05",
        ARCHIVER_LOCAL_STORAGE__UPLOAD_DEADLINE_S="120",
    )
    proc = subprocess.Popen([*CLI, "sync"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 30
        while usb_sim.request_count(UPLOAD_POST, "POST") == 0:
            assert proc.poll() is None, "sync ended before any USB upload was requested"
            assert time.monotonic() < end, "no USB upload request within 30 s"
            time.sleep(0.02)
        time.sleep(0.3)  # inside the upload wait (command polls / 'Media not found' polls)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert archive_files(settings.archive_dir, ".mp4") == []

    usb_sim.faults.upload_delay_s = 0.1
    engine = open_engine(settings)
    with session_scope(engine) as s:  # the killed run's lease would expire after its TTL
        for lease in s.exec(select(Lease)):
            s.delete(lease)
    engine.dispose()
    report = run_sync(settings)
    assert report.exit_code == 0, report
    assert archived_hashes(settings) == sorted(usb_sim.local_clip_sha256(i) for i in ids)
    local = rows(settings, ClipSource.local)
    assert len(local) == 2 and {c.state for c in local} == {ClipState.stored}
    engine = open_engine(settings)
    with session_scope(engine) as s:
        clips = [o for o in s.exec(select(StoredObject)) if o.kind == "clip"]
    engine.dispose()
    assert len(clips) == 2 and len({o.clip_id for o in clips}) == 2

    status = run_cli(["status"], {**env, "COLUMNS": "200"}, timeout=60)
    assert status.returncode == 0, status.stderr
    usb_line = next(line for line in status.stdout.splitlines() if line.strip("│┃ ").startswith("USB"))
    assert "2" in usb_line  # the stored name "local" is shown as the user-facing word


def test_a_pending_usb_clip_that_left_the_card_is_reported_not_left_pending(
    usb_sim: Simulator, tmp_path: Path
) -> None:
    net = usb_sim.add_network("Cabin")
    cam = usb_sim.add_camera(net, "Porch")
    sm = usb_sim.add_sync_module(net, "SM2", local_storage=True)
    gone, kept = usb_sim.add_local_clip(sm, cam, size=20_000), usb_sim.add_local_clip(sm, cam, size=20_000)
    usb_sim.faults.upload_delay_s = 30  # the first sync gives up waiting: both clips stay pending
    no_backoff = {"retry_backoff": "0s"}  # failed clips are due again at once
    first = run_sync(
        usb_settings(tmp_path, usb_sim, sync=no_backoff, local_storage={"upload_deadline_s": 0.3})
    )
    settings = usb_settings(tmp_path, usb_sim, sync=no_backoff)
    assert first.exit_code == 1
    assert {c.state for c in rows(settings, ClipSource.local)} == {ClipState.failed}
    next(
        c for c in usb_sim.state.local_clips.values() if c.clip_id == gone
    ).deleted = True  # the card rotated it
    usb_sim.faults.upload_delay_s = 0.1
    run_sync(settings)
    by_id = {c.blink_id: c for c in rows(settings, ClipSource.local)}
    assert by_id[kept].state == ClipState.stored
    lost = by_id[gone]
    assert lost.state == ClipState.failed and lost.deleted_upstream
    assert "no longer on the USB storage" in (lost.last_error or "")


@pytest.mark.parametrize("only", [{"cameras": ["Front Door"]}, {"networks": ["Home"]}])
def test_camera_and_network_filters_hold_for_cloud_and_usb_clips(
    usb_sim: Simulator, tmp_path: Path, only: dict[str, list[str]]
) -> None:
    home, cabin = usb_sim.add_network("Home"), usb_sim.add_network("Cabin")
    front, yard, deck = (
        usb_sim.add_camera(home, "Front Door"),
        usb_sim.add_camera(home, "Back Yard"),
        usb_sim.add_camera(cabin, "Deck"),
    )
    home_sm, cabin_sm = usb_sim.add_sync_module(home, "Home SM2"), usb_sim.add_sync_module(cabin, "Cabin SM2")
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    for i, cam in enumerate((front, yard, deck)):
        usb_sim.add_clip(cam, created_at=base + timedelta(minutes=i))
        usb_sim.add_local_clip(
            home_sm if cam != deck else cabin_sm, cam, created_at=base + timedelta(minutes=10 + i)
        )
    report = run_sync(usb_settings(tmp_path, usb_sim, sync=only))
    assert report.exit_code == 0, report
    wanted = {"Front Door"} if "cameras" in only else {"Front Door", "Back Yard"}
    stored = [c for c in rows(usb_settings(tmp_path, usb_sim)) if c.state == ClipState.stored]
    assert sorted((c.source, c.camera_name) for c in stored) == sorted(
        (src, cam) for src in ("cloud", "local") for cam in wanted
    )
    assert len(archive_files(tmp_path / "archive", ".mp4")) == 2 * len(wanted)
