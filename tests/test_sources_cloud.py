"""The cloud source's listing against a small fake context (a real database, a fake listing API)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from helpers import source_context

from archiver.blink.api import ListingPage
from archiver.blink.models import MediaPage
from archiver.db import repo
from archiver.db.engine import session_scope
from archiver.db.models import Clip
from archiver.sources.cloud import CloudSource

NOW = datetime(2024, 5, 2, 12, 0, 0, tzinfo=UTC)


class FakeListing:
    """What CloudSource uses of BlinkAPI: the media/changed pages."""

    def __init__(self, *pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.since: list[datetime] = []

    async def media_pages(self, since: datetime) -> AsyncIterator[ListingPage]:
        self.since.append(since)
        for items in self.pages:
            yield ListingPage(page=MediaPage.model_validate({"media": items}), server_time=NOW)


def item(media_id: int, camera: str = "Front Door", **over: Any) -> dict[str, Any]:
    return {
        "id": media_id,
        "created_at": (NOW - timedelta(minutes=media_id)).isoformat(),
        "device_id": 7 if camera == "Front Door" else 8,
        "device_name": camera,
        "network_id": 1,
        "network_name": "Home",
        "media": f"/api/v2/accounts/1/media/clip/{media_id}.mp4",
        **over,
    }


def discover(source: CloudSource) -> list[list[Clip]]:
    batches: list[list[Clip]] = []

    def emit(clips: Sequence[Clip]) -> None:
        batches.append(list(clips))

    asyncio.run(source.discover(emit))
    return batches


def test_each_page_is_committed_and_emitted_then_the_cursor_moves(tmp_path: Path) -> None:
    api = FakeListing([item(1), item(2)], [item(3)])
    ctx = source_context(tmp_path, api)
    source = CloudSource(ctx)
    batches = discover(source)
    assert [[c.identity for c in b] for b in batches] == [["cloud:1", "cloud:2"], ["cloud:3"]]
    assert all(c.id is not None for b in batches for c in b)
    report = source.report()
    assert (report.pages, report.listed, report.new) == (2, 3, 3)
    with session_scope(ctx.engine) as s:
        cursor = repo.get_cursor(s, ctx.account_id)
    assert cursor is not None and cursor.since == NOW - timedelta(minutes=ctx.settings.sync.overlap_minutes)
    assert [c.identity for c in source.pending()] == ["cloud:3", "cloud:2", "cloud:1"]  # oldest first


def test_filtered_cameras_are_never_recorded_and_tombstones_mark_rows(tmp_path: Path) -> None:
    ctx = source_context(tmp_path, FakeListing([item(1), item(2, "Back Yard")]), cameras=["front door"])
    source = CloudSource(ctx)
    assert [c.identity for b in discover(source) for c in b] == ["cloud:1"]
    assert source.report().filtered == 1
    source = CloudSource(
        source_context(tmp_path, FakeListing([item(1, deleted=True)]), cameras=["front door"])
    )
    discover(source)
    with session_scope(ctx.engine) as s:
        [row] = repo.clips_by_identity(s, ctx.account_id, ["cloud:1"]).values()
    assert row.deleted_upstream and row.last_error == "deleted in the Blink cloud before it was archived"


def test_a_rescan_lists_from_the_older_date(tmp_path: Path) -> None:
    api = FakeListing([item(1)])
    ctx = source_context(tmp_path, api)
    discover(CloudSource(ctx))
    old = datetime(2024, 1, 1, tzinfo=UTC)
    ctx.rescan_from = old
    discover(CloudSource(ctx))
    assert api.since[1] == old
