"""The USB source: Sync Module 2 USB storage. Discovery reads each module's manifest and records every
clip as a row (source ``local``); fetching one clip asks its module to upload it (one at a time per
module: the module is the clip's lane) and downloads it. No thumbnail from Blink: one is generated.

* identity ``local:<sync module id>:<camera id, or the manifest's camera name when unmapped>:<UTC ISO>``.
  Manifest clip ids are renumbered between manifests, so they are only kept as ``blink_id`` (the id in
  the newest manifest, the one the upload URL needs). A row is also re-found by (module, instant,
  camera) when a camera becomes mapped/unmapped, so a mapping change never downloads a clip twice.
* the recording may also be in the cloud: the job's duplicate rule (``archiver.pipeline.dedup``) decides.
* an offline/failing module is reported (its ``ModuleReport`` + one line in the errors, so the sync exits 1)
  and its clips stay pending; the other sources are unaffected.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Hashable
from datetime import datetime
from pathlib import Path

import httpx
from pydantic import Field

from archiver.blink.api import SyncModuleOffline
from archiver.blink.local_storage import LocalStorageClient, ModuleRef, alnum, size_matches
from archiver.blink.models import Manifest
from archiver.db import repo
from archiver.db.engine import session_scope
from archiver.db.models import Clip, ClipSource
from archiver.errors import ArchiverError, AuthError, ConfigError, MediaError
from archiver.pipeline.task import Staged
from archiver.sources.base import (
    Emit,
    Outcome,
    SourceBase,
    SourceContext,
    SourceReport,
    SourceUnavailable,
    Tally,
    Transfer,
)
from archiver.sources.usb_topology import Topology, discover_topology, invalidate_discovery
from archiver.util import as_utc, one_line

log = logging.getLogger("archiver.sources.usb")

GONE = "no longer on the USB storage (rotated out or deleted) before it was archived"


def local_identity(sync_module_id: int, camera: int | str, created_at: datetime) -> str:
    return f"local:{sync_module_id}:{camera}:{as_utc(created_at).isoformat()}"


def _size_hint(value: str | None) -> int | None:
    try:
        return int(str(value).strip()) if value is not None else None
    except ValueError:
        return None


class ModuleReport(Tally):
    name: str
    id: int
    network_id: int
    status: str = "ok"  # ok | offline | error
    manifest_clips: int = 0
    new: int = 0
    rejected: int = 0  # manifest entries that failed validation (logged, skipped, never blocking the rest)
    error: str | None = None


class UsbReport(SourceReport):
    modules: dict[int, ModuleReport] = Field(default_factory=dict)  # by Sync Module id


def upsert_manifest(
    ctx: SourceContext, module: ModuleRef, topo: Topology, manifest: Manifest, result: ModuleReport
) -> list[Clip]:
    """Record every manifest clip at once; return the pending rows to fetch, oldest first. Pending rows
    of this module the manifest no longer lists are marked gone."""
    net_name, tz = topo.networks.get(module.network_id, (None, None))
    todo: list[Clip] = []
    listed: set[int] = set()
    with session_scope(ctx.engine) as s:
        entries = [(mc, topo.camera(module.network_id, mc.camera_name)) for mc in manifest.clips]
        identities = [
            local_identity(module.blink_id, cam.blink_id if cam else alnum(mc.camera_name), mc.created_at)
            for mc, cam in entries
        ]
        known = repo.clips_by_identity(s, ctx.account_id, identities)
        missing = [mc for (mc, _), ident in zip(entries, identities, strict=True) if ident not in known]
        by_instant: dict[datetime, list[Clip]] = defaultdict(list)
        if missing:  # re-find rows whose camera mapping changed since they were recorded
            lo, hi = min(as_utc(m.created_at) for m in missing), max(as_utc(m.created_at) for m in missing)
            for row in repo.clips_of_module_between(
                s, ctx.account_id, UsbSource.name, module.blink_id, lo, hi
            ):
                by_instant[as_utc(row.created_at)].append(row)
        for (mc, cam), identity in zip(entries, identities, strict=True):
            at = as_utc(mc.created_at)
            row = known.get(identity)
            if row is None:
                row = next(
                    (
                        c
                        for c in by_instant.get(at, [])
                        if (cam is not None and c.camera_blink_id == cam.blink_id)
                        or alnum(c.camera_name).casefold() == alnum(mc.camera_name).casefold()
                    ),
                    None,
                )
            if row is None:
                camera = cam.name if cam else mc.camera_name
                camera_id = cam.blink_id if cam else None
                if not ctx.selection.allows(
                    camera=camera, camera_id=camera_id, network=net_name, network_id=module.network_id
                ):
                    continue
                row = Clip(
                    account_id=ctx.account_id,
                    source=UsbSource.name,
                    identity=identity,
                    blink_id=mc.id,
                    created_at=at,
                    sync_module_blink_id=module.blink_id,
                )
                result.new += 1
                known[identity] = row
            row.blink_id = mc.id  # the id in the newest manifest: the only one its URLs accept
            row.network_blink_id = module.network_id
            row.network_name = net_name or row.network_name
            row.time_zone = tz or row.time_zone
            if cam is not None:
                row.camera_blink_id, row.camera_name = cam.blink_id, cam.name
            elif not row.camera_name:
                row.camera_name = mc.camera_name
            row.size_hint = _size_hint(mc.size)
            row.media_url = None  # the URL is built per fetch from the newest manifest id
            row.thumbnail_url = None  # USB clips have no Blink thumbnail: one is generated
            s.add(row)
            s.flush()
            assert row.id is not None
            listed.add(row.id)
            if row.state in repo.PENDING_STATES:
                todo.append(row)
        for row in repo.pending_of_module(s, ctx.account_id, UsbSource.name, module.blink_id):
            if row.id not in listed:  # the card rotated it out, or someone deleted it
                repo.mark_gone(s, row, GONE)
    todo.sort(key=lambda c: (as_utc(c.created_at), c.id or 0))
    return todo


class UsbSource(SourceBase):
    name = ClipSource.local.value
    needs_blink = True

    @classmethod
    def build(cls, ctx: SourceContext) -> UsbSource | None:
        return cls(ctx) if ctx.settings.local_storage.enabled else None

    def __init__(self, ctx: SourceContext) -> None:
        super().__init__(ctx)
        self._report: UsbReport = UsbReport(name=self.name)
        self.clients: dict[int, LocalStorageClient] = {}
        self.manifest_ids: dict[int, str] = {}
        self.down: set[int] = set()

    def lane(self, clip: Clip) -> Hashable | None:
        return (self.name, clip.sync_module_blink_id)

    def _module_report(self, module: ModuleRef) -> ModuleReport:
        return self._report.modules.setdefault(
            module.blink_id, ModuleReport(name=module.name, id=module.blink_id, network_id=module.network_id)
        )

    async def discover(self, emit: Emit) -> None:
        topo = await discover_topology(self.ctx)
        if topo.rejected:
            self._report.notes.append(
                f"{len(topo.rejected)} homescreen items were unusable and skipped (see the log)"
            )
        by_network: dict[int, list[ModuleRef]] = defaultdict(list)
        for m in topo.usb_modules():
            by_network[m.network_id].append(m)

        async def network(modules: list[ModuleRef]) -> None:
            for m in modules:
                await self._guarded(m, self._discover_module(topo, m, emit))

        await asyncio.gather(*(network(ms) for ms in by_network.values()))

    async def _discover_module(self, topo: Topology, module: ModuleRef, emit: Emit) -> None:
        result = self._module_report(module)
        if module.offline:
            raise SyncModuleOffline("the homescreen lists it as offline")
        settings = self.ctx.settings
        client = LocalStorageClient(
            self.ctx.api, settings.local_storage, module, min_clip_bytes=settings.sync.min_clip_bytes
        )
        manifest = await client.manifest()
        result.manifest_clips = len(manifest.clips)
        if manifest.rejected:
            result.rejected = len(manifest.rejected)
            self._report.notes.append(
                f"{module.label}: {len(manifest.rejected)} manifest entries were unusable and skipped"
            )
        self._report.listed += len(manifest.clips)
        todo = await asyncio.to_thread(upsert_manifest, self.ctx, module, topo, manifest, result)
        self._report.new += result.new
        log.info(
            "%s: manifest %s has %d clips, %d new, %d to fetch",
            module.label,
            manifest.manifest_id,
            len(manifest.clips),
            result.new,
            len(todo),
        )
        self.clients[module.blink_id] = client
        self.manifest_ids[module.blink_id] = manifest.manifest_id
        emit(todo)

    async def _guarded(self, module: ModuleRef, step: Awaitable[None]) -> None:
        try:
            await step
        except (AuthError, ConfigError, asyncio.CancelledError):
            raise
        except Exception as exc:  # one module's trouble never stops the others or the other sources
            self._module_down(module, exc)

    def _module_down(self, module: ModuleRef, exc: BaseException) -> str:
        offline = isinstance(exc, SyncModuleOffline)
        text = one_line(exc, 300)
        result = self._module_report(module)
        result.status, result.error = ("offline" if offline else "error"), text
        what = "offline" if offline else f"USB storage failed ({text})"
        message = f"{module.label}: {what}; its USB clips will be fetched next run"
        if module.blink_id not in self.down:
            self.down.add(module.blink_id)
            self._report.errors.append(message)
            log.warning("%s: %s", module.label, text)
            invalidate_discovery(self.ctx.engine, self.ctx.account_id)  # re-read the homescreen next run
        return message

    async def fetch(self, clip: Clip, work: Path, transfer: Transfer) -> Staged:
        sm = clip.sync_module_blink_id
        client = self.clients.get(sm) if sm is not None else None
        if client is None or sm in self.down:
            raise SourceUnavailable("its Sync Module was not listed in this run")
        ls = self.ctx.settings.local_storage
        end = time.monotonic() + ls.upload_deadline_s
        url = client.clip_url(self.manifest_ids[sm], clip.blink_id)
        try:
            await client.request_upload(url, end)
        except SyncModuleOffline as exc:
            raise SourceUnavailable(self._module_down(client.module, exc)) from None
        except (AuthError, ConfigError):
            raise
        except (ArchiverError, httpx.HTTPError) as exc:
            raise MediaError(f"USB upload: {str(exc) or type(exc).__name__}") from None
        async with transfer():  # held while the module uploads and the bytes move
            media = await client.fetch(url, work / "clip.mp4", end)
        notes: list[str] = []
        if clip.size_hint is not None and size_matches(clip.size_hint, media.size) is None:
            note = (
                f"size check: downloaded {media.size} bytes, the manifest said {clip.size_hint} "
                f"(neither bytes nor KiB)"
            )
            log.warning("clip=%s %s", clip.identity, note)
            notes.append(note)
        return Staged(media, None, notes)

    def settled(self, clip: Clip, outcome: Outcome) -> None:
        super().settled(clip, outcome)
        if (module := self._report.modules.get(clip.sync_module_blink_id or -1)) is not None:
            module.count(outcome)

    def report(self) -> UsbReport:
        return self._report


__all__ = ["ModuleReport", "UsbReport", "UsbSource", "local_identity", "upsert_manifest"]
