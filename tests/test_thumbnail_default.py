"""Issue 28: one request per cloud clip by default. The thumbnail is a frame of the clip made in-process
(``processing.thumbnail = "generated"``), not Blink's image; ``"blink"`` and ``"both"`` stay available,
clips already archived keep their Blink thumbnail, and a clip whose thumbnail cannot be made is still
stored."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest
from helpers import archive_files, make_settings, run_sync, sha256, usb_settings
from mqtt_fixtures import Broker, Listener, clip_events, retained
from sqlmodel import select

from archiver.config import load_settings
from archiver.db.engine import open_engine, session_scope
from archiver.db.models import Clip, ClipState, ObjectKind, StoredObject
from archiver.homeassistant.oneshot import sync_and_prune_with_mqtt
from archiver.simulator import Simulator
from archiver.web.app import create_app


def gray(path: Path | bytes, size: tuple[int, int] = (32, 18), at_s: float = 0.0) -> bytes:
    """One picture (a JPEG, or the frame of a clip at ``at_s``) as ``size`` grey pixels, row by row."""
    src = io.BytesIO(path) if isinstance(path, bytes) else str(path)
    with av.open(src) as c:
        for frame in c.decode(video=0):
            if frame.time is None or frame.time >= at_s:
                small = frame.reformat(width=size[0], height=size[1], format="gray")
                plane = small.planes[0]
                row = bytes(plane)
                step = plane.line_size
                return b"".join(row[y * step : y * step + size[0]] for y in range(size[1]))
    raise AssertionError(f"no frame in {path!r}")


def difference(a: bytes, b: bytes) -> float:
    """Mean absolute difference of two grey pictures, 0-255."""
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def test_the_default_thumbnail_is_generated_from_the_clip() -> None:
    assert load_settings(None).processing.thumbnail == "generated"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "mosquitto").start()
    try:
        yield b
    finally:
        b.stop()


def test_a_backlog_of_100_clips_costs_one_request_per_clip_and_every_clip_gets_its_own_frame(
    tmp_path: Path, sim: Simulator, camera: int, broker: Broker
) -> None:
    settings = make_settings(tmp_path, sim, mqtt={"url": broker.url})
    engine = open_engine(settings)
    try:
        asyncio.run(sync_and_prune_with_mqtt(settings, engine))  # logs in (nothing to archive yet)
        ids = sim.add_clips(camera, 100, size=20_000)
        sim.reset_requests()
        listener = Listener(broker, ["blink-archiver/#"])
        try:
            [report] = asyncio.run(sync_and_prune_with_mqtt(settings, engine))
            listener.wait(lambda: len(clip_events(listener)) == 100, 20, "100 clip events")
            events = clip_events(listener)
            ha_thumb = retained(broker, f"blink-archiver/default/camera/{camera}/thumbnail")
        finally:
            listener.close()
        assert (report.stored, report.failed) == (100, 0)
        paths = [r.path for r in sim.requests]
        assert sim.request_count("/media/clip/") == 100
        assert sim.request_count("/media/thumb/") == 0
        assert len(paths) <= 105, paths  # the clips plus the listing pages, nothing else per clip
        assert sim.login_count == 1

        archive = settings.archive_dir
        served = {sim.clip_sha256(i) for i in ids}
        blink_thumbs = {sim.thumbnail_sha256(i) for i in ids}
        clips = {p.stem: p for p in archive_files(archive, ".mp4")}
        assert {sha256(p) for p in clips.values()} == served
        black = bytes(32 * 18)
        for stem, clip in clips.items():
            jpg, sidecar = clip.with_suffix(".jpg"), clip.with_suffix(".json")
            assert jpg.read_bytes()[:3] == b"\xff\xd8\xff" and sha256(jpg) not in blink_thumbs, stem
            doc = json.loads(sidecar.read_text())
            assert doc["thumbnail"] == {"source": "generated", "blink_error": None}
            assert doc["files"]["thumbnail"]["sha256"] == sha256(jpg)
            picture = gray(jpg)
            frame = gray(clip, at_s=(doc["duration_s"] or 0) / 2)
            assert difference(picture, frame) < 6, stem  # the clip's own picture (JPEG loses a little)
            assert difference(picture, black) > 20  # and a picture at all

        # Home Assistant: the clip event and the camera's image are the generated thumbnail
        assert len(events) == 100 and all("thumbnail" in {f["kind"] for f in e["files"]} for e in events)
        newest = max(events, key=lambda e: e["recorded_at"])
        thumb_file = next(f for f in newest["files"] if f["kind"] == "thumbnail")
        assert list(ha_thumb.values()) == [Path(thumb_file["path"]).read_bytes()]

        # the web UI: every clip's thumbnail is served from the generated JPEG
        app = create_app(settings, engine)
        with session_scope(engine) as s:
            rows = list(s.exec(select(Clip).where(Clip.state == ClipState.stored)))
            kinds = {str(o.kind) for o in s.exec(select(StoredObject))}
        assert ObjectKind.thumbnail.value in kinds and ObjectKind.generated_thumbnail.value not in kinds

        async def fetch_all() -> list[tuple[int, httpx.Response]]:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui") as c:
                return [(r.id or 0, await c.get(f"/media/{r.id}/thumbnail")) for r in rows[:10]]

        on_disk = {sha256(p) for p in archive_files(archive, ".jpg")}
        for clip_id, resp in asyncio.run(fetch_all()):
            assert resp.status_code == 200 and resp.headers["content-type"] == "image/jpeg", clip_id
            assert re.match(rb"\xff\xd8\xff", resp.content)
            assert hashlib.sha256(resp.content).hexdigest() in on_disk
    finally:
        engine.dispose()


def test_blink_thumbnails_stay_available_and_clips_already_archived_keep_theirs(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    old = sim.add_clips(camera, 3, size=20_000)
    blink = make_settings(tmp_path, sim, processing={"thumbnail": "blink"})
    assert run_sync(blink).stored == 3
    assert sim.request_count("/media/thumb/") == 3  # "blink": two requests per clip
    before = {p: sha256(p) for p in archive_files(blink.archive_dir, ".jpg")}
    assert set(before.values()) == {sim.thumbnail_sha256(i) for i in old}

    new = sim.add_clips(camera, 2, size=20_000)
    sim.reset_requests()
    report = run_sync(make_settings(tmp_path, sim))  # the new default over the same archive
    assert report.stored == 2
    assert sim.request_count("/media/thumb/") == 0 and sim.request_count("/media/clip/") == 2
    after = {p: sha256(p) for p in archive_files(blink.archive_dir, ".jpg")}
    assert {p: after[p] for p in before} == before  # untouched, nothing fetched again
    sources = {
        json.loads(p.read_text())["id"]: json.loads(p.read_text())["thumbnail"]["source"]
        for p in archive_files(blink.archive_dir, ".json")
    }
    assert sources == {**{str(i): "blink" for i in old}, **{str(i): "generated" for i in new}}


def test_both_keeps_blinks_thumbnail_and_the_generated_one(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    [media_id] = sim.add_clips(camera, 1, size=20_000)
    settings = make_settings(tmp_path, sim, processing={"thumbnail": "both"})
    assert run_sync(settings).stored == 1
    [doc] = [json.loads(p.read_text()) for p in archive_files(settings.archive_dir, ".json")]
    assert doc["thumbnail"]["source"] == "blink"
    assert doc["files"]["thumbnail"]["sha256"] == sim.thumbnail_sha256(media_id)
    assert "generated_thumbnail" in doc["files"]


def test_a_clip_whose_thumbnail_cannot_be_made_is_still_stored(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    sim.add_clips(camera, 2, size=20_000)
    # no probe, and a processing deadline no frame can meet: the thumbnail job fails, the clip does not
    settings = make_settings(tmp_path, sim, processing={"probe": False, "timeout_s": 1e-6})
    report = run_sync(settings)
    assert (report.stored, report.failed) == (2, 0)
    assert archive_files(settings.archive_dir, ".jpg") == []
    for p in archive_files(settings.archive_dir, ".json"):
        doc = json.loads(p.read_text())
        assert doc["thumbnail"]["source"] == "none" and "thumbnail" not in doc["files"]
    engine = open_engine(settings)
    try:
        app = create_app(settings, engine)
        with session_scope(engine) as s:
            clip_id = s.exec(select(Clip.id)).first()

        async def thumb() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui") as c:
                return await c.get(f"/media/{clip_id}/thumbnail")

        assert asyncio.run(thumb()).status_code == 404  # the page shows its placeholder
    finally:
        engine.dispose()


def test_usb_clips_cost_only_the_upload_its_command_and_the_download(
    usb_sim: Simulator, tmp_path: Path
) -> None:
    net = usb_sim.add_network("Home")
    cam = usb_sim.add_camera(net, "Back Door")
    sm = usb_sim.add_sync_module(net, "SM2")
    settings = usb_settings(tmp_path, usb_sim)
    run_sync(settings)  # logs in, caches the homescreen
    for _ in range(4):
        usb_sim.add_local_clip(sm, cam)
    usb_sim.reset_requests()
    assert run_sync(settings).stored == 4
    kinds = [
        r.method + " " + re.sub(r"\d+", "N", r.path.split("?")[0]).rsplit("/local_storage/", 1)[-1]
        for r in usb_sim.requests
    ]
    per_clip = {k for k in kinds if "clip/request" in k or "/command/" in k}
    assert per_clip <= {
        "POST manifest/N/clip/request/N",
        "GET manifest/N/clip/request/N",
        "GET /network/N/command/N",
    }
    assert kinds.count("POST manifest/N/clip/request/N") == 4  # one upload asked for per clip
    assert not any("thumb" in k for k in kinds)
    others = set(kinds) - per_clip
    assert others <= {
        "GET /api/vN/accounts/N/media/changed",
        "POST manifest/request",
        "GET manifest/request/N",
    }
