"""The cloud media: clips as the listing (``media/changed``) shows them, their downloads and thumbnails,
deletions (tombstones in the listing) and Blink's retention forgetting the oldest clips."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .common import MEDIA_NOT_FOUND, ApiError, Context, Part, created_time, fmt_ts, parse_since, utcnow
from .media import ClipBody, min_clip_size, thumbnail_bytes, thumbnail_sha256
from .world import World


@dataclass
class CloudClip:
    id: int
    camera_id: int
    created_at: datetime
    updated_at: datetime
    size: int
    deleted: bool = False
    watched: bool = False


class CloudMedia(Part):
    """The account's cloud clips (by media id) and the ids deleted through the API."""

    def __init__(self, ctx: Context, world: World) -> None:
        super().__init__(ctx)
        self.world = world
        self.clips: dict[int, CloudClip] = {}
        self.deleted_cloud_ids: set[int] = set()
        self.purge_id = 2139143115
        self._media_ids = itertools.count(2139143346)
        self._last_created: datetime | None = None

    # ------------------------------------------------------------------ building
    def add_clip(
        self, camera_id: int, created_at: datetime | None = None, size: int = 200_000, _backfill: int = 0
    ) -> int:
        with self.lock:
            self.world.camera(camera_id)
            size = max(size, min_clip_size())
            created = created_time(created_at, self._last_created, _backfill)
            if created_at is None or self._last_created is None or created > self._last_created:
                self._last_created = created
            mid = next(self._media_ids)
            self.clips[mid] = CloudClip(mid, camera_id, created, created, size)
            return mid

    def add_clips(self, camera_id: int, n: int, size: int = 200_000) -> list[int]:
        """``n`` clips one second apart, ending near now (older ones are back-filled into the past)."""
        with self.lock:
            return [self.add_clip(camera_id, size=size, _backfill=n - i) for i in range(n)]

    def _bump(self, clip: CloudClip) -> None:
        now = utcnow()
        clip.updated_at = max(now, clip.updated_at + timedelta(seconds=1))

    def delete_clip(self, media_id: int) -> bool:
        with self.lock:
            clip = self.clips.get(media_id)
            if clip is None or clip.deleted:
                return False
            clip.deleted = True
            self._bump(clip)
            return True

    def delete_camera_clips(self, camera_id: int) -> None:
        """Every clip of a camera removed from the account is deleted (a tombstone in the listing)."""
        with self.lock:
            for clip in self.clips.values():
                if clip.camera_id == camera_id and not clip.deleted:
                    clip.deleted = True
                    self._bump(clip)

    def forget_oldest_clips(self, n: int) -> list[int]:
        """Blink's cloud retention: the ``n`` oldest clips leave the cloud without a trace (no tombstone in
        the listing, unlike ``delete_clip``). Returns their ids."""
        with self.lock:
            oldest = sorted(self.clips.values(), key=lambda c: (c.created_at, c.id))[: max(n, 0)]
            for clip in oldest:
                del self.clips[clip.id]
            return [c.id for c in oldest]

    # ------------------------------------------------------------------ expected bytes
    def clip_body(self, media_id: int) -> ClipBody:
        with self.lock:
            clip = self.clips[media_id]
            return ClipBody(f"cloud:{clip.id}", clip.size)

    def thumbnail_bytes(self, media_id: int) -> bytes:
        return thumbnail_bytes(f"cloud:{media_id}")

    def thumbnail_sha256(self, media_id: int) -> str:
        return thumbnail_sha256(f"cloud:{media_id}")

    # ------------------------------------------------------------------ REST
    def _media_item(self, clip: CloudClip) -> dict[str, Any]:
        cam = self.world.cameras[clip.camera_id]
        net = self.world.networks[cam.network_id]
        aid = self.config.account_id
        device = {"owl": "owl", "lotus": "doorbell"}.get(cam.type, "camera")
        item = {
            "id": clip.id,
            "created_at": fmt_ts(clip.created_at),
            "updated_at": fmt_ts(clip.updated_at),
            "deleted": clip.deleted,
            "device": device,
            "device_id": cam.id,
            "device_name": cam.name,
            "network_id": net.id,
            "network_name": net.name,
            "type": "video",
            "source": "pir",
            "watched": clip.watched,
            "partial": False,
            "thumbnail": f"/api/v2/accounts/{aid}/media/thumb/{clip.id}",
            "media": f"/api/v2/accounts/{aid}/media/clip/{clip.id}.mp4",
            "additional_devices": [],
            "time_zone": net.time_zone,
        }
        return self._quirky_item(clip, item)

    def _quirky_item(self, clip: CloudClip, item: dict[str, Any]) -> dict[str, Any]:
        q = self.quirks
        if clip.id in q.partial_ids:
            item["partial"] = True
        if q.null_fields:
            for key in ("watched", "device", "type", "source", "additional_devices", "time_zone"):
                item[key] = None
            item["updated_at"] = None
            for key in ("deleted", "partial"):
                if not item[key]:
                    item[key] = None
        return item

    def media_changed(self, since: str | None, page: int) -> dict[str, Any]:
        since_dt = parse_since(since) if since else datetime(1970, 1, 1, tzinfo=UTC)
        page = max(page, 1)
        limit = self.config.page_limit
        q = self.quirks
        size = q.short_pages or limit  # short_pages: fewer items than `limit`, yet more pages follow
        if q.endless_listing:
            page = 1
        with self.lock:
            items = [c for c in self.clips.values() if c.updated_at >= since_dt]
            items.sort(key=lambda c: (c.created_at, c.id), reverse=True)
            chunk = items[(page - 1) * size : page * size]
            media: list[Any] = [self._media_item(c) for c in chunk]
            if q.duplicate_items and media:
                again = dict(media[0])
                again["updated_at"] = fmt_ts(utcnow() + timedelta(seconds=1))
                media.append(again)
            if page == 1:
                media.extend(q.malformed_items)
            return {"limit": limit, "purge_id": self.purge_id, "refresh_count": 0, "media": media}

    def download_clip(self, media_id: int) -> ClipBody:
        with self.lock:
            clip = self.clips.get(media_id)
            if clip is None or clip.deleted:
                raise ApiError(404, MEDIA_NOT_FOUND)
            if self.config.mark_watched_on_download:
                clip.watched = True
                self._bump(clip)
            return ClipBody(f"cloud:{clip.id}", clip.size)

    def download_thumbnail(self, media_id: int) -> bytes:
        with self.lock:
            clip = self.clips.get(media_id)
            if clip is None or clip.deleted:
                raise ApiError(404, MEDIA_NOT_FOUND)
        return self.thumbnail_bytes(media_id)

    def delete_media(self, ids: list[Any]) -> dict[str, Any]:
        count = 0
        with self.lock:
            for raw in ids:
                try:
                    media_id = int(raw)
                except (TypeError, ValueError):
                    continue
                if self.delete_clip(media_id):
                    self.deleted_cloud_ids.add(media_id)
                    count += 1
        if not self.quirks.delete_count:
            return {"message": "Clips deleted successfully", "code": 200}
        return {"message": "Clips deleted successfully", "code": 200, "deleted_count": count}
