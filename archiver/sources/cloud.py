"""The cloud source: media/changed from the persisted cursor, every listed clip upserted at once; a clip
is fetched from its media URL (plus Blink's thumbnail)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from archiver.blink.models import MediaItem
from archiver.db import repo
from archiver.db.engine import session_scope
from archiver.db.models import Clip, ClipSource, ClipState
from archiver.pipeline.fetch import Fetched, NotFoundUpstream, download
from archiver.pipeline.task import Staged
from archiver.sources.base import Emit, SourceBase, SourceContext, SourceReport, Transfer

log = logging.getLogger("archiver.sources.cloud")


def cloud_identity(media_id: int) -> str:
    return f"cloud:{media_id}"


def _apply(clip: Clip, item: MediaItem) -> None:
    clip.updated_at = item.updated_at
    clip.media_url = item.media or clip.media_url
    clip.thumbnail_url = item.thumbnail or clip.thumbnail_url
    clip.partial = item.partial
    clip.network_name = item.network_name or clip.network_name
    clip.camera_name = item.device_name or clip.camera_name
    clip.time_zone = item.time_zone or clip.time_zone


def _wanted(ctx: SourceContext, item: MediaItem) -> bool:
    return ctx.selection.allows(
        camera=item.device_name,
        camera_id=item.device_id,
        network=item.network_name,
        network_id=item.network_id,
    )


async def discover(ctx: SourceContext, result: SourceReport, on_page: Emit | None = None) -> None:
    """List every page since the cursor; the cursor moves only after the last page was read.
    ``on_page`` gets each page's clips once they are committed, so fetching can start at once."""
    api, engine, account_id = ctx.api, ctx.engine, ctx.account_id
    overlap = timedelta(minutes=ctx.settings.sync.overlap_minutes)
    first_since = datetime.fromisoformat(ctx.settings.sync.since)
    if first_since.tzinfo is None:
        first_since = first_since.replace(tzinfo=UTC)
    rescan_from = ctx.rescan_from
    with session_scope(engine) as s:
        cur = repo.get_cursor(s, account_id)
        since = cur.since if cur else first_since
    if (
        rescan_from is not None
    ):  # `archiver sync --since`: list an older window again (the cursor never moves back)
        since = min(since, rescan_from)
    seen: set[int] = set()
    window_start: datetime | None = None
    async for listing in api.media_pages(since):
        result.pages += 1
        if window_start is None:
            window_start = listing.server_time or datetime.now(UTC)
        items = [i for i in listing.page.media if i.id not in seen]
        touched: list[Clip] = []
        seen.update(i.id for i in items)
        result.listed += len(items)
        with session_scope(engine) as s:
            known = repo.clips_by_identity(s, account_id, (cloud_identity(i.id) for i in items))
            for item in items:
                clip = known.get(cloud_identity(item.id))
                if item.deleted:
                    if clip is not None and not clip.deleted_upstream:
                        clip.deleted_upstream = True  # never deletes anything from the archive
                        if clip.state != ClipState.stored:
                            clip.last_error = "deleted in the Blink cloud before it was archived"
                        s.add(clip)
                    continue
                if clip is None:
                    if not _wanted(ctx, item) or not item.media:
                        result.filtered += 1
                        continue
                    clip = Clip(
                        account_id=account_id,
                        source=ClipSource.cloud.value,
                        identity=cloud_identity(item.id),
                        blink_id=str(item.id),
                        network_blink_id=item.network_id,
                        camera_blink_id=item.device_id,
                        created_at=item.created_at,
                    )
                    result.new += 1
                _apply(clip, item)
                s.add(clip)
                touched.append(clip)
        if on_page is not None:
            on_page(touched)  # committed: the fetch may start on this page while the next is listed
    with session_scope(engine) as s:
        repo.set_cursor(s, account_id, (window_start or datetime.now(UTC)) - overlap)
    log.info(
        "listed account=%s pages=%d items=%d new=%d", account_id, result.pages, result.listed, result.new
    )


class CloudSource(SourceBase):
    name = ClipSource.cloud.value

    @classmethod
    def build(cls, ctx: SourceContext) -> CloudSource:
        return cls(ctx)

    def pending(self) -> Sequence[Clip]:
        with session_scope(self.ctx.engine) as s:
            return repo.pending_clips(s, self.ctx.account_id, self.name)

    async def discover(self, emit: Emit) -> None:
        await discover(self.ctx, self._report, emit)

    async def fetch(self, clip: Clip, work: Path, transfer: Transfer) -> Staged:
        api, sync = self.ctx.api, self.ctx.settings.sync
        async with transfer():
            media = await download(
                api.http,
                api.url(clip.media_url or ""),
                work / "clip.mp4",
                kind="clip",
                min_bytes=sync.min_clip_bytes,
            )
            return Staged(media, await self._thumbnail(clip, work))

    async def _thumbnail(self, clip: Clip, work: Path) -> Fetched | None:
        settings = self.ctx.settings
        if not settings.sync.thumbnails or not clip.thumbnail_url:
            return None
        if settings.processing.thumbnail == "generated":
            return None
        http, url = self.ctx.api.http, self.ctx.api.url(clip.thumbnail_url)
        try:
            return await download(http, url, work / "thumb.jpg", kind="thumbnail", min_bytes=64)
        except NotFoundUpstream:
            if url.endswith(".jpg"):
                raise
            # recorded thumbnail paths have no extension; some servers want ".jpg" appended
            return await download(http, url + ".jpg", work / "thumb.jpg", kind="thumbnail", min_bytes=64)
