"""Issue 11, downloads and listing: the real service's variations, end to end over HTTP against the
simulator's quirks (CDN redirects, 403 clips, missing thumbnails, partial clips, short pages, null
fields, USB "Media not found" under other statuses, cloud cleanup confirmation)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import respx
from helpers import archive_files, cli_env, make_settings, run_cli, run_sync, sha256, sim_config
from sqlmodel import select

from archiver.blink.http import BlinkHTTP
from archiver.config import BlinkSettings, LocalStorageSettings, Settings
from archiver.db.engine import open_database, session_scope
from archiver.db.models import Clip, ClipState
from archiver.errors import MediaError
from archiver.simulator import Faults, SimConfig, Simulator


@pytest.fixture
def sim() -> Iterator[Simulator]:
    faults = Faults(manifest_ready_after_s=0.1, command_complete_after_s=0.1, upload_delay_s=0.3)
    with Simulator(SimConfig(two_factor=False, page_limit=5), faults) as s:
        yield s


def clips(settings: Settings) -> dict[str, Clip]:
    engine = open_database(settings.database_url)
    try:
        with session_scope(engine) as s:
            return {c.identity: c for c in s.exec(select(Clip)).all()}
    finally:
        engine.dispose()


def stored_hashes(settings: Settings) -> set[str]:
    return {sha256(p) for p in archive_files(settings.archive_dir, ".mp4")}


def old(minutes: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=minutes)


def test_a_sync_through_cdn_redirects_403s_missing_thumbnails_partial_clips_and_short_pages(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    """The done-means of issue 11: every other clip archived, exit 1 naming the refused clips, no
    token or cookie ever sent to the CDN origin."""
    ids = sim.add_clips(camera, 9, size=20_000)
    partial = [sim.add_clip(camera, created_at=old(90 + i), size=20_000) for i in range(2)]
    refused, thumbless = ids[:2], ids[2:4]
    q = sim.quirks
    q.redirect_media, q.short_pages = True, 3  # pages of 3 while `limit` says 5
    q.forbidden_ids, q.missing_thumbnail_ids, q.partial_ids = set(refused), set(thumbless), set(partial)
    cdn = sim.cdn
    cfg = sim_config(tmp_path, sim, "[sync]\npartial_grace_minutes = 30\n")
    env = cli_env(tmp_path / "data", sim, ARCHIVER_PROCESSING__THUMBNAIL="blink")  # Blink's thumbnails

    result = run_cli(["--config", str(cfg), "sync"], env)

    assert result.returncode == 1, result.stderr
    for media_id in refused:
        assert f"cloud:{media_id}" in result.stderr and "refused (HTTP 403)" in result.stderr
    settings = make_settings(tmp_path / "data", sim)
    expected = {sim.clip_sha256(i) for i in ids[2:] + partial}
    assert stored_hashes(settings) == expected
    assert cdn.refused == [] and any("/cdn/clip/" in p for p in cdn.served)
    rows = clips(settings)
    assert all(rows[f"cloud:{i}"].state == ClipState.failed for i in refused)
    for media_id in thumbless:  # generated thumbnail, and the sidecar says which
        sidecar = next(
            p for p in archive_files(settings.archive_dir, ".json") if p.stem.endswith(str(media_id))
        )
        doc = json.loads(sidecar.read_text())
        assert doc["thumbnail"]["source"] == "generated" and doc["thumbnail"]["blink_error"]
        assert sidecar.with_suffix(".jpg").read_bytes()[:3] == b"\xff\xd8\xff"

    # refused clips are retried (at once with --retry-failed), and stored once Blink lets them through
    q.forbidden_ids = set()
    result = run_cli(["--config", str(cfg), "sync", "--retry-failed"], env)
    assert result.returncode == 0, result.stderr
    assert stored_hashes(settings) == expected | {sim.clip_sha256(i) for i in refused}
    assert cdn.refused == []


def test_many_refused_clips_never_trip_the_breaker(tmp_path: Path, sim: Simulator, camera: int) -> None:
    ids = sim.add_clips(camera, 8, size=20_000)
    sim.quirks.forbidden_ids = set(ids[:5])  # more than breaker_threshold (3)
    report = run_sync(make_settings(tmp_path, sim, sync={"concurrency": 1}))
    assert (report.stored, report.failed, report.exit_code) == (3, 5, 1)
    assert report.errors == []  # no run-level failure: the account was never blocked
    assert sorted(e.split(":")[1] for e in report.clip_errors) == sorted(str(i) for i in ids[:5])


def test_a_thumbnail_too_big_or_missing_never_fails_its_clip(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    ids = sim.add_clips(camera, 3, size=20_000)
    sim.quirks.missing_thumbnail_ids = {ids[0]}
    sim.quirks.huge_thumbnail_ids = {ids[1]}
    settings = make_settings(
        tmp_path, sim, limits={"max_thumbnail_bytes": 200_000}, processing={"thumbnail": "blink"}
    )
    report = run_sync(settings)
    assert (report.stored, report.failed) == (3, 0)
    docs = {
        json.loads(p.read_text())["id"]: json.loads(p.read_text())["thumbnail"]
        for p in archive_files(settings.archive_dir, ".json")
    }
    assert docs[str(ids[0])]["source"] == "generated" and "not there" in docs[str(ids[0])]["blink_error"]
    assert docs[str(ids[1])]["source"] == "generated" and "limit" in docs[str(ids[1])]["blink_error"]
    assert docs[str(ids[2])] == {"source": "blink", "blink_error": None}
    thumbs = [sha256(p) for p in archive_files(settings.archive_dir, ".jpg")]
    assert sim.thumbnail_sha256(ids[2]) in thumbs and len(thumbs) == 3


def test_partial_clips_are_fetched_once_older_than_the_grace(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    fresh = sim.add_clip(camera, created_at=old(1), size=20_000)
    aged = sim.add_clip(camera, created_at=old(60), size=20_000)
    sim.quirks.partial_ids = {fresh, aged}
    settings = make_settings(tmp_path, sim, sync={"partial_grace_minutes": 30})
    report = run_sync(settings)
    assert (report.stored, report.exit_code) == (1, 0)
    assert stored_hashes(settings) == {sim.clip_sha256(aged)}
    assert clips(settings)[f"cloud:{fresh}"].state == ClipState.discovered  # waits, not lost
    later = make_settings(tmp_path, sim, sync={"partial_grace_minutes": 0})
    assert run_sync(later).stored == 1
    assert stored_hashes(settings) == {sim.clip_sha256(fresh), sim.clip_sha256(aged)}


def test_the_listing_goes_past_short_pages_to_an_empty_page(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    ids = sim.add_clips(camera, 11, size=10_000)
    sim.quirks.short_pages = 2  # `limit` says 5
    settings = make_settings(tmp_path, sim)
    report = run_sync(settings)
    assert (report.stored, report.exit_code) == (11, 0)
    assert stored_hashes(settings) == {sim.clip_sha256(i) for i in ids}
    listing = [r for r in sim.requests if "media/changed" in r.path]
    assert len(listing) == 7  # six pages of up to two, then the empty one


def test_null_fields_in_listing_items_are_tolerated(tmp_path: Path, sim: Simulator, camera: int) -> None:
    ids = sim.add_clips(camera, 4, size=10_000)
    sim.quirks.null_fields = True
    settings = make_settings(tmp_path, sim)
    report = run_sync(settings)
    assert (report.stored, report.exit_code) == (4, 0)
    assert stored_hashes(settings) == {sim.clip_sha256(i) for i in ids}


@pytest.mark.parametrize("status", [400, 409, 200])
def test_usb_media_not_found_under_any_status_is_polled_and_each_upload_requested_once(
    tmp_path: Path, sim: Simulator, status: int
) -> None:
    net = sim.add_network("Home")
    cam = sim.add_camera(net, "Back Door")
    sm = sim.add_sync_module(net, "SM2")
    ids = [sim.add_local_clip(sm, cam) for _ in range(2)]
    sim.quirks.usb_not_found_status = status
    settings = make_settings(tmp_path, sim, local_storage={"poll_interval_s": 0.05, "busy_pause_s": 0.05})
    report = run_sync(settings)
    assert report.exit_code == 0, report
    assert stored_hashes(settings) == {sim.local_clip_sha256(i) for i in ids}
    for clip_id in ids:
        assert sim.request_count(f"/clip/request/{clip_id}", "POST") == 1
    assert sim.request_count("/clip/request/", "GET") > len(ids)  # "not uploaded yet" was polled


def test_command_waits_default_to_120_seconds() -> None:
    assert LocalStorageSettings().command_deadline_s == 120


@pytest.mark.parametrize("count", [True, False])
def test_cloud_cleanup_records_a_deletion_only_once_blink_confirms_it(
    tmp_path: Path, sim: Simulator, camera: int, count: bool
) -> None:
    ids = sim.add_clips(camera, 3, size=10_000)
    sim.quirks.delete_count = count
    settings = make_settings(tmp_path, sim, cloud_cleanup={"enabled": True})
    report = run_sync(settings)
    assert report.stored == 3 and sim.deleted_cloud_ids == set(ids)
    deleted = {k: c.cloud_deleted_at is not None for k, c in clips(settings).items()}
    assert deleted == {f"cloud:{i}": count for i in ids}  # no count in the answer: not yet recorded
    run_sync(settings)  # the listing now shows the tombstones: that confirms it
    assert all(c.cloud_deleted_at is not None for c in clips(settings).values())


# ------------------------------------------------------------------------------- narrow unit: redirects
BLINK = "https://rest-u011.immedia-semi.com"


@respx.mock
def test_redirect_hops_carry_the_token_only_on_blink_hosts() -> None:
    first = respx.get(f"{BLINK}/clip/1.mp4").mock(
        return_value=httpx.Response(302, headers={"Location": "https://cdn.example/a.mp4?sig=1"})
    )
    cdn = respx.get("https://cdn.example/a.mp4").mock(
        return_value=httpx.Response(307, headers={"Location": f"{BLINK}/clip/final.mp4"})
    )
    final = respx.get(f"{BLINK}/clip/final.mp4").mock(return_value=httpx.Response(200, content=b"ok"))

    async def headers() -> dict[str, str]:
        return {"Authorization": "Bearer secret"}

    async def go() -> bytes:
        async with BlinkHTTP(BlinkSettings(max_requests_per_second=0)) as http:
            http.use_auth(headers, None)
            http.client.cookies.set("session", "c00kie", domain="cdn.example")  # even a matching jar
            async with http.stream("GET", f"{BLINK}/clip/1.mp4") as resp:
                return await resp.aread()

    assert asyncio.run(go()) == b"ok"
    assert first.calls[0].request.headers["Authorization"] == "Bearer secret"
    sent = cdn.calls[0].request.headers
    assert "Authorization" not in sent and "Cookie" not in sent
    assert final.calls[0].request.headers["Authorization"] == "Bearer secret"


@respx.mock
def test_a_redirect_loop_fails_the_clip_not_the_run() -> None:
    respx.get(f"{BLINK}/loop").mock(return_value=httpx.Response(302, headers={"Location": "/loop"}))

    async def go() -> None:
        async with (
            BlinkHTTP(BlinkSettings(max_requests_per_second=0)) as http,
            http.stream("GET", f"{BLINK}/loop"),
        ):
            pass

    with pytest.raises(MediaError, match="redirects"):
        asyncio.run(go())
