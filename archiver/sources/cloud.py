"""The cloud source: media/changed from the persisted cursor, every listed clip upserted at once; a clip
is fetched from its media URL (plus Blink's thumbnail, which never fails the clip).

The cursor (issue 16): it starts the next listing, so a cursor in the future skips clips silently.
It is taken from Blink's ``Date`` header only while that clock is within ``clock_skew_tolerance_s``
of ours (else from the local clock); a stored cursor already in the future is reported and moved back
to the newest clip actually listed; ``sync --since`` resets it. Listing items are validated one at a
time (``MediaPage``): a bad one is logged, skipped and counted, never blocking the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from archiver.blink.models import EARLIEST, MediaItem
from archiver.db import repo
from archiver.db.engine import session_scope
from archiver.db.models import Clip, ClipSource, ClipState, Cursor, utcnow
from archiver.errors import ArchiverError
from archiver.pipeline.fetch import Thumbnail, download, fetch_thumbnail
from archiver.pipeline.task import Staged
from archiver.sources.base import CursorRepair, Emit, SourceBase, SourceContext, SourceReport, Transfer
from archiver.util import as_utc, one_line

log = logging.getLogger("archiver.sources.cloud")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class CloudReport(SourceReport):
    tombstones: int = 0
    rejected: int = 0  # listing items that failed validation (logged, skipped, never blocking the rest)
    merged: int = 0  # the same id twice in one page
    confirmed_deleted: int = 0  # stored clips whose tombstone confirms they left the cloud


def cloud_identity(media_id: int) -> str:
    return f"cloud:{media_id}"


def minus(ts: datetime, delta: timedelta) -> datetime:
    """``ts - delta`` that never raises (year 1 minus ten minutes is year 1)."""
    try:
        return ts - delta
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


def _force_cursor(s: Session, account_id: int, since: datetime) -> None:
    """Set the cursor even backwards (repair, ``sync --since``); ``repo.set_cursor`` only moves forward."""
    cur = repo.get_cursor(s, account_id)
    if cur is None:
        cur = Cursor(account_id=account_id, source="cloud", since=since)
    cur.since = since
    cur.updated_at = utcnow()
    s.add(cur)


def _newest_listed(s: Session, account_id: int, not_after: datetime) -> datetime | None:
    """The newest time a cloud clip was listed with (``updated_at``, else ``created_at``), up to
    ``not_after``."""
    stamp = func.coalesce(Clip.updated_at, Clip.created_at)
    value = s.exec(
        select(func.max(stamp)).where(
            Clip.account_id == account_id, Clip.source == ClipSource.cloud.value, stamp <= not_after
        )
    ).first()
    if value is None:
        return None
    return as_utc(value)


def cursor_ahead(since: datetime, tolerance: timedelta, now: datetime | None = None) -> float:
    """Seconds the cursor is ahead of the local clock beyond ``tolerance`` (0 when it is not)."""
    now = now or datetime.now(UTC)
    try:
        ahead = (since - now - tolerance).total_seconds()
    except OverflowError:  # pragma: no cover - aware datetimes within range never overflow here
        ahead = 0.0
    return max(0.0, ahead)


def _start(
    engine: Engine, account_id: int, first_since: datetime, overlap: timedelta, tolerance: timedelta
) -> tuple[datetime, CursorRepair | None]:
    """Where this listing starts; a cursor in the future is repaired here (and said so)."""
    now = datetime.now(UTC)
    with session_scope(engine) as s:
        cur = repo.get_cursor(s, account_id)
        if cur is None:
            return first_since, None
        if not cursor_ahead(cur.since, tolerance, now):
            return cur.since, None
        newest = _newest_listed(s, account_id, now + tolerance)
        since = max(minus(newest, overlap), EARLIEST) if newest is not None else first_since
        repair = CursorRepair(found=cur.since, listing_from=since)
        _force_cursor(s, account_id, since)
    log.warning("account=%s %s", account_id, repair.note())
    return since, repair


def _trusted_clock(server: datetime | None, tolerance: timedelta) -> tuple[datetime, str | None]:
    """Blink's clock for the next cursor, unless it is ahead of ours by more than ``tolerance``."""
    now = datetime.now(UTC)
    if server is None:
        return now, None
    if server > now + tolerance:
        return now, (
            f"Blink's clock (Date: {server.isoformat()}) is ahead of the local clock; "
            "the cursor follows the local clock"
        )
    return server, None


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


async def discover(ctx: SourceContext, result: CloudReport, on_page: Emit | None = None) -> None:
    """List every page since the cursor; the cursor moves only after the last page was read.
    ``on_page`` gets each page's clips once they are committed, so fetching can start at once."""
    api, engine, account_id = ctx.api, ctx.engine, ctx.account_id
    sync = ctx.settings.sync
    overlap = timedelta(minutes=sync.overlap_minutes)
    tolerance = timedelta(seconds=sync.clock_skew_tolerance_s)
    first_since = as_utc(datetime.fromisoformat(sync.since))
    rescan_from = ctx.rescan_from
    since, repaired = _start(engine, account_id, first_since, overlap, tolerance)
    if repaired is not None:
        result.cursor_repair = repaired
        result.notes.append(repaired.note())
    if rescan_from is not None:  # `archiver sync --since`: list an older window again, reset the cursor
        since = min(since, rescan_from)
    seen: set[int] = set()
    window_start: datetime | None = None
    async for listing in api.media_pages(since, max_pages=ctx.settings.limits.max_listing_pages):
        result.pages += 1
        if window_start is None:
            window_start, clock_note = _trusted_clock(listing.server_time, tolerance)
            if clock_note:
                log.warning("account=%s %s", account_id, clock_note)
                result.notes.append(clock_note)
        for reason in listing.page.rejected:
            log.warning("account=%s skipped a listing item: %s", account_id, reason)
        result.rejected += len(listing.page.rejected)
        result.merged += listing.page.merged
        items = [i for i in listing.page.media if i.id not in seen]
        touched: list[Clip] = []
        seen.update(i.id for i in items)
        result.listed += len(items)
        with session_scope(engine) as s:
            known = repo.clips_by_identity(s, account_id, (cloud_identity(i.id) for i in items))
            for item in items:
                clip = known.get(cloud_identity(item.id))
                if item.deleted:
                    result.tombstones += 1
                    if clip is not None and not clip.deleted_upstream:
                        clip.deleted_upstream = True  # never deletes anything from the archive
                        if clip.state != ClipState.stored:
                            clip.last_error = "deleted in the Blink cloud before it was archived"
                        elif clip.cloud_deleted_at is None:
                            clip.cloud_deleted_at = utcnow()  # Blink confirms it is gone from the cloud
                            result.confirmed_deleted += 1
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
                    known[clip.identity] = clip
                    result.new += 1
                _apply(clip, item)
                s.add(clip)
                touched.append(clip)
        if on_page is not None:
            on_page(touched)  # committed: the fetch may start on this page while the next is listed
    with session_scope(engine) as s:
        cursor = minus(window_start or datetime.now(UTC), overlap)
        if rescan_from is not None or repaired:
            _force_cursor(s, account_id, cursor)
        else:
            repo.set_cursor(s, account_id, cursor)
    if result.rejected:
        result.notes.append(f"{result.rejected} listing items were unusable and skipped (see the log)")
    log.info(
        "listed account=%s pages=%d items=%d new=%d rejected=%d",
        account_id,
        result.pages,
        result.listed,
        result.new,
        result.rejected,
    )


class CloudSource(SourceBase):
    name = ClipSource.cloud.value
    needs_blink = True

    @classmethod
    def build(cls, ctx: SourceContext) -> CloudSource:
        return cls(ctx)

    def __init__(self, ctx: SourceContext) -> None:
        super().__init__(ctx)
        self._report: CloudReport = CloudReport(name=self.name)

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
            thumb = await self._thumbnail(clip, work)
            return Staged(media, thumb.fetched, thumbnail_error=thumb.error)

    async def _thumbnail(self, clip: Clip, work: Path) -> Thumbnail:
        """Blink's thumbnail; one that cannot be fetched never fails the clip (a generated one is used)."""
        settings = self.ctx.settings
        if not settings.sync.thumbnails or not clip.thumbnail_url:
            return Thumbnail(None)
        if settings.processing.thumbnail == "generated":
            return Thumbnail(None)
        try:
            url = self.ctx.api.url(clip.thumbnail_url)
        except ArchiverError as exc:
            return Thumbnail(None, one_line(exc))
        return await fetch_thumbnail(self.ctx.api.http, url, work / "thumb.jpg")

    def report(self) -> CloudReport:
        return self._report
