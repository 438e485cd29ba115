"""Cloud clips archived end to end over real HTTP against the simulator."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from helpers import PASSWORD, USER, archive_files, make_settings, run_sync, sha256
from sqlmodel import select

from archiver.db.engine import open_database, session_scope
from archiver.db.models import Account, Clip, ClipState, StoredObject
from archiver.pipeline.runner import open_engine, sync_all
from archiver.simulator import Simulator


def test_n_clips_arrive_with_thumbnails_and_sidecars_equal_to_what_was_served(
    tmp_path: Path, sim: Simulator, camera: int, database_url: str
) -> None:
    ids = sim.add_clips(camera, 7, size=60_000)
    blink_thumbs = {"thumbnail": "blink"}  # Blink's own thumbnails (the default makes them from the clip)
    report = run_sync(make_settings(tmp_path, sim, database={"url": database_url}, processing=blink_thumbs))
    assert (report.stored, report.failed, report.exit_code) == (7, 0, 0)
    archive = tmp_path / "archive"
    clips, thumbs, sidecars = (archive_files(archive, s) for s in (".mp4", ".jpg", ".json"))
    assert len(clips) == len(thumbs) == len(sidecars) == 7
    served = {sim.clip_sha256(i) for i in ids}
    assert {sha256(p) for p in clips} == served
    assert {sha256(p) for p in thumbs} == {sim.thumbnail_sha256(i) for i in ids}
    doc = json.loads(sidecars[0].read_text())
    assert doc["files"]["clip"]["sha256"] in served
    assert doc["created_at_utc"].endswith("+00:00")


def test_second_sync_downloads_nothing_with_one_listing_request_and_no_login(
    tmp_path: Path, sim: Simulator, camera: int, database_url: str
) -> None:
    sim.add_clips(camera, 5, size=20_000)
    settings = make_settings(tmp_path, sim, database={"url": database_url})
    run_sync(settings)
    run_sync(settings)  # the first sync's downloads re-surface once (Blink marks clips watched)
    sim.reset_requests()
    report = run_sync(settings)
    assert report.stored == 0 and report.exit_code == 0
    assert sim.request_count() == 2  # the overlap window's page, then the empty page that ends it
    assert sim.request_count("media/changed") == 2
    assert sim.login_count == 1


def test_only_new_clips_are_fetched_on_the_next_sync(tmp_path: Path, sim: Simulator, camera: int) -> None:
    sim.add_clips(camera, 3, size=20_000)
    settings = make_settings(tmp_path, sim)
    assert run_sync(settings).stored == 3
    new = sim.add_clips(camera, 2, size=20_000)
    sim.reset_requests()
    report = run_sync(settings)
    assert report.stored == 2
    assert sim.request_count("/media/clip/") == 2
    assert {sha256(p) for p in archive_files(tmp_path / "archive", ".mp4")} >= {
        sim.clip_sha256(i) for i in new
    }


def test_clip_appearing_during_a_sync_is_fetched_by_the_next(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    sim.add_clips(camera, 3, size=20_000)
    added: list[int] = []

    def hook(method: str, path: str) -> None:
        if "/media/clip/" in path and not added:
            added.append(sim.add_clip(camera, size=20_000))

    sim.on_request = hook
    settings = make_settings(tmp_path, sim)
    run_sync(settings)
    sim.on_request = None
    run_sync(settings)
    hashes = {sha256(p) for p in archive_files(tmp_path / "archive", ".mp4")}
    assert sim.clip_sha256(added[0]) in hashes and len(hashes) == 4


def test_faults_end_with_every_clip_stored_and_no_partial_file(
    tmp_path: Path, sim: Simulator, camera: int, database_url: str
) -> None:
    ids = sim.add_clips(camera, 30, size=40_000)
    f = sim.faults
    f.error_rate, f.reset_rate, f.truncate_rate, f.garbage_rate = 0.1, 0.1, 0.1, 0.05
    settings = make_settings(
        tmp_path, sim, sync={"concurrency": 4, "retry_backoff": "0s"}, database={"url": database_url}
    )
    first = run_sync(settings)
    if first.exit_code != 0:  # a clip that ran out of retries is stored by the next sync (no back-off)
        second = run_sync(settings)
        assert second.exit_code == 0
    archive = tmp_path / "archive"
    assert {sha256(p) for p in archive_files(archive, ".mp4")} == {sim.clip_sha256(i) for i in ids}
    assert not [p for p in archive.rglob("*") if p.name.endswith(".part")]
    engine = open_database(settings.database_url)
    with session_scope(engine) as s:
        rows = s.exec(select(Clip)).all()
        assert len(rows) == 30 and all(r.state == ClipState.stored for r in rows)


def test_429_is_honoured_and_everything_is_stored(tmp_path: Path, sim: Simulator, camera: int) -> None:
    sim.add_clips(camera, 12, size=10_000)
    sim.faults.rate_limit_rps = 8
    report = run_sync(make_settings(tmp_path, sim, sync={"concurrency": 6}))
    assert report.exit_code == 0 and report.stored == 12
    assert report.throttled > 0


def test_token_expiry_mid_run_is_refreshed_transparently(tmp_path: Path, sim: Simulator, camera: int) -> None:
    sim.add_clips(camera, 6, size=20_000)
    fired: list[bool] = []

    def hook(method: str, path: str) -> None:
        if "/media/clip/" in path and not fired:
            fired.append(True)
            sim.expire_tokens()

    sim.on_request = hook
    report = run_sync(make_settings(tmp_path, sim, sync={"concurrency": 1}))
    assert report.exit_code == 0 and report.stored == 6
    assert sim.refresh_count >= 1 and sim.login_count == 1


def test_tombstones_never_delete_from_the_archive(tmp_path: Path, sim: Simulator, camera: int) -> None:
    ids = sim.add_clips(camera, 2, size=20_000)
    settings = make_settings(tmp_path, sim)
    run_sync(settings)
    sim.delete_clip(ids[0])
    run_sync(settings)
    assert len(archive_files(tmp_path / "archive", ".mp4")) == 2
    with session_scope(open_database(settings.database_url)) as s:
        gone = s.exec(select(Clip).where(Clip.blink_id == str(ids[0]))).one()
        assert gone.deleted_upstream and gone.state == ClipState.stored


def test_hostile_camera_names_stay_inside_the_archive_root(tmp_path: Path, sim: Simulator) -> None:
    net = sim.add_network("../..", time_zone="UTC")
    for name in ("../../etc", "a/b\\c", "..", "\x00evil"):
        sim.add_clips(sim.add_camera(net, name), 1, size=10_000)
    report = run_sync(make_settings(tmp_path, sim))
    assert report.stored == 4
    root = (tmp_path / "archive").resolve()
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in (".mp4", ".jpg", ".json")]
    assert len(files) == 12
    assert all(p.resolve().is_relative_to(root) for p in files)


def test_file_names_use_the_network_time_zone(tmp_path: Path, sim: Simulator) -> None:
    net = sim.add_network("Cabin", time_zone="Europe/Berlin")
    cam = sim.add_camera(net, "Porch")
    sim.add_clip(cam, created_at=datetime(2024, 7, 1, 22, 30, 5, tzinfo=UTC), size=10_000)
    run_sync(make_settings(tmp_path, sim))
    (clip,) = archive_files(tmp_path / "archive", ".mp4")
    assert clip.relative_to(tmp_path / "archive").as_posix().startswith("Cabin/Porch/2024-07-02/00-30-05_")


def test_camera_filter_only_archives_chosen_cameras(tmp_path: Path, sim: Simulator) -> None:
    net = sim.add_network("Home")
    a, b = sim.add_camera(net, "Front Door"), sim.add_camera(net, "Garage")
    sim.add_clips(a, 2, size=10_000)
    sim.add_clips(b, 3, size=10_000)
    report = run_sync(make_settings(tmp_path, sim, sync={"cameras": ["garage"]}))
    assert report.stored == 3
    clips = archive_files(tmp_path / "archive", ".mp4")
    assert len(clips) == 3 and all("Garage" in p.as_posix() for p in clips)


def test_every_stored_object_has_a_row_with_its_hash(tmp_path: Path, sim: Simulator, camera: int) -> None:
    sim.add_clips(camera, 3, size=10_000)
    settings = make_settings(tmp_path, sim)
    run_sync(settings)
    with session_scope(open_database(settings.database_url)) as s:
        objs = s.exec(select(StoredObject)).all()
    assert len(objs) == 9
    for o in objs:
        assert sha256(tmp_path / "archive" / o.key) == o.sha256


def test_several_accounts_share_one_database_keyed_by_account(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    sim.add_clips(camera, 2, size=10_000)
    settings = make_settings(
        tmp_path,
        sim,
        accounts=[
            {"name": "home", "username": USER, "password": PASSWORD},
            {"name": "shared", "username": USER, "password": PASSWORD, "cameras": ["front door"]},
        ],
    )
    reports = asyncio.run(sync_all(settings, open_engine(settings)))
    assert [(r.account, r.stored) for r in reports] == [("home", 2), ("shared", 2)]
    with session_scope(open_database(settings.database_url)) as s:
        rows = s.exec(select(Clip)).all()
        names = {a.id: a.name for a in s.exec(select(Account)).all()}
    assert len(rows) == 4 and sorted(names[r.account_id] for r in rows) == [
        "home",
        "home",
        "shared",
        "shared",
    ]


def test_sync_since_relists_an_older_window_after_a_filter_change(tmp_path: Path, sim: Simulator) -> None:
    net = sim.add_network("Home")
    front, garage = sim.add_camera(net, "Front Door"), sim.add_camera(net, "Garage")
    sim.add_clip(front, created_at=datetime(2024, 5, 1, 8, tzinfo=UTC), size=10_000)
    sim.add_clip(garage, created_at=datetime(2024, 5, 1, 9, tzinfo=UTC), size=10_000)
    assert run_sync(make_settings(tmp_path, sim, sync={"cameras": ["Front Door"]})).stored == 1
    unfiltered = make_settings(tmp_path, sim)
    assert run_sync(unfiltered).stored == 0  # the garage clip is behind the cursor now
    reports = asyncio.run(
        sync_all(unfiltered, open_engine(unfiltered), rescan_from=datetime(2024, 1, 1, tzinfo=UTC))
    )
    assert reports[0].stored == 1 and sim.request_count("/media/clip/") == 2
