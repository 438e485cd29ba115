"""Sync Module 2 USB storage: discover clips through the module's manifest, have the module upload each
one, then archive it through the same fetch → check → process → store path as cloud clips.

Flow per module (``../shared/blink-api.md`` §4, §5)::

    POST manifest/request → wait for the command → GET manifest/request/{id} (poll until ready)
    → upsert every manifest clip as a Clip row (source=local) at once
    → for each pending clip, oldest first, one at a time:
        POST manifest/{mid}/clip/request/{cid} (409 busy → pause, retry) → wait for the command
        → GET the same URL until it stops answering "Media not found" (code 700) → archive

Decisions (see the module's tests):

* identity ``local:<sync module id>:<camera id, or the manifest's camera name when unmapped>:<UTC ISO>``.
  Manifest clip ids are renumbered between manifests, so they are only kept as ``blink_id`` (the id in
  the newest manifest, the one the upload URL needs). A row is also re-found by (module, instant,
  camera) when a camera becomes mapped/unmapped, so a mapping change never downloads a clip twice.
* cross-source duplicates (same camera id, ``created_at`` within ±2 s): the cloud copy wins because
  it costs no module wake-up. While the cloud row is still pending the local row is left untouched
  (skipped this run, re-checked next run, so a cloud clip that vanishes before it is archived, or fails
  ``CLOUD_GIVE_UP`` times, is still fetched from USB). Once the cloud row is stored (or pruned) the
  local row is marked ``stored`` with no objects, ``size`` NULL and ``last_error`` =
  ``"duplicate: same recording archived from the cloud as cloud:<id>"``. The same marker is written the
  other way (``"duplicate: same recording archived from USB as local:..."``) on a pending cloud row
  whose recording is already stored from USB.
* discovery (homescreen) is cached in the Network/Camera/SyncModule tables; the time of the last
  homescreen read is a Cursor row with source ``"homescreen"`` (so an account with no USB modules is
  remembered too). The cache is re-read after ``local_storage.discovery_interval`` and at once after a
  module problem.
* an offline/failing module is reported (``report.local`` status + one line in ``report.errors``, so the
  sync exits 1) and skipped; the cloud part of the sync is unaffected.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from sqlmodel import Session, col, select

from archiver.blink.api import LocalStoragePending, SyncModuleBusy, SyncModuleOffline
from archiver.blink.models import CommandRef, Homescreen, Manifest, ManifestClip
from archiver.config import parse_duration
from archiver.db import repo
from archiver.db.engine import session_scope
from archiver.db.models import Camera, Clip, ClipSource, ClipState, Cursor, Network, SyncModule, utcnow
from archiver.errors import ArchiverError, AuthError, BlinkError, ConfigError, MediaError
from archiver.pipeline.fetch import Fetched, NotFoundUpstream, download

if TYPE_CHECKING:
    from archiver.pipeline.sync import AccountSync, SyncReport

log = logging.getLogger("archiver.sources.local_storage")

HOMESCREEN_CURSOR = "homescreen"
DUPLICATE_WINDOW = timedelta(seconds=2)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CLOUD_GIVE_UP = 3  # failed cloud attempts after which the USB copy of the same recording is fetched
ARCHIVED_STATES, PENDING_STATES = repo.ARCHIVED_STATES, repo.PENDING_STATES


# ------------------------------------------------------------------------------------------ helpers
def alnum(name: str | None) -> str:
    """The manifest's spelling of a camera name: non-alphanumerics removed (``Back Door`` → ``BackDoor``)."""
    return re.sub(r"[^0-9A-Za-z]", "", name or "")


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def local_identity(sync_module_id: int, camera: int | str, created_at: datetime) -> str:
    return f"local:{sync_module_id}:{camera}:{_utc(created_at).isoformat()}"


def size_matches(size_hint: int | None, nbytes: int) -> str | None:
    """Which unit the manifest ``size`` was in ("bytes"/"KiB"), or None when it matches neither."""
    if size_hint is None:
        return None
    if size_hint > 0 and abs(nbytes - size_hint) <= size_hint * 0.01:
        return "bytes"
    if math.ceil(nbytes / 1024) == size_hint or abs(nbytes / 1024 - size_hint) <= 1:
        return "KiB"
    return None


def _size_hint(value: str | None) -> int | None:
    try:
        return int(str(value).strip()) if value is not None else None
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------ topology
@dataclass
class ModuleInfo:
    blink_id: int
    network_id: int
    name: str
    status: str | None
    local_storage_status: str | None
    has_usb_offline: bool = False  # USB enabled but the module is offline (homescreen only)

    @property
    def label(self) -> str:
        return f"sync module {self.name!r} (id {self.blink_id})"


@dataclass
class Topology:
    networks: dict[int, tuple[str, str | None]] = field(default_factory=dict)  # id -> (name, time zone)
    cameras: dict[int, dict[str, tuple[int, str]]] = field(default_factory=dict)  # net -> alnum key -> cam
    modules: list[ModuleInfo] = field(default_factory=list)
    from_cache: bool = False

    def add_camera(self, network_id: int, camera_id: int, name: str) -> None:
        self.cameras.setdefault(network_id, {})[alnum(name).casefold()] = (camera_id, name)

    def usb_modules(self) -> list[ModuleInfo]:
        return [m for m in self.modules if m.local_storage_status == "active" or m.has_usb_offline]


def _homescreen_cursor(s: Session, account_id: int) -> Cursor | None:
    return repo.get_cursor(s, account_id, HOMESCREEN_CURSOR)


def invalidate_discovery(engine: Any, account_id: int) -> None:
    """Make the next sync re-read the homescreen (after a module problem)."""
    with session_scope(engine) as s:
        cur = _homescreen_cursor(s, account_id)
        if cur is not None:
            cur.since = EPOCH
            cur.updated_at = utcnow()
            s.add(cur)


def _load_cached(s: Session, account_id: int) -> Topology:
    topo = Topology(from_cache=True)
    for n in s.exec(select(Network).where(Network.account_id == account_id)):
        topo.networks[n.blink_id] = (n.name, n.time_zone)
    for c in s.exec(select(Camera).where(Camera.account_id == account_id)):
        topo.add_camera(c.network_id, c.blink_id, c.name)
    for m in s.exec(select(SyncModule).where(SyncModule.account_id == account_id)):
        topo.modules.append(ModuleInfo(m.blink_id, m.network_id, m.name, m.status, m.local_storage_status))
    return topo


def _store_homescreen(s: Session, account_id: int, hs: Homescreen, now: datetime) -> Topology:
    topo = Topology()

    def sync_table(model: Any, items: Iterable[Any], apply: Any) -> None:
        existing = {r.blink_id: r for r in s.exec(select(model).where(model.account_id == account_id))}
        seen: set[int] = set()
        for item in items:
            row = existing.get(item.id)
            if row is None:
                row = model(
                    account_id=account_id,
                    blink_id=item.id,
                    name="",
                    **({} if model is Network else {"network_id": item.network_id}),
                )
            apply(row, item)
            row.seen_at = now
            s.add(row)
            seen.add(item.id)
        for blink_id, row in existing.items():
            if blink_id not in seen:  # gone from the account: the cache only mirrors the homescreen
                s.delete(row)

    def net(row: Network, n: Any) -> None:
        row.name, row.time_zone = n.name, n.time_zone
        topo.networks[n.id] = (n.name, n.time_zone)

    def cam(row: Camera, c: Any) -> None:
        row.network_id, row.name, row.type = c.network_id, c.name, c.type
        topo.add_camera(c.network_id, c.id, c.name)

    def mod(row: SyncModule, m: Any) -> None:
        row.network_id, row.name, row.status = m.network_id, m.name, m.status
        row.local_storage_status = m.local_storage_status
        offline = bool(m.local_storage_enabled) and (m.status or "").lower() == "offline"
        topo.modules.append(
            ModuleInfo(
                m.id,
                m.network_id,
                m.name,
                m.status,
                m.local_storage_status,
                has_usb_offline=offline and not m.usable_local_storage,
            )
        )

    sync_table(Network, hs.networks, net)
    sync_table(Camera, hs.all_cameras(), cam)
    sync_table(SyncModule, hs.sync_modules, mod)
    cur = _homescreen_cursor(s, account_id)
    if cur is None:
        cur = Cursor(account_id=account_id, source=HOMESCREEN_CURSOR, since=now)
    cur.since = now
    cur.updated_at = now
    s.add(cur)
    return topo


async def discover_topology(sync: AccountSync, force: bool = False) -> Topology:
    """Networks, cameras and USB-capable modules: from the database while younger than
    ``discovery_interval``, else from one homescreen request."""
    interval = parse_duration(sync.settings.local_storage.discovery_interval)
    now = datetime.now(UTC)
    if not force:
        with session_scope(sync.engine) as s:
            cur = _homescreen_cursor(s, sync.account_id)
            if cur is not None and now - _utc(cur.since) < interval:
                return _load_cached(s, sync.account_id)
    hs = await sync.api.homescreen()
    with session_scope(sync.engine) as s:
        topo = _store_homescreen(s, sync.account_id, hs, now)
    log.info(
        "homescreen: %d networks, %d sync modules (%d with USB storage)",
        len(topo.networks),
        len(topo.modules),
        len(topo.usb_modules()),
    )
    return topo


# ------------------------------------------------------------------------------------------ the client
class Pacer:
    """Learns how long a module takes for one kind of step and waits the shortest time seen before the first
    status request, so a step costs about one poll instead of one per ``poll_interval_s``."""

    def __init__(self) -> None:
        self._seen: deque[float] = deque(maxlen=5)

    def first_wait(self, deadline: float) -> float:
        wait = min(self._seen) if self._seen else 0.0
        return max(0.0, min(wait, deadline - time.monotonic()))

    def record(self, elapsed: float) -> None:
        self._seen.append(elapsed)


class LocalStorageClient:
    """The local-storage calls, telling 'offline' (409 code 1007) apart from 'busy' (409 code 307)."""

    def __init__(self, sync: AccountSync, module: ModuleInfo) -> None:
        self.sync = sync
        self.api = sync.api
        self.http = sync.api.http
        self.ls = sync.settings.local_storage
        self.module = module
        self.net = module.network_id
        self.sm = module.blink_id
        self.pace = {"command": Pacer(), "manifest": Pacer(), "upload": Pacer()}

    async def post_until_accepted(self, url: str, what: str, deadline: float) -> CommandRef:
        """POST a command; 'busy' → pause ``busy_pause_s`` and retry until ``deadline`` (monotonic)."""
        while True:
            try:
                return await self.api.command_post(url, what)
            except SyncModuleBusy:
                pause = max(self.ls.busy_pause_s, 0.01)
                if time.monotonic() + pause > deadline:
                    raise SyncModuleBusy(f"{what}: the Sync Module stayed busy until the deadline") from None
                await asyncio.sleep(pause)

    async def wait(self, cmd: CommandRef, deadline: float) -> None:
        started, pacer = time.monotonic(), self.pace["command"]
        await asyncio.sleep(pacer.first_wait(deadline))
        budget = min(self.ls.command_deadline_s, max(deadline - time.monotonic(), 0.0))
        try:
            await self.api.wait_for_command(
                cmd.network_id or self.net, cmd.id, budget, self.ls.poll_interval_s
            )
        except BlinkError as exc:
            if "offline" in str(exc).lower():
                raise SyncModuleOffline(str(exc)) from None
            raise
        pacer.record(time.monotonic() - started)

    async def manifest(self) -> Manifest:
        """Request a fresh manifest, wait for its command, poll it until ready (with backoff)."""
        end = time.monotonic() + self.ls.manifest_deadline_s
        base = self.api.local_storage_url(self.net, self.sm)
        cmd = await self.post_until_accepted(f"{base}/manifest/request", "manifest request", end)
        await self.wait(cmd, end)
        delay = self.ls.poll_interval_s
        started, pacer = time.monotonic(), self.pace["manifest"]
        await asyncio.sleep(pacer.first_wait(end))
        while True:
            try:
                manifest = await self.api.get_manifest(self.net, self.sm, cmd.id)
                pacer.record(time.monotonic() - started)
                return manifest
            except LocalStoragePending:
                if time.monotonic() + delay > end:
                    raise BlinkError(f"manifest not ready within {self.ls.manifest_deadline_s:g} s") from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, max(self.ls.poll_interval_s * 8, 1.0))

    def clip_url(self, manifest_id: str, clip_id: str) -> str:
        return self.api.local_clip_url(self.net, self.sm, manifest_id, clip_id)

    async def fetch(self, url: str, dest: Path, end: float) -> Fetched:
        """GET the uploaded clip, polling while Blink still says 'Media not found' (not uploaded yet)."""
        delay = self.ls.poll_interval_s
        started, pacer = time.monotonic(), self.pace["upload"]
        await asyncio.sleep(pacer.first_wait(end))
        while True:
            try:
                media = await download(
                    self.http, url, dest, kind="clip", min_bytes=self.sync.settings.sync.min_clip_bytes
                )
                pacer.record(time.monotonic() - started)
                return media
            except NotFoundUpstream:
                if time.monotonic() + delay > end:
                    raise MediaError(
                        f"the USB clip was not uploaded within {self.ls.upload_deadline_s:g} s"
                    ) from None
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, self.ls.poll_interval_s * 4)


# ------------------------------------------------------------------------------------------ the rows
@dataclass
class ModuleResult:
    name: str
    id: int
    network_id: int
    status: str = "ok"  # ok | offline | error
    manifest_clips: int = 0
    new: int = 0
    stored: int = 0
    failed: int = 0
    duplicates: int = 0
    pending: int = 0  # still to fetch after this run
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _find_duplicate(
    s: Session,
    account_id: int,
    source: ClipSource,
    camera_id: int | None,
    at: datetime,
    states: Iterable[ClipState],
    identity: str | None = None,
) -> Clip | None:
    """The nearest clip of the other source at the same instant; one recording matches at most one clip
    (a cloud clip already claimed by another USB clip is not a match)."""
    if camera_id is None:
        return None
    at = _utc(at)
    q = select(Clip).where(
        Clip.account_id == account_id,
        Clip.source == source,
        Clip.camera_blink_id == camera_id,
        col(Clip.created_at) >= at - DUPLICATE_WINDOW,
        col(Clip.created_at) <= at + DUPLICATE_WINDOW,
        col(Clip.state).in_(list(states)),
    )
    rows = sorted(s.exec(q), key=lambda r: (abs((_utc(r.created_at) - at).total_seconds()), r.id or 0))
    for row in rows:
        if (
            source == ClipSource.cloud
            and row.state not in ARCHIVED_STATES
            and (row.deleted_upstream or (row.state == ClipState.failed and row.attempts >= CLOUD_GIVE_UP))
        ):
            continue  # vanished from the cloud / keeps failing there: fetch the USB copy instead
        claimed = s.exec(
            select(Clip.id).where(
                Clip.account_id == account_id,
                Clip.identity != (identity or ""),
                Clip.last_error == _marker(row, "the cloud" if source == ClipSource.cloud else "USB"),
            )
        ).first()
        if claimed is not None:
            continue
        return row
    return None


def _marker(other: Clip, where: str) -> str:
    return f"duplicate: same recording archived from {where} as {other.identity}"


def _mark_duplicate(row: Clip, other: Clip, where: str) -> None:
    row.state = ClipState.stored
    row.stored_at = utcnow()
    row.last_error = _marker(other, where)


def upsert_manifest(
    sync: AccountSync, module: ModuleInfo, topo: Topology, manifest: Manifest, result: ModuleResult
) -> list[tuple[int, str]]:
    """Record every manifest clip at once; return (row id, manifest clip id) of the clips to fetch,
    oldest first."""
    net_name, tz = topo.networks.get(module.network_id, (None, None))
    cams = topo.cameras.get(module.network_id, {})
    entries: list[tuple[ManifestClip, str, tuple[int, str] | None]] = []
    for mc in manifest.clips:
        cam = cams.get(alnum(mc.camera_name).casefold())
        key: int | str = cam[0] if cam else alnum(mc.camera_name)
        entries.append((mc, local_identity(module.blink_id, key, mc.created_at), cam))
    todo: list[tuple[datetime, int, str]] = []
    listed: list[Clip] = []
    with session_scope(sync.engine) as s:
        known = repo.clips_by_identity(s, sync.account_id, (e[1] for e in entries))
        missing = [e for e in entries if e[1] not in known]
        by_instant: dict[datetime, list[Clip]] = defaultdict(list)
        if missing:  # re-find rows whose camera mapping changed since they were recorded
            lo = min(_utc(e[0].created_at) for e in missing)
            hi = max(_utc(e[0].created_at) for e in missing)
            q = select(Clip).where(
                Clip.account_id == sync.account_id,
                Clip.source == ClipSource.local,
                Clip.sync_module_blink_id == module.blink_id,
                col(Clip.created_at) >= lo,
                col(Clip.created_at) <= hi,
            )
            for row in s.exec(q):
                by_instant[_utc(row.created_at)].append(row)
        for mc, identity, cam in entries:
            at = _utc(mc.created_at)
            row = known.get(identity)
            if row is None:
                for cand in by_instant.get(at, []):
                    if (cam is not None and cand.camera_blink_id == cam[0]) or (
                        alnum(cand.camera_name).casefold() == alnum(mc.camera_name).casefold()
                    ):
                        row = cand
                        break
            if row is None:
                row = Clip(
                    account_id=sync.account_id,
                    source=ClipSource.local,
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
                row.camera_blink_id, row.camera_name = cam
            elif not row.camera_name:
                row.camera_name = mc.camera_name
            row.size_hint = _size_hint(mc.size)
            row.media_url = None  # the URL is built per fetch from the newest manifest id
            row.thumbnail_url = None  # USB clips have no Blink thumbnail: one is generated
            s.add(row)
            listed.append(row)
            if row.state in PENDING_STATES:
                dup = _find_duplicate(
                    s,
                    sync.account_id,
                    ClipSource.cloud,
                    row.camera_blink_id,
                    at,
                    (*ARCHIVED_STATES, *PENDING_STATES),
                    identity,
                )
                if dup is not None:
                    if dup.state in ARCHIVED_STATES:
                        _mark_duplicate(row, dup, "the cloud")
                    result.duplicates += 1
                    log.info(
                        "clip=%s is the same recording as %s: not fetched from USB", identity, dup.identity
                    )
                    continue
                s.flush()
                assert row.id is not None
                todo.append((at, row.id, mc.id))
        s.flush()
        _mark_vanished(s, sync.account_id, module.blink_id, {r.id for r in listed if r.id is not None})
    todo.sort()
    return [(rid, cid) for _, rid, cid in todo]


def _mark_vanished(s: Session, account_id: int, module_id: int, listed: set[int]) -> None:
    """Pending USB clips of this module that the newest manifest no longer lists (the card rotated them
    out, or someone deleted them) can never be fetched: say so instead of leaving them pending."""
    q = select(Clip).where(
        Clip.account_id == account_id,
        Clip.source == ClipSource.local,
        Clip.sync_module_blink_id == module_id,
        col(Clip.state).in_(list(PENDING_STATES)),
        col(Clip.deleted_upstream).is_(False),
    )
    for row in s.exec(q):
        if row.id not in listed:
            row.deleted_upstream = True
            row.state = ClipState.failed
            row.last_error = "no longer on the USB storage (rotated out or deleted) before it was archived"
            s.add(row)


def _mark_if_usb_copy(s: Session, account_id: int, row: Clip) -> bool:
    dup = _find_duplicate(
        s, account_id, ClipSource.local, row.camera_blink_id, row.created_at, ARCHIVED_STATES, row.identity
    )
    if dup is None or dup.size is None:  # no real USB copy (a duplicate marker has no size)
        return False
    _mark_duplicate(row, dup, "USB")
    s.add(row)
    return True


def mark_cloud_duplicates(sync: AccountSync) -> int:
    """Pending cloud rows whose recording is already stored from USB: mark them, do not fetch again."""
    with session_scope(sync.engine) as s:
        pending = s.exec(
            select(Clip).where(
                Clip.account_id == sync.account_id,
                Clip.source == ClipSource.cloud,
                col(Clip.state).in_(list(PENDING_STATES)),
                col(Clip.camera_blink_id).is_not(None),
            )
        ).all()
        return sum(_mark_if_usb_copy(s, sync.account_id, row) for row in pending)


def cloud_clip_is_duplicate(sync: AccountSync, clip: Clip) -> bool:
    """Checked before a cloud clip is fetched: is the same recording already stored from USB?"""
    if clip.camera_blink_id is None:
        return False
    with session_scope(sync.engine) as s:
        row = s.get(Clip, clip.id)
        return row is not None and _mark_if_usb_copy(s, sync.account_id, row)


def _has_usb_clips(sync: AccountSync) -> bool:
    with session_scope(sync.engine) as s:
        return (
            s.exec(
                select(Clip.id)
                .where(Clip.account_id == sync.account_id, Clip.source == ClipSource.local)
                .limit(1)
            ).first()
            is not None
        )


# ------------------------------------------------------------------------------------------ the flow
async def _archive_one(
    sync: AccountSync,
    client: LocalStorageClient,
    report: SyncReport,
    result: ModuleResult,
    clip: Clip,
    manifest_id: str,
) -> None:
    ls = sync.settings.local_storage
    end = time.monotonic() + ls.upload_deadline_s
    url = client.clip_url(manifest_id, clip.blink_id)
    try:
        cmd = await client.post_until_accepted(url, "clip upload request", end)
        await client.wait(cmd, end)
    except (SyncModuleOffline, AuthError, ConfigError):
        raise
    except (ArchiverError, httpx.HTTPError) as exc:
        message = f"USB upload: {str(exc) or type(exc).__name__}"[:500]
        sync._fail(clip, message)
        result.failed += 1
        report.failed += 1
        report.clip_errors.append(f"{clip.identity}: {message}")
        sync.reporter.clip_done(clip, False, message)
        return

    async def fetch_clip(dest: Path) -> Fetched:
        media = await client.fetch(url, dest, end)
        unit = size_matches(clip.size_hint, media.size)
        if unit is None and clip.size_hint is not None:
            note = (
                f"size check: downloaded {media.size} bytes, the manifest said {clip.size_hint} "
                f"(neither bytes nor KiB)"
            )
            log.warning("clip=%s %s", clip.identity, note)
            sync.row_updates.setdefault(clip.identity, {}).setdefault("last_error", note)
        return media

    if await sync.archive_clip(clip, report, fetch_clip=fetch_clip):
        result.stored += 1
    else:
        result.failed += 1


async def run_module(
    sync: AccountSync, report: SyncReport, topo: Topology, module: ModuleInfo
) -> ModuleResult:
    result = ModuleResult(name=module.name, id=module.blink_id, network_id=module.network_id)
    if module.has_usb_offline:
        raise SyncModuleOffline("the homescreen lists it as offline")
    client = LocalStorageClient(sync, module)
    manifest = await client.manifest()
    result.manifest_clips = len(manifest.clips)
    todo = upsert_manifest(sync, module, topo, manifest, result)
    log.info(
        "%s: manifest %s has %d clips, %d new, %d to fetch",
        module.label,
        manifest.manifest_id,
        len(manifest.clips),
        result.new,
        len(todo),
    )
    for i, (row_id, _clip_id) in enumerate(todo):
        with session_scope(sync.engine) as s:
            clip = s.get(Clip, row_id)
        if clip is None or clip.state not in PENDING_STATES:
            continue
        try:
            await _archive_one(sync, client, report, result, clip, manifest.manifest_id)
        except SyncModuleOffline:
            result.pending = len(todo) - i
            raise
    return result


async def _run_module_guarded(
    sync: AccountSync, report: SyncReport, topo: Topology, module: ModuleInfo
) -> ModuleResult:
    try:
        return await run_module(sync, report, topo, module)
    except (AuthError, ConfigError, asyncio.CancelledError):
        raise
    except Exception as exc:  # one module's trouble never stops the others or the cloud part
        offline = isinstance(exc, SyncModuleOffline)
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        result = ModuleResult(
            name=module.name,
            id=module.blink_id,
            network_id=module.network_id,
            status="offline" if offline else "error",
            error=text,
        )
        what = "offline" if offline else f"USB storage failed ({text})"
        report.errors.append(f"{module.label}: {what}; its USB clips will be fetched next run")
        log.warning("%s: %s", module.label, text)
        return result


async def local_source(sync: AccountSync, report: SyncReport) -> dict[str, Any]:
    """The hook ``AccountSync._discover_local`` calls; its answer goes into ``report.local``."""
    topo = await discover_topology(sync)
    modules = topo.usb_modules()
    out: dict[str, Any] = {}
    if mark_cloud_duplicates(sync):
        log.info("cloud clips already archived from USB were marked as duplicates")
    if not modules:
        return out
    by_network: dict[int, list[ModuleInfo]] = defaultdict(list)
    for m in modules:
        by_network[m.network_id].append(m)

    async def network(mods: list[ModuleInfo]) -> list[ModuleResult]:
        return [await _run_module_guarded(sync, report, topo, m) for m in mods]

    results = [r for rs in await asyncio.gather(*(network(ms) for ms in by_network.values())) for r in rs]
    for r in results:
        out[str(r.id)] = r.as_dict()
    if any(r.status != "ok" for r in results):
        invalidate_discovery(sync.engine, sync.account_id)
    return out


def attach(sync: Any) -> None:
    """Plug the USB source into an AccountSync when enabled."""
    if sync.settings.local_storage.enabled:
        sync.local_source = local_source
        if _has_usb_clips(sync):  # cloud-only accounts pay nothing for the cross-source check
            sync.cloud_duplicate_check = functools.partial(cloud_clip_is_duplicate, sync)
