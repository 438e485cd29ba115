"""Issue 16, listing and downloads: a hostile or broken Blink server never loses a clip silently, never
makes the archiver act on its input, and never hangs or floods a sync. End to end over HTTP against the
simulator's quirks; the URL rules as tables."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from helpers import archive_files, cli_env, make_settings, run_cli, run_sync, sha256
from sqlmodel import select

from archiver.blink.api import UnsafeURL, build_url, media_not_found, media_url
from archiver.config import Settings
from archiver.db import repo
from archiver.db.engine import open_database, session_scope
from archiver.db.models import Account, Clip, ClipState, Cursor
from archiver.metrics import DatabaseCollector
from archiver.pipeline.report import SyncReport
from archiver.pipeline.runner import open_engine, sync_all
from archiver.simulator import Faults, SimConfig, Simulator

FAR_FUTURE = "Fri, 31 Dec 9999 23:59:59 GMT"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    faults = Faults(manifest_ready_after_s=0.1, command_complete_after_s=0.1, upload_delay_s=0.1)
    with Simulator(SimConfig(two_factor=False, page_limit=5), faults) as s:
        yield s


def stored_hashes(settings: Settings) -> set[str]:
    return {sha256(p) for p in archive_files(settings.archive_dir, ".mp4")}


def cursor(settings: Settings) -> datetime:
    engine = open_database(settings.database_url)
    try:
        with session_scope(engine) as s:
            cur = repo.get_cursor(s, 1)
            assert cur is not None
            return cur.since
    finally:
        engine.dispose()


def set_cursor(settings: Settings, since: datetime) -> None:
    engine = open_database(settings.database_url)
    try:
        with session_scope(engine) as s:
            cur = s.exec(select(Cursor)).first()
            assert cur is not None
            cur.since = since
            s.add(cur)
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------------- cursor
@pytest.mark.parametrize("skewed", [FAR_FUTURE, "hour"])
def test_a_skewed_date_once_then_new_clips_every_clip_archived(
    tmp_path: Path, sim: Simulator, camera: int, skewed: str
) -> None:
    first = sim.add_clips(camera, 3, size=10_000)
    if skewed == "hour":
        skewed = (datetime.now(UTC) + timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    sim.quirks.listing_date = skewed
    settings = make_settings(tmp_path, sim)
    report = run_sync(settings)
    assert report.stored == 3 and any("ahead of the local clock" in n for n in report.notes)
    assert cursor(settings) <= datetime.now(UTC)

    sim.quirks.listing_date = None
    later = sim.add_clips(camera, 4, size=10_000)
    assert run_sync(settings).stored == 4
    assert stored_hashes(settings) == {sim.clip_sha256(i) for i in first + later}


def test_a_cursor_in_the_future_is_reported_and_repaired(
    tmp_path: Path, sim: Simulator, camera: int, database_url: str
) -> None:
    first = sim.add_clips(camera, 2, size=10_000)
    settings = make_settings(tmp_path, sim, database={"url": database_url})
    run_sync(settings)
    set_cursor(settings, datetime(9999, 12, 31, tzinfo=UTC))  # what an older version could leave behind
    engine = open_database(settings.database_url)
    [_, _, ahead] = list(DatabaseCollector(engine).collect())
    assert ahead.name == "archiver_cursor_ahead_seconds" and ahead.samples[0].value > 1e9
    engine.dispose()
    status = run_cli(["status"], cli_env(tmp_path, sim, ARCHIVER_DATABASE__URL=database_url))
    assert status.returncode == 0 and "the cursor is in the future" in status.stdout

    later = sim.add_clips(camera, 3, size=10_000)
    report = run_sync(settings)
    assert report.stored == 3 and report.exit_code == 0
    assert any("cursor was in the future" in n for n in report.notes)
    assert cursor(settings) <= datetime.now(UTC)
    assert stored_hashes(settings) == {sim.clip_sha256(i) for i in first + later}


def test_sync_since_lists_an_older_window_and_resets_the_cursor(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    sim.add_clips(camera, 2, size=10_000)
    settings = make_settings(tmp_path, sim)
    run_sync(settings)
    ahead = datetime.now(UTC) + timedelta(seconds=60)  # within the clock tolerance: not "repaired"
    set_cursor(settings, ahead)
    older = [sim.add_clip(camera, created_at=datetime.now(UTC) - timedelta(days=1), size=10_000)]
    assert run_sync(settings).stored == 0 and cursor(settings) >= ahead  # a plain sync keeps it

    async def go() -> list[SyncReport]:
        return await sync_all(
            settings, open_engine(settings), rescan_from=datetime.now(UTC) - timedelta(days=2)
        )

    [report] = asyncio.run(go())
    assert report.stored == 1 and cursor(settings) < ahead - timedelta(seconds=60)
    assert {sim.clip_sha256(i) for i in older} <= stored_hashes(settings)


# ------------------------------------------------------------------------------------------- items
def test_duplicate_and_malformed_items_are_skipped_counted_and_never_block_the_rest(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    ids = sim.add_clips(camera, 7, size=10_000)
    good = {"device_name": "Front Door", "media": "/api/v2/accounts/1001/media/clip/1.mp4"}
    sim.quirks.duplicate_items = True
    sim.quirks.malformed_items = [
        {**good, "id": 91, "created_at": "0001-01-01T00:00:00+00:00"},
        {**good, "id": 92, "created_at": "9999-12-31T23:59:59+00:00"},
        {**good, "id": 93, "created_at": "yesterday-ish"},
        {**good, "id": 2**64, "created_at": "2024-05-01T00:00:00+00:00"},
        {**good, "id": "abc", "created_at": "2024-05-01T00:00:00+00:00"},
        {**good, "id": 94, "created_at": None},
        "not an item",
    ]
    settings = make_settings(tmp_path, sim)
    report = run_sync(settings)
    assert (report.stored, report.failed, report.exit_code) == (7, 0, 0), report
    assert any(n.startswith("7 listing items were unusable") for n in report.notes)
    assert stored_hashes(settings) == {sim.clip_sha256(i) for i in ids}
    assert run_sync(settings).exit_code == 0  # and the next run too


def test_a_listing_item_with_an_id_past_2_63_is_skipped_with_a_warning_and_its_page_is_kept(
    tmp_path: Path, sim: Simulator, camera: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Every id is kept in a BIGINT column: one past 2**63 (as a number or as a string), negative or zero
    is that item's problem, never the page's."""
    ids = sim.add_clips(camera, 3, size=10_000)
    good = {"device_name": "Front Door", "created_at": "2024-05-01T00:00:00+00:00"}
    odd = [2**63, str(2**64), -3, 0]
    sim.quirks.malformed_items = [{**good, "id": i} for i in odd]
    settings = make_settings(tmp_path, sim)
    with caplog.at_level("WARNING", logger="archiver"):
        report = run_sync(settings)
    assert (report.stored, report.failed, report.exit_code) == (3, 0, 0), report
    assert any(n.startswith("4 listing items were unusable") for n in report.notes)
    skipped = [r.getMessage() for r in caplog.records if "skipped a listing item" in r.getMessage()]
    assert len(skipped) == 4
    for i in odd:
        assert sum(f"id {i!r})" in line for line in skipped) == 1, (i, skipped)
    assert stored_hashes(settings) == {sim.clip_sha256(i) for i in ids}


def test_an_endless_listing_stops_when_pages_bring_nothing_new(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    sim.add_clips(camera, 12, size=10_000)
    sim.quirks.endless_listing = True  # every page is page 1 again
    report = run_sync(make_settings(tmp_path, sim))
    assert report.exit_code == 0 and report.stored == 5
    assert sim.request_count("media/changed") == 2


def test_a_gzip_listing_bomb_is_refused_after_decompression(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    sim.add_clips(camera, 2, size=10_000)
    sim.quirks.listing_padding = 30_000_000  # ~30 KB on the wire
    report = run_sync(make_settings(tmp_path, sim, limits={"max_json_bytes": 1_000_000}))
    assert report.exit_code == 1 and report.stored == 0
    assert len(report.errors) == 1 and "1,000,000-byte limit" in report.errors[0]


# ------------------------------------------------------------------------------------------- bodies
def test_a_trickled_clip_ends_within_its_deadline_and_is_reported(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    ids = sim.add_clips(camera, 3, size=20_000)
    sim.quirks.trickle_ids, sim.quirks.trickle_bps = {ids[0]}, 500
    settings = make_settings(
        tmp_path, sim, limits={"download_grace_s": 1, "min_download_bytes_per_s": 100_000}
    )
    started = time.monotonic()
    report = run_sync(settings)
    assert time.monotonic() - started < 15
    assert (report.stored, report.failed, report.exit_code) == (2, 1, 1)
    assert report.clip_errors[0].startswith(f"cloud:{ids[0]}:") and "too slow" in report.clip_errors[0]
    assert stored_hashes(settings) == {sim.clip_sha256(i) for i in ids[1:]}


def test_an_endless_body_is_cut_at_the_size_cap(tmp_path: Path, sim: Simulator, camera: int) -> None:
    ids = sim.add_clips(camera, 2, size=10_000)
    sim.quirks.endless_ids = {ids[0]}
    settings = make_settings(tmp_path, sim, limits={"max_clip_bytes": 2_000_000})
    report = run_sync(settings)
    assert (report.stored, report.failed) == (1, 1)
    assert "over the 2,000,000-byte limit" in report.clip_errors[0]
    assert not [p for p in settings.staging_dir.rglob("*") if p.is_file()]


def test_the_sync_deadline_stops_a_sync_and_says_so(tmp_path: Path, sim: Simulator, camera: int) -> None:
    ids = sim.add_clips(camera, 2, size=20_000)
    sim.quirks.trickle_ids, sim.quirks.trickle_bps = {ids[0]}, 500
    settings = make_settings(tmp_path, sim, limits={"sync_deadline": "2s"})
    started = time.monotonic()
    report = run_sync(settings)
    assert time.monotonic() - started < 10
    assert report.exit_code == 1 and "limits.sync_deadline" in report.errors[0]
    engine = open_database(settings.database_url)
    with session_scope(engine) as s:  # the interrupted clip is still queued for the next run
        row = s.exec(select(Clip).where(Clip.blink_id == str(ids[0]))).one()
        assert row.state != ClipState.stored
    engine.dispose()


def test_blink_unreachable_is_one_line_and_exit_1(tmp_path: Path, camera: int, sim: Simulator) -> None:
    sim.add_clips(camera, 1, size=10_000)
    settings = make_settings(tmp_path, sim, blink={"retries": 1})
    assert run_sync(settings).exit_code == 0
    sim.stop()
    report = run_sync(settings)
    assert report.exit_code == 1 and len(report.errors) == 1
    assert report.errors[0].startswith("cannot reach Blink")


# ------------------------------------------------------------------------------------------- USB ids
def test_hostile_manifest_ids_never_reach_a_url(tmp_path: Path, sim: Simulator) -> None:
    net = sim.add_network("Home")
    cam = sim.add_camera(net, "Back Door")
    sm = sim.add_sync_module(net, "SM2")
    ids = [sim.add_local_clip(sm, cam) for _ in range(2)]
    sim.quirks.hostile_manifest_ids = ["../../../../state/disarm", "..", "a/b", "%2e%2e", "x?y=1", "é"]
    sim.quirks.malformed_manifest_entries = [
        {"id": "77", "camera_name": "BackDoor", "created_at": "0001-01-01T00:00:00+00:00"},
        {"id": "78", "camera_name": "BackDoor", "created_at": "garbage"},
        {"id": None, "camera_name": "BackDoor", "created_at": "2024-05-01T00:00:00+00:00"},
        ["not", "an", "entry"],
    ]
    settings = make_settings(tmp_path, sim, local_storage={"poll_interval_s": 0.05})
    report = run_sync(settings)
    assert report.exit_code == 0, report
    assert stored_hashes(settings) == {sim.local_clip_sha256(i) for i in ids}
    prefix = f"/api/v1/accounts/1001/networks/{net}/sync_modules/{sm}/local_storage/"
    usb = [r for r in sim.requests if "local_storage" in r.path]
    assert usb and all(r.path.startswith(prefix) for r in usb)
    assert not [r for r in sim.requests if "disarm" in r.path or "%" in r.path or "/state" in r.path]
    engine = open_database(settings.database_url)
    with session_scope(engine) as s:
        assert s.exec(select(Account)).one().id == 1
        assert len(s.exec(select(Clip)).all()) == 2  # the hostile entries were never recorded
    engine.dispose()


# ------------------------------------------------------------------------------------------- URLs
BASE = "https://rest-u011.immedia-semi.com"


@pytest.mark.parametrize(
    ("segments", "expected"),
    [
        (("api", "v1", "accounts", 1001, "media", "changed"), "/api/v1/accounts/1001/media/changed"),
        (("manifest", "../../state/disarm"), "/manifest/..%2F..%2Fstate%2Fdisarm"),
        (("clip", "a b?c#d"), "/clip/a%20b%3Fc%23d"),
    ],
)
def test_server_values_become_single_percent_encoded_segments(
    segments: tuple[str | int, ...], expected: str
) -> None:
    assert build_url(BASE, *segments).raw_path.decode() == expected


@pytest.mark.parametrize("bad", ["..", ".", "", "a\nb"])
def test_dot_and_control_segments_are_refused(bad: str) -> None:
    with pytest.raises(UnsafeURL):
        build_url(BASE, "manifest", bad)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/api/v2/accounts/1/media/clip/5.mp4", f"{BASE}/api/v2/accounts/1/media/clip/5.mp4"),
        ("/api/v3/media/x/thumbnail.jpg?ts=1&ext=", f"{BASE}/api/v3/media/x/thumbnail.jpg?ts=1&ext="),
        ("https://cdn.example/clip.mp4?sig=1", "https://cdn.example/clip.mp4?sig=1"),
    ],
)
def test_listed_media_paths_are_kept_when_plain(value: str, expected: str) -> None:
    assert str(media_url(BASE, value)) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "/api/v2/../../state/disarm",
        "/api/%2e%2e/state",
        "/api/..%2Fstate",
        "//evil.example/x",
        "file:///etc/passwd",
        "api/relative",
        "/a\\b",
    ],
)
def test_listed_media_paths_with_traversal_or_odd_schemes_are_refused(bad: str) -> None:
    with pytest.raises(UnsafeURL):
        media_url(BASE, bad)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (404, b"", True),
        (400, b'{"message":"Media not found","code":700}', True),
        (409, b'{"code": 700}', True),
        (200, b'{"message": "Media not found"}', True),
        (400, b'{"message":"Bad request","code":400}', False),
        (500, b'{"code":700}', False),
        (200, b"\x00\x00\x00\x18ftyp", False),
    ],
)
def test_media_not_found_is_code_700_under_any_4xx_or_200(status: int, body: bytes, expected: bool) -> None:
    assert media_not_found(status, body) is expected


def test_the_token_goes_only_to_the_configured_blink_hosts() -> None:
    from archiver.blink.http import BlinkHTTP
    from archiver.config import BlinkSettings

    http = BlinkHTTP(BlinkSettings())
    assert http.is_blink(httpx.URL("https://rest-u011.immedia-semi.com/api/x"))
    assert http.is_blink(httpx.URL("https://rest-prod.immedia-semi.com/api/x"))
    assert http.is_blink(httpx.URL("https://api.oauth.blink.com/oauth/token"))
    assert not http.is_blink(httpx.URL("http://rest-u011.immedia-semi.com/api/x"))  # no downgrade
    assert not http.is_blink(httpx.URL("https://rest-u011.immedia-semi.com.evil.example/x"))
    assert not http.is_blink(httpx.URL("https://cdn.example/clip.mp4"))
