"""Local storage (a sync module's USB drive): clips on the drive, the manifest requested and polled for,
each clip's upload requested then fetched once ready, deletions. Clip ids change when the module
renumbers (``renumber_local_clips``); every id ever issued still names its clip for the tests.

Uploads: one in flight per module; "in flight" lasts until the upload command completes
(``command_complete_after_s``); the clip GET answers code 700 until ``upload_delay_s`` after that.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .commands import Commands
from .common import (
    BUSY,
    MANIFEST_PENDING,
    MEDIA_NOT_FOUND,
    SM_OFFLINE,
    ApiError,
    Context,
    Part,
    alnum,
    created_time,
    fmt_ts,
    utcnow,
)
from .media import ClipBody, min_clip_size
from .world import SyncModule, World


@dataclass
class LocalClip:
    uid: int
    sync_module_id: int
    camera_id: int
    created_at: datetime
    size: int
    clip_id: str
    deleted: bool = False


@dataclass
class Manifest:
    manifest_id: str
    request_id: int
    sync_module_id: int
    ready_at: float
    clips: dict[str, int]  # manifest clip id -> LocalClip.uid (snapshot at request time)


class LocalStorage(Part):
    """The clips on every sync module's drive, the manifests issued and the uploads under way."""

    def __init__(self, ctx: Context, world: World, commands: Commands) -> None:
        super().__init__(ctx)
        self.world = world
        self.cmds = commands
        self.local_clips: dict[int, LocalClip] = {}
        self.local_aliases: dict[str, int] = {}  # every manifest clip id ever issued -> uid
        self.manifests: dict[str, Manifest] = {}
        self.manifest_by_request: dict[int, Manifest] = {}
        self.latest_manifest: dict[int, str] = {}
        self.uploads: dict[int, float] = {}  # LocalClip.uid -> monotonic time the upload is readable
        self.deleted_local_ids: set[str] = set()
        self._clip_ids = itertools.count(866333964)
        self._uids = itertools.count(1)
        self._manifest_ids = itertools.count(4321)
        self._last_local_created: datetime | None = None

    def _next_clip_id(self) -> str:
        return str(next(self._clip_ids))

    # ------------------------------------------------------------------ building
    def add_local_clip(
        self, sync_module_id: int, camera_id: int, created_at: datetime | None = None, size: int = 150_000
    ) -> str:
        with self.lock:
            self.world.sync_module(sync_module_id)
            self.world.camera(camera_id)
            size = max(size, min_clip_size())
            created = created_time(created_at, self._last_local_created)
            if created_at is None:
                self._last_local_created = created
            uid = next(self._uids)
            clip_id = self._next_clip_id()
            self.local_clips[uid] = LocalClip(uid, sync_module_id, camera_id, created, size, clip_id)
            self.local_aliases[clip_id] = uid
            return clip_id

    def renumber_local_clips(self, sync_module_id: int) -> None:
        """The module gives its clips new ids at the next manifest request."""
        with self.lock:
            self.world.sync_module(sync_module_id).renumber_pending = True

    def local_clip_body(self, clip_id: str | int) -> ClipBody:
        with self.lock:
            uid = self.local_aliases[str(clip_id)]
            clip = self.local_clips[uid]
            return ClipBody(f"local:{uid}", clip.size)

    # ------------------------------------------------------------------ REST
    def _local_module(self, network_id: int, sync_module_id: int, *, post: bool) -> SyncModule:
        self.world.network(network_id)
        sm = self.world.sync_module(sync_module_id)
        if sm.network_id != network_id:
            raise ApiError(404, {"message": "Sync Module not found", "code": 404})
        if not sm.local_storage:
            raise ApiError(409, {"message": "Local storage is not available", "code": 1008})
        if not sm.online:
            raise ApiError(409, SM_OFFLINE)
        if post and self.faults.chance(self.faults.busy_rate):
            raise ApiError(409, BUSY)
        return sm

    def request_manifest(self, network_id: int, sync_module_id: int) -> dict[str, Any]:
        with self.lock:
            sm = self._local_module(network_id, sync_module_id, post=True)
            cmd = self.cmds.new_command(network_id, "local_storage_manifest", sm.id)
            clips = [c for c in self.local_clips.values() if c.sync_module_id == sm.id and not c.deleted]
            if sm.renumber_pending:
                for clip in clips:
                    clip.clip_id = self._next_clip_id()
                    self.local_aliases[clip.clip_id] = clip.uid
                sm.renumber_pending = False
            manifest = Manifest(
                str(next(self._manifest_ids)),
                cmd.id,
                sm.id,
                time.monotonic() + self.faults.manifest_ready_after_s,
                {c.clip_id: c.uid for c in sorted(clips, key=lambda c: (c.created_at, c.uid))},
            )
            self.manifests[manifest.manifest_id] = manifest
            self.manifest_by_request[cmd.id] = manifest
            self.latest_manifest[sm.id] = manifest.manifest_id
            return {"id": cmd.id, "network_id": network_id}

    def get_manifest(self, network_id: int, sync_module_id: int, request_id: int) -> dict[str, Any]:
        with self.lock:
            sm = self._local_module(network_id, sync_module_id, post=False)
            manifest = self.manifest_by_request.get(request_id)
            if manifest is None or manifest.sync_module_id != sm.id:
                raise ApiError(404, {"message": "Manifest request not found", "code": 404})
            if time.monotonic() < manifest.ready_at:
                raise ApiError(409, MANIFEST_PENDING)
            clips = []
            for clip_id, uid in manifest.clips.items():
                clip = self.local_clips[uid]
                if clip.deleted:
                    continue
                clips.append(
                    {
                        "id": clip_id,
                        "size": str(math.ceil(clip.size / 1024)),
                        "camera_name": alnum(self.world.cameras[clip.camera_id].name),
                        "created_at": fmt_ts(clip.created_at),
                    }
                )
            for n, hostile in enumerate(self.quirks.hostile_manifest_ids):
                entry = dict(clips[0]) if clips else {"size": "100", "camera_name": "Camera"}
                entry.update(id=hostile, created_at=fmt_ts(utcnow() - timedelta(seconds=n)))
                clips.append(entry)
            clips.extend(self.quirks.malformed_manifest_entries)
            return {"version": "1.0", "manifest_id": manifest.manifest_id, "clips": clips}

    def _manifest_clip(self, sm: SyncModule, manifest_id: str, clip_id: str) -> LocalClip:
        if self.latest_manifest.get(sm.id) != manifest_id:
            raise ApiError(404, {"message": "Manifest not found", "code": 404})
        uid = self.manifests[manifest_id].clips.get(clip_id)
        if uid is None or self.local_clips[uid].deleted:
            raise ApiError(404, MEDIA_NOT_FOUND)
        return self.local_clips[uid]

    def request_local_clip(
        self, network_id: int, sync_module_id: int, manifest_id: str, clip_id: str
    ) -> dict[str, Any]:
        with self.lock:
            sm = self._local_module(network_id, sync_module_id, post=True)
            clip = self._manifest_clip(sm, manifest_id, clip_id)
            now = time.monotonic()
            for cmd in self.cmds.commands.values():
                if (
                    cmd.sync_module_id == sm.id
                    and cmd.kind == "local_storage_clip"
                    and not cmd.done
                    and now < cmd.complete_at
                ):
                    if cmd.target_uid == clip.uid:
                        return {"id": cmd.id, "network_id": network_id}
                    raise ApiError(409, BUSY)
            cmd = self.cmds.new_command(network_id, "local_storage_clip", sm.id, clip.uid)
            ready = cmd.complete_at + self.faults.upload_delay_s
            self.uploads[clip.uid] = min(self.uploads.get(clip.uid, ready), ready)
            return {"id": cmd.id, "network_id": network_id}

    def download_local_clip(
        self, network_id: int, sync_module_id: int, manifest_id: str, clip_id: str
    ) -> ClipBody:
        with self.lock:
            sm = self._local_module(network_id, sync_module_id, post=False)
            clip = self._manifest_clip(sm, manifest_id, clip_id)
            ready = self.uploads.get(clip.uid)
            if ready is None or time.monotonic() < ready:
                raise ApiError(self.quirks.usb_not_found_status, MEDIA_NOT_FOUND)
            return ClipBody(f"local:{clip.uid}", clip.size)

    def delete_local_clip(
        self, network_id: int, sync_module_id: int, manifest_id: str, clip_id: str
    ) -> dict[str, Any]:
        with self.lock:
            sm = self._local_module(network_id, sync_module_id, post=True)
            clip = self._manifest_clip(sm, manifest_id, clip_id)
            clip.deleted = True
            self.deleted_local_ids.add(clip_id)
            return {"message": "Clip deleted", "code": 200}
