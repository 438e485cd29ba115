"""Discover cloud clips: media/changed from the persisted cursor, every listed clip upserted at once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine

from archiver.blink.api import BlinkAPI
from archiver.blink.models import MediaItem
from archiver.db import repo
from archiver.db.engine import session_scope
from archiver.db.models import Clip, ClipSource, ClipState

log = logging.getLogger("archiver.sources.cloud")


@dataclass
class Filters:
    cameras: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)

    def allows(self, item: MediaItem) -> bool:
        def match(wanted: list[str], name: str | None, ident: int | None) -> bool:
            if not wanted:
                return True
            keys = {w.casefold() for w in wanted}
            return (name or "").casefold() in keys or str(ident) in keys

        return match(self.cameras, item.device_name, item.device_id) and match(
            self.networks, item.network_name, item.network_id
        )


@dataclass
class ListingResult:
    pages: int = 0
    listed: int = 0
    new: int = 0
    tombstones: int = 0
    filtered: int = 0


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


async def discover(
    api: BlinkAPI,
    engine: Engine,
    account_id: int,
    filters: Filters,
    overlap: timedelta,
    first_since: datetime,
    on_page: Callable[[Sequence[Clip]], None] | None = None,
    rescan_from: datetime | None = None,
) -> ListingResult:
    """List every page since the cursor; the cursor moves only after the last page was read.
    ``on_page`` gets each page's clips once they are committed, so fetching can start at once."""
    with session_scope(engine) as s:
        cur = repo.get_cursor(s, account_id)
        since = cur.since if cur else first_since
    if (
        rescan_from is not None
    ):  # `archiver sync --since`: list an older window again (the cursor never moves back)
        since = min(since, rescan_from)
    result = ListingResult()
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
                    result.tombstones += 1
                    if clip is not None and not clip.deleted_upstream:
                        clip.deleted_upstream = True  # never deletes anything from the archive
                        if clip.state != ClipState.stored:
                            clip.last_error = "deleted in the Blink cloud before it was archived"
                        s.add(clip)
                    continue
                if clip is None:
                    if not filters.allows(item) or not item.media:
                        result.filtered += 1
                        continue
                    clip = Clip(
                        account_id=account_id,
                        source=ClipSource.cloud,
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
    return result
