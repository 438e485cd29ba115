# ruff: noqa: F811  (the export_archive fixture is shadowed by test parameters)
"""The timeline page over HTTP: one lane per camera grouped by network, the network's local day (a clip
at 23:55 the evening before is not on it), prev/next day and quick-range links, and each page's link to
it. The browser behaviour is in test_web_timeline_browser.py."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, timedelta
from typing import Any

import httpx
from export_fixtures import BERLIN, CHICAGO, ExportArchive, export_archive  # noqa: F401
from sqlmodel import Session, select

from archiver.db.engine import open_engine
from archiver.db.models import Clip, ClipState
from archiver.web.app import create_app


def get(app: Any, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui") as c:
            return await c.get(path)

    return asyncio.run(go())


def clips_of_day(archive: ExportArchive) -> dict[str, list[int]]:
    """Each camera's clip ids on the archive's day, in its network's zone."""
    engine = open_engine(archive.settings)
    try:
        with Session(engine) as s:
            out: dict[str, list[int]] = {}
            for c in s.exec(
                select(Clip).where(Clip.state == ClipState.stored).order_by(Clip.created_at)
            ).all():
                tz = BERLIN if c.network_name == "Cabin" else CHICAGO
                if c.created_at.replace(tzinfo=UTC).astimezone(tz).date() == archive.day:
                    out.setdefault(c.camera_name or "?", []).append(c.id or 0)
            return out
    finally:
        engine.dispose()


def test_timeline_has_a_lane_per_camera_by_network_with_the_local_days_clips(
    export_archive: ExportArchive,
) -> None:
    engine = open_engine(export_archive.settings)
    try:
        app = create_app(export_archive.settings, engine)
        day = export_archive.day
        r = get(app, f"/timeline?day={day}")
        assert r.status_code == 200
        html = r.text
        assert html.index("<h2>Cabin") < html.index("<h2>Home")  # networks by name
        assert "America/Chicago (CST)" in html and "Europe/Berlin (CET)" in html
        expected = clips_of_day(export_archive)
        assert sorted(len(v) for v in expected.values()) == [1, 2, 4]
        for lane in re.findall(r'<div class="tl-lane">(.*?)</div>\s*</div>', html, re.S):
            name = re.search(r'class="tl-name"><a href="[^"]*">([^<]+)</a>', lane)[1]  # type: ignore[index]
            ids = [int(i) for i in re.findall(r'data-id="(\d+)"', lane)]
            assert ids == expected.pop(name), name
        assert expected == {}
        assert f'id="prevday" href="/timeline?day={day - timedelta(days=1)}"' in html
        assert f'id="nextday" href="/timeline?day={day + timedelta(days=1)}"' in html
        night = get(app, f"/timeline?day={day}&from=-6&hours=14").text  # 18:00 the day before to 08:00
        times = re.findall(r'aria-label="Front Door (\d\d:\d\d):\d\d"', night)
        assert times == ["23:55", "00:30", "01:15", "02:40"]
        assert get(app, "/timeline?day=garbage&from=x&hours=99999").status_code == 200
        camera = get(app, re.search(r'href="(/camera/\d+/\d+)"', html)[1]).text  # type: ignore[index]
        assert 'href="/timeline?day=' in camera and 'form="pick"' in camera
        clip_id = re.search(r'data-id="(\d+)"', html)[1]  # type: ignore[index]
        assert f"#clip-{clip_id}" in get(app, f"/clip/{clip_id}").text
    finally:
        engine.dispose()
