"""One sync of one account: discover (cloud listing, USB manifests) → fetch → process → store.

The database is the queue: discovery only upserts rows; every pending row is then fetched with bounded
concurrency, and a clip becomes ``stored`` only once every destination durably holds all its files.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from archiver.blink.api import BlinkAPI
from archiver.blink.auth import Authenticator, PinProvider
from archiver.blink.http import BlinkHTTP
from archiver.config import AccountSettings, Settings
from archiver.db import repo
from archiver.db.engine import session_scope
from archiver.db.models import Clip, ClipSource, ClipState, ObjectKind, utcnow
from archiver.destinations.base import Destination
from archiver.errors import ArchiverError, AuthError, ConfigError
from archiver.pipeline.fetch import Fetched, NotFoundUpstream, download, fsync_file
from archiver.pipeline.naming import clip_key, local_time, sibling, validate_template
from archiver.pipeline.store import StagedFile, store_all
from archiver.sources import cloud

log = logging.getLogger("archiver.sync")


class SyncReport(BaseModel):
    account: str
    skipped_lease: bool = False  # another run holds this account's lease
    cloud_deleted: int = 0
    pruned: int = 0
    listed: int = 0
    new: int = 0
    pages: int = 0
    stored: int = 0
    failed: int = 0
    pending_before: int = 0
    bytes: int = 0
    requests: int = 0
    throttled: int = 0
    duration_s: float = 0.0
    errors: list[str] = Field(default_factory=list)  # run-level problems (auth, listing, a source)
    clip_errors: list[str] = Field(default_factory=list)
    local: dict[str, Any] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors and self.failed == 0

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1


class Reporter:
    """Progress hooks; the CLI subclasses this with a rich progress bar. Default: log lines."""

    def planned(self, total: int) -> None:
        log.info("to fetch: %d clips", total)

    def clip_done(self, clip: Clip, ok: bool, message: str = "") -> None:
        if ok:
            log.info("stored clip=%s camera=%s", clip.identity, clip.camera_name)
        else:
            log.warning("failed clip=%s: %s", clip.identity, message)

    def bytes_fetched(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:500]


class AccountSync:
    """Wires client, database, destinations for one account; ``run()`` performs one sync."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        account: AccountSettings,
        destinations: Sequence[Destination],
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        reporter: Reporter | None = None,
        processor: Any | None = None,
    ) -> None:
        validate_template(settings.sync.filename_template)
        self.settings = settings
        self.engine = engine
        self.account_settings = account
        self.destinations = list(destinations)
        self.reporter = reporter or Reporter()
        self.processor = processor
        row = repo.get_or_create_account(engine, account.name, account.username, settings.blink.auth)
        assert row.id is not None
        self.account_id: int = row.id
        self.http = BlinkHTTP(settings.blink, transport=transport)
        store = repo.AccountCredentialStore(
            engine, row.id, account.name, settings.data_dir / f".unsaved-credentials-{row.id}.json"
        )
        self.auth = Authenticator(
            self.http,
            settings.blink,
            store.load(row),
            store,
            username=account.username,
            password=account.password.get_secret_value() if account.password else None,
        )
        self.api = BlinkAPI(self.http, self.auth)
        self.staging = settings.staging_dir / f"account-{self.account_id}"
        self.row_updates: dict[str, dict[str, Any]] = {}  # probe results, warnings: written when stored
        # Transfer slots are held only while bytes move; probing, hashing and storing happen after the
        # slot is released, so the network stays busy.
        self._transfers = asyncio.Semaphore(settings.sync.concurrency)
        self.rescan_from: datetime | None = None  # `archiver sync --since`

    async def aclose(self) -> None:
        self.reporter.close()
        await self.http.aclose()
        close = getattr(self.processor, "close", None)
        if close is not None:
            close()

    async def login(self, username: str, password: str, pin: PinProvider | None) -> None:
        await self.auth.login(username, password, pin)

    # -- the run -----------------------------------------------------------------------------------
    async def run(self) -> SyncReport:
        """List and fetch at the same time: clips of the first page are downloading while later pages
        are still being listed. Clips left pending by earlier runs are fetched too."""
        started = time.monotonic()
        report = SyncReport(account=self.account_settings.name)
        self._clean_staging()
        try:
            await self.auth.ensure()
            await self._discover_and_fetch(report)
            if self.settings.cloud_cleanup.enabled:
                await self._cloud_cleanup(report)
        finally:
            report.requests = self.http.stats.requests
            report.throttled = self.http.stats.throttled
            report.duration_s = round(time.monotonic() - started, 3)
        return report

    async def _discover_and_fetch(self, report: SyncReport) -> None:
        queue: asyncio.Queue[Clip | None] = asyncio.Queue()
        queued: set[int] = set()

        def enqueue(clips: Sequence[Clip]) -> None:
            fresh = [
                c
                for c in clips
                if c.id not in queued
                and c.source == ClipSource.cloud
                and not c.deleted_upstream
                and not c.partial
                and c.state in repo.PENDING_STATES
            ]
            for c in fresh:
                queued.add(c.id)  # type: ignore[arg-type]
                queue.put_nowait(c)
            if fresh:
                self.reporter.planned(len(queued))

        with session_scope(self.engine) as s:
            enqueue(repo.pending_clips(s, self.account_id, ClipSource.cloud))
        report.pending_before = len(queued)

        async def discover() -> None:
            try:
                await self._guarded(self._discover_cloud(report, enqueue), report)
            finally:
                queue.put_nowait(None)  # the cloud queue is complete
            # USB after the listing, so it sees every cloud row (a recording in both is stored once)
            await self._guarded(self._discover_local(report), report)

        async def worker() -> None:
            while (clip := await queue.get()) is not None:
                check = getattr(self, "cloud_duplicate_check", None)
                if check is not None and await asyncio.to_thread(check, clip):
                    continue
                await self.archive_clip(clip, report)
            queue.put_nowait(None)  # let the next worker see the end too

        try:  # an auth failure (or the breaker) cancels the other transfers at once
            async with asyncio.TaskGroup() as tg:
                tg.create_task(discover())
                for _ in range(2 * self.settings.sync.concurrency):  # bounds the staged clips
                    tg.create_task(worker())
        except* (AuthError, ConfigError) as group:
            raise group.exceptions[0] from None

    @staticmethod
    async def _guarded(step: Awaitable[None], report: SyncReport) -> None:
        """A source that fails (listing error, Sync Module offline) is reported; the run goes on."""
        try:
            await step
        except (AuthError, ConfigError):
            raise
        except ArchiverError as exc:
            report.errors.append(_one_line(exc))

    async def _discover_cloud(self, report: SyncReport, on_new: Callable[[Sequence[Clip]], None]) -> None:
        first = datetime.fromisoformat(self.settings.sync.since)
        if first.tzinfo is None:
            first = first.replace(tzinfo=UTC)
        result = await cloud.discover(
            self.api,
            self.engine,
            self.account_id,
            cloud.Filters(self.account_settings.cameras, self.account_settings.networks),
            timedelta(minutes=self.settings.sync.overlap_minutes),
            first,
            on_new,
            self.rescan_from,
        )
        report.listed, report.new, report.pages = result.listed, result.new, result.pages

    async def _discover_local(self, report: SyncReport) -> None:
        """Sync Module USB storage; a hook other sources plug into (see archiver.sources)."""
        source = getattr(self, "local_source", None)
        if source is not None:
            report.local = await source(self, report)

    async def _cloud_cleanup(self, report: SyncReport) -> None:
        """Opt-in: delete archived clips from the Blink cloud, only once every destination was checked
        to hold every file of the clip (size and, where the backend knows it, sha256)."""
        with session_scope(self.engine) as s:
            rows = s.exec(
                select(Clip).where(
                    Clip.account_id == self.account_id,
                    Clip.source == ClipSource.cloud,
                    Clip.state == ClipState.stored,
                    col(Clip.cloud_deleted_at).is_(None),
                    col(Clip.deleted_upstream).is_(False),
                )
            ).all()
            objects = {c.id: repo.objects_of(s, c.id) for c in rows if c.id is not None}
        by_name = {d.name: d for d in self.destinations}

        def held_everywhere(clip_id: int) -> bool:
            objs = objects.get(clip_id, [])
            for dest in self.destinations:
                mine = [o for o in objs if o.destination == dest.name]
                if not any(o.kind == ObjectKind.clip or o.kind == ObjectKind.transcode for o in mine):
                    return False
                for o in mine:
                    info = by_name[o.destination].stat(o.key)
                    if info is None or info.size != o.size or (info.sha256 and info.sha256 != o.sha256):
                        return False
            return True

        verified = [c for c in rows if c.id is not None and await asyncio.to_thread(held_everywhere, c.id)]
        for i in range(0, len(verified), 50):
            batch = verified[i : i + 50]
            try:
                await self.api.delete_media([int(c.blink_id) for c in batch])
            except ArchiverError as exc:
                report.errors.append(f"cloud cleanup: {_one_line(exc)}")
                return
            for c in batch:
                self._mark(c, ClipState.stored, cloud_deleted_at=utcnow())
            report.cloud_deleted += len(batch)

    # -- one clip ------------------------------------------------------------------------------------
    def key_for(self, clip: Clip) -> str:
        return clip_key(
            self.settings.sync.filename_template,
            network=clip.network_name,
            camera=clip.camera_name,
            clip_id=clip.blink_id,
            created_at=clip.created_at,
            time_zone=clip.time_zone,
            source=clip.source.value,
            camera_id=clip.camera_blink_id,
            network_id=clip.network_blink_id,
        )

    async def archive_clip(
        self,
        clip: Clip,
        report: SyncReport,
        fetch_clip: Callable[[Path], Any] | None = None,
    ) -> bool:
        """Fetch, check, process and store one clip; record the outcome. Never raises for clip errors
        (auth errors and the breaker do propagate: they stop the run)."""
        assert clip.id is not None
        work = self.staging / str(clip.id)
        work.mkdir(parents=True, exist_ok=True)
        try:
            key = self.key_for(clip)
            async with self._transfers:
                if fetch_clip is not None:
                    media = await fetch_clip(work / "clip.mp4")
                else:
                    media = await download(
                        self.http,
                        self.api.url(clip.media_url or ""),
                        work / "clip.mp4",
                        kind="clip",
                        min_bytes=self.settings.sync.min_clip_bytes,
                    )
                thumb = await self._thumbnail(clip, work)
            self.reporter.bytes_fetched(media.size)
            self._mark(clip, ClipState.downloaded, size=media.size, sha256=media.sha256)
            files = [StagedFile(ObjectKind.clip, media.path, key, media.size, media.sha256)]
            if thumb is not None:
                files.append(
                    StagedFile(
                        ObjectKind.thumbnail, thumb.path, sibling(key, ".jpg"), thumb.size, thumb.sha256
                    )
                )
            files = await self._process(clip, work, key, files, has_thumbnail=thumb is not None)
            if self.settings.sync.sidecar:
                files.append(await asyncio.to_thread(self._sidecar, clip, work, key, files))
            metadata = {
                "clip-id": clip.identity,
                "camera": clip.camera_name or "",
                "recorded-at": clip.created_at.astimezone(UTC).isoformat(),
            }
            updates = {"last_error": None, **self.row_updates.pop(clip.identity, {})}

            def finish(s: Session) -> None:
                row = s.get(Clip, clip.id)
                if row is not None:
                    for k, v in {**updates, "state": ClipState.stored, "stored_at": utcnow()}.items():
                        setattr(row, k, v)
                        setattr(clip, k, v)
                    s.add(row)

            await store_all(self.engine, clip.id, files, self.destinations, metadata, finish)
        except (AuthError, ConfigError):
            self._fail(clip, "interrupted: authentication failed")
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a clip's failure is recorded and retried next run
            message = _one_line(exc)
            if isinstance(exc, NotFoundUpstream) and clip.source == ClipSource.cloud:
                message = f"{message}; will retry"
            self._fail(clip, message)
            report.failed += 1
            report.clip_errors.append(f"{clip.identity}: {message}")
            self.reporter.clip_done(clip, False, message)
            return False
        finally:
            await asyncio.to_thread(shutil.rmtree, work, True)
        report.stored += 1
        report.bytes += sum(f.size for f in files)
        self.reporter.clip_done(clip, True)
        return True

    async def _thumbnail(self, clip: Clip, work: Path) -> Fetched | None:
        if not self.settings.sync.thumbnails or not clip.thumbnail_url:
            return None
        if self.settings.processing.thumbnail == "generated":
            return None
        url = self.api.url(clip.thumbnail_url)
        try:
            return await download(self.http, url, work / "thumb.jpg", kind="thumbnail", min_bytes=64)
        except NotFoundUpstream:
            if url.endswith(".jpg"):
                raise
            # recorded thumbnail paths have no extension; some servers want ".jpg" appended
            return await download(self.http, url + ".jpg", work / "thumb.jpg", kind="thumbnail", min_bytes=64)

    async def _process(
        self, clip: Clip, work: Path, key: str, files: list[StagedFile], has_thumbnail: bool
    ) -> list[StagedFile]:
        if self.processor is None:
            return files
        from archiver.pipeline.process import run_processor

        return await run_processor(self, clip, work, key, files, has_thumbnail)

    def _sidecar(self, clip: Clip, work: Path, key: str, files: list[StagedFile]) -> StagedFile:
        local = local_time(clip.created_at, clip.time_zone)
        doc = {
            "id": clip.blink_id,
            "identity": clip.identity,
            "source": clip.source.value,
            "account": self.account_settings.name,
            "network": {"id": clip.network_blink_id, "name": clip.network_name},
            "camera": {"id": clip.camera_blink_id, "name": clip.camera_name},
            "sync_module_id": clip.sync_module_blink_id,
            "created_at_utc": clip.created_at.astimezone(UTC).isoformat(),
            "created_at_local": local.isoformat(),
            "time_zone": clip.time_zone,
            "duration_s": clip.duration,
            "width": clip.width,
            "height": clip.height,
            "codec": clip.codec,
            "manifest_size": clip.size_hint,
            "files": {f.kind.value: {"key": f.key, "size": f.size, "sha256": f.sha256} for f in files},
        }
        path = work / "sidecar.json"
        data = json.dumps(doc, indent=2, sort_keys=True).encode()
        path.write_bytes(data)
        fsync_file(path)
        return StagedFile(
            ObjectKind.sidecar, path, sibling(key, ".json"), len(data), hashlib.sha256(data).hexdigest()
        )

    # -- state -------------------------------------------------------------------------------------
    def _mark(self, clip: Clip, state: ClipState, **fields: Any) -> None:
        with session_scope(self.engine) as s:
            row = s.get(Clip, clip.id)
            if row is None:
                return
            row.state = state
            for k, v in fields.items():
                setattr(row, k, v)
                setattr(clip, k, v)
            clip.state = state
            s.add(row)

    def _fail(self, clip: Clip, message: str) -> None:
        with session_scope(self.engine) as s:
            row = s.get(Clip, clip.id)
            if row is None:
                return
            row.state = ClipState.failed
            row.attempts += 1
            row.last_error = message
            s.add(row)

    def _clean_staging(self) -> None:
        """Leftovers of a killed run are never trusted: they are refetched."""
        shutil.rmtree(self.staging, ignore_errors=True)
