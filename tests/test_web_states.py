"""What the web UI says when something is wrong, and which zone a time is in: a clip whose file is
missing says so and how to repair it (and the server logs it); failed clips are listed on their camera's
page with the reason and the next try; the Find page's dates are each network's local days."""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from export_fixtures import build
from sqlmodel import Session, select

from archiver.db.engine import open_engine
from archiver.db.models import Clip, ClipState
from archiver.web.app import create_app


def get(app: Any, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui") as c:
            return await c.get(path)

    return asyncio.run(go())


def test_missing_file_failed_clips_and_local_days(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    archive = build(tmp_path)
    engine = open_engine(archive.settings)
    try:
        with Session(engine) as s:
            clips = s.exec(
                select(Clip).where(Clip.camera_name == "Front Door").order_by(Clip.created_at)
            ).all()
            gone, failing = clips[1], clips[2]
            (archive.settings.archive_dir / (gone.archive_key or "")).unlink()
            failing.state = ClipState.failed
            failing.last_error = "download: HTTP 503 from the media server"
            failing.attempts = 3
            failing.next_attempt_at = datetime.now(UTC) + timedelta(hours=1)
            s.add(failing)
            s.commit()
            gone_id, account_id, camera_id = gone.id, gone.account_id, gone.camera_blink_id
        app = create_app(archive.settings, engine)
        with caplog.at_level(logging.WARNING, logger="archiver.web"):
            page = get(app, f"/clip/{gone_id}").text
            assert "The video file is missing from the archive" in page and "archiver verify --repair" in page
            assert "<video" not in page and f"/media/{gone_id}/download" not in page
            assert get(app, f"/media/{gone_id}/video").status_code == 404
        assert (
            sum("missing" in r.getMessage() or "verify --repair" in r.getMessage() for r in caplog.records)
            >= 2
        )
        camera = get(app, f"/camera/{account_id}/{camera_id}").text
        assert "1 clip failed" in camera and "HTTP 503 from the media server" in camera
        assert "3 attempts" in camera and "next try" in camera and "CST" in camera
        assert "times in America/Chicago" in camera
        # Find: a day is each network's local day (Front Door's 23:55 the evening before is not on it)
        day = archive.day
        found = get(app, f"/clips?from={day}&to={day}").text
        whens = re.findall(r'class="when">(\d\d:\d\d):\d\d <span class="tz">(\w+)</span> · ([^<]+)<', found)
        assert ("23:55", "CST", "Front Door") not in whens and ("00:10", "CST", "Front Door") not in whens
        assert ("12:00", "CET", "Porch") in whens and ("00:30", "CST", "Front Door") in whens
        assert "each network&#39;s local days" in found or "each network's local days" in found
        status = get(app, "/status").text
        assert "Sync times are UTC" in status and re.search(r"\d\d:\d\d CST</td>", status)
    finally:
        engine.dispose()
