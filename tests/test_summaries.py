"""Daily summary videos on real MP4s from the simulator: one per camera and local day, stored in the
destination and recorded on the day's newest clip; rebuilt (that day only) when a late USB clip for the
day arrives; nothing rebuilt when nothing changed; the timeline plays it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from export_fixtures import CHICAGO
from helpers import run_sync, usb_settings
from sqlmodel import Session, select

from archiver.db.engine import open_engine
from archiver.db.models import StoredObject
from archiver.simulator import SimConfig, Simulator
from archiver.summaries import SUMMARY_KIND, run_summaries
from archiver.web.app import create_app


def duration_of(path: Path) -> float:
    import av

    with av.open(str(path)) as c:
        assert list(c.decode(c.streams.video[0]))  # decodable
        return float(c.duration or 0) / 1e6


def summaries(settings: object) -> list[StoredObject]:
    engine = open_engine(settings)  # type: ignore[arg-type]
    try:
        with Session(engine) as s:
            return list(s.exec(select(StoredObject).where(StoredObject.kind == SUMMARY_KIND)).all())
    finally:
        engine.dispose()


def test_a_summary_per_camera_day_rebuilt_when_a_late_usb_clip_arrives(tmp_path: Path) -> None:
    day = (datetime.now(CHICAGO) - timedelta(days=3)).date()

    def at(d: object, h: int) -> datetime:
        return datetime(d.year, d.month, d.day, h, 0, tzinfo=CHICAGO).astimezone(UTC)  # type: ignore[attr-defined]

    with Simulator(SimConfig(two_factor=False)) as sim:
        net = sim.add_network("Home", time_zone="America/Chicago")
        sm = sim.add_sync_module(net, "SM", local_storage=True)
        front = sim.add_camera(net, "Front Door")
        back = sim.add_camera(net, "Back Yard")
        for h in (1, 5):
            sim.add_clip(front, created_at=at(day, h), size=25_000)
        sim.add_clip(front, created_at=at(day + timedelta(days=1), 9), size=25_000)
        sim.add_clip(back, created_at=at(day, 7), size=25_000)
        settings = usb_settings(tmp_path, sim, summaries={"daily": True})
        assert run_sync(settings).stored == 4
        engine = open_engine(settings)
        try:
            first = run_summaries(settings, engine)
            assert first.failed == [] and len(first.built) == 3  # Front Door x 2 days, Back Yard x 1
            key = f"summaries/Home/Front Door/{day}.mp4"
            assert key in first.built
            path = settings.archive_dir / key
            assert abs(duration_of(path) - 2 * 1.0) <= 0.25  # the simulator's clips are ~1 s each
            assert run_summaries(settings, engine).built == []  # nothing changed: nothing rebuilt
            before = {o.key: o for o in summaries(settings)}
            assert len(before) == 3
            sim.add_local_clip(sm, front, created_at=at(day, 3), size=25_000)  # late: from the USB stick
            assert run_sync(settings).stored == 1
            again = run_summaries(settings, engine)
            assert again.built == [key]  # that camera-day only
            after = {o.key: o for o in summaries(settings)}
            assert after[key].sha256 != before[key].sha256 and after[key].stored_at > before[key].stored_at
            assert abs(duration_of(path) - 3 * 1.0) <= 0.35
            assert len(after) == 3  # one row per camera-day (moved, not added)
            app = create_app(settings, engine)

            async def go() -> tuple[str, httpx.Response]:
                async with httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://ui"
                ) as c:
                    page = (await c.get(f"/timeline?day={day}")).text
                    return page, await c.get(f"/media/{after[key].clip_id}/summary")

            page, video = asyncio.run(go())
            assert f'href="/media/{after[key].clip_id}/summary"' in page
            assert video.status_code == 200 and video.content == path.read_bytes()
        finally:
            engine.dispose()
