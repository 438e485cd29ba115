"""One sync of one account: every source discovers clips into one queue; each clip then goes the same way
(filters → duplicate rule → fetch → process → sidecar → store), whatever its source.

The database is the queue: a source records a clip row the moment it lists it; a clip becomes ``stored``
only once every destination durably holds all its files. Clips of one lane (a Sync Module) are fetched one
at a time, in order; the others with bounded concurrency. A source that fails is reported; the run goes on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from archiver.blink.api import BlinkAPI
from archiver.blink.ratelimit import LearnedRate, TransferGate
from archiver.config import AccountSettings, Settings, parse_duration
from archiver.db import repo
from archiver.db.models import Clip, ClipState, ObjectKind
from archiver.destinations.base import Destination
from archiver.errors import ArchiverError, AuthError, ConfigError
from archiver.media.processor import MediaProcessor
from archiver.media.steps import Step
from archiver.pipeline import dedup
from archiver.pipeline.fetch import NotFoundUpstream, partial_ready
from archiver.pipeline.naming import clip_key, sibling, validate_template
from archiver.pipeline.process import process_clip
from archiver.pipeline.report import Reporter, SyncReport
from archiver.pipeline.select import Selection
from archiver.pipeline.sidecar import write_sidecar
from archiver.pipeline.store import StagedFile, store_all
from archiver.pipeline.task import ClipTask, MediaFacts
from archiver.sources.base import Source, SourceUnavailable
from archiver.util import as_utc, one_line

log = logging.getLogger("archiver.sync")

Item = tuple[Source, Clip]


@dataclass(frozen=True)
class JobRepo:
    """The database as one account's sync job sees it (every read and write the job itself makes)."""

    engine: Engine
    account_id: int

    def sources_with_clips(self) -> list[str]:
        return repo.sources_with_clips(self.engine, self.account_id)

    def settle(self, clip: Clip, order: Sequence[str]) -> dedup.Verdict:
        return dedup.settle(self.engine, clip, order)

    def store(
        self,
        clip_id: int,
        files: Sequence[StagedFile],
        destinations: Sequence[Destination],
        metadata: Mapping[str, str],
        finish: Callable[[Session], None],
        *,
        fresh: bool,
    ) -> None:
        store_all(self.engine, clip_id, files, destinations, metadata, finish, fresh=fresh)

    def record_failure(
        self, clip_id: int, message: str, backoff: tuple[timedelta, timedelta] | None = None
    ) -> None:
        repo.record_failure(self.engine, clip_id, message, backoff)

    def save_learned_rate(self, learned: LearnedRate | None) -> None:
        repo.save_learned_rate(self.engine, self.account_id, learned)


class SyncJob:
    """One sync of one account from its parts (see ``runner.build_job``); ``run()`` performs it. The
    constructor does no I/O: the parts were built (and the account row read) by the factory."""

    def __init__(
        self,
        api: BlinkAPI,
        sources: Sequence[Source],
        destinations: Sequence[Destination],
        repo: JobRepo,
        steps: Sequence[Step] = (),
        reporter: Reporter | None = None,
        *,
        settings: Settings,
        account: AccountSettings,
        order: Sequence[str] | None = None,
        retry_failed: bool = False,
        processor: MediaProcessor | None = None,
    ) -> None:
        validate_template(settings.sync.filename_template)
        self.api = api
        self.http = api.http
        self.sources = list(sources)
        self.destinations = list(destinations)
        self.repo = repo
        self.account_id = repo.account_id
        self.steps = list(steps)
        self.reporter = reporter or Reporter()
        self.settings = settings
        self.account_settings = account
        self.processor = processor  # the steps' pool (closed with the job)
        # a source listed earlier wins a duplicate (the registry's order, disabled sources included)
        self.order = list(order) if order is not None else [s.name for s in self.sources]
        # failed clips wait (sync.retry_backoff…retry_backoff_max) unless a person asked to retry them now
        self.retry_failed = retry_failed
        self.backoff = (
            parse_duration(settings.sync.retry_backoff),
            parse_duration(settings.sync.retry_backoff_max),
        )
        self._backing_off: list[datetime] = []  # next try times of the failed clips this run left alone
        self.staging = settings.staging_dir / f"account-{self.account_id}"
        self.selection = Selection.of(account)
        # The transfer slots: a source holds one while a clip's bytes move (and while a Sync Module
        # uploads); probing, hashing and storing happen after it is released, so the network stays busy.
        # Their number follows the link, from sync.concurrency up to sync.max_concurrency.
        sync = settings.sync
        self._transfers = TransferGate(sync.concurrency, max(sync.concurrency, sync.max_concurrency))
        self._seen_sources: set[str] = set()  # sources with clips of this account (the duplicate rule)
        # staging folders emptied after their clip, for the next one: creating and removing a folder
        # per clip costs more than its files (a directory inode is allocated and freed each time)
        self._spare_dirs: list[Path] = []
        self._made_dirs = 0
        self.completed = False  # the last run() got through every source before its deadline

    @property
    def needs_blink(self) -> bool:
        """Whether a source of this job talks to Blink (then the run starts with a signed-in session)."""
        return any(s.needs_blink for s in self.sources)

    async def aclose(self) -> None:
        self.reporter.close()
        await self.http.aclose()
        if self.processor is not None:
            self.processor.close()

    @asynccontextmanager
    async def transfer(self) -> AsyncIterator[None]:
        async with self._transfers.slot():
            yield

    # -- the run -----------------------------------------------------------------------------------
    async def run(self) -> SyncReport:
        """List and fetch at the same time: clips of the first page are downloading while later pages
        are still being listed. Clips left pending by earlier runs are fetched too."""
        started = time.monotonic()
        report = SyncReport(account=self.account_settings.name)
        self._clean_staging()
        deadline = parse_duration(self.settings.limits.sync_deadline).total_seconds()
        self.completed = False
        try:
            try:
                async with asyncio.timeout(deadline):
                    if self.needs_blink:  # a source of files alone needs no Blink login
                        await self.api.auth.ensure()
                    await self._discover_and_fetch(report)
            except TimeoutError:
                limit = self.settings.limits.sync_deadline
                report.errors.append(
                    f"sync stopped at its deadline (limits.sync_deadline = {limit}); "
                    "the clips left are fetched by the next run"
                )
            except httpx.HTTPError as exc:
                report.errors.append(f"cannot reach Blink: {one_line(exc)} ({type(exc).__name__})")
            else:
                self.completed = True
        finally:
            for source in self.sources:
                part = source.report()
                report.sources[source.name] = part
                report.listed += part.listed
                report.new += part.new
                report.pages += part.pages
                report.errors.extend(part.errors)
                report.notes.extend(part.notes)
            self._remember_rate()
            gate, limiter = self._transfers, self.http.limiter
            log.debug(
                "transfers: peak %d of at most %d; request pace %.2f/s (ceiling %s, %d drops)",
                gate.peak,
                gate.maximum,
                limiter.rate,
                f"{limiter.ceiling:.2f}/s" if limiter.ceiling else "none",
                limiter.drops,
            )
            report.requests = self.http.stats.requests
            report.throttled = self.http.stats.throttled
            report.duration_s = round(time.monotonic() - started, 3)
            spare, self._spare_dirs = self._spare_dirs, []
            for folder in spare:  # (empty already)
                shutil.rmtree(folder, ignore_errors=True)
        return report

    def _remember_rate(self) -> None:
        """Keep what this run learned about Blink's request limit for the next run (best effort)."""
        try:
            self.repo.save_learned_rate(self.http.limiter.learned())
        except SQLAlchemyError as exc:
            log.warning("could not keep the learned request rate: %s", one_line(exc))

    async def _discover_and_fetch(self, report: SyncReport) -> None:
        general: asyncio.Queue[Item | None] = asyncio.Queue()
        lanes: dict[Hashable, asyncio.Queue[Item | None]] = {}
        queued: set[int] = set()
        grace = timedelta(minutes=self.settings.sync.partial_grace_minutes)
        now = datetime.now(UTC)
        present = await asyncio.to_thread(self.repo.sources_with_clips)
        self._seen_sources = set(present)

        async def run_lane(lane: asyncio.Queue[Item | None]) -> None:
            """One clip at a time; once the lane's source is unavailable, the rest waits for the next run."""
            closed = False
            while (item := await lane.get()) is not None:
                source, clip = item
                if closed:
                    source.settled(clip, "deferred")
                    self.reporter.clip_skipped(clip, "its source is unavailable: fetched next run")
                    continue
                try:
                    await self._one(source, clip, report)
                except SourceUnavailable as exc:
                    closed = True
                    source.settled(clip, "deferred")
                    self.reporter.clip_skipped(clip, one_line(exc))

        def enqueue(source: Source, clips: Sequence[Clip]) -> None:
            fresh = 0
            if clips:
                self._seen_sources.add(source.name)
            for c in clips:
                if c.id is None or c.id in queued or c.deleted_upstream or not partial_ready(c, grace):
                    continue
                if c.state not in repo.PENDING_STATES:
                    continue
                if not self.retry_failed and repo.backing_off(c, now):
                    assert c.next_attempt_at is not None
                    self._backing_off.append(as_utc(c.next_attempt_at))
                    queued.add(c.id)  # counted once, even when listed again
                    continue
                if not self.selection.admits(c):
                    source.settled(c, "filtered")
                    continue
                queued.add(c.id)
                fresh += 1
                key = source.lane(c)
                if key is None:
                    general.put_nowait((source, c))
                    continue
                if key not in lanes:
                    lanes[key] = asyncio.Queue()
                    tg.create_task(run_lane(lanes[key]))
                lanes[key].put_nowait((source, c))
            if fresh:
                self.reporter.planned(len(queued))

        async def discover() -> None:
            try:
                for source in self.sources:
                    enqueue(source, await asyncio.to_thread(source.pending))
                for source in self.sources:  # in registry order: a later source sees the earlier rows
                    await self._guarded(source.discover(lambda clips, s=source: enqueue(s, clips)), report)
            finally:
                general.put_nowait(None)  # every queue is complete
                for lane in lanes.values():
                    lane.put_nowait(None)

        async def worker() -> None:
            while (item := await general.get()) is not None:
                try:
                    await self._one(*item, report)
                except SourceUnavailable as exc:
                    item[0].settled(item[1], "deferred")
                    self.reporter.clip_skipped(item[1], one_line(exc))
            general.put_nowait(None)  # let the next worker see the end too

        try:  # an auth failure (or the breaker) cancels the other transfers at once
            async with asyncio.TaskGroup() as tg:
                tg.create_task(discover())
                # workers bound the staged clips: every transfer slot busy, and as many being stored
                for _ in range(self._transfers.maximum + self.settings.sync.concurrency):
                    tg.create_task(worker())
        except* (AuthError, ConfigError) as group:
            raise group.exceptions[0] from None
        except* (ArchiverError, httpx.HTTPError, OSError) as group:  # one line, never "unexpected"
            report.errors.append(one_line(group.exceptions[0]))
        finally:
            if self._backing_off:
                report.notes.append(
                    f"{len(self._backing_off)} failed clip(s) back off (next try from "
                    f"{min(self._backing_off).isoformat(timespec='seconds')}); "
                    "`archiver sync --retry-failed` tries them now"
                )

    @staticmethod
    async def _guarded(step: Awaitable[None], report: SyncReport) -> None:
        """A source that fails (listing error, Sync Module offline) is reported; the run goes on."""
        try:
            await step
        except (AuthError, ConfigError):
            raise
        except ArchiverError as exc:
            report.errors.append(one_line(exc))
        except httpx.HTTPError as exc:  # retries exhausted on a connection error
            report.errors.append(f"cannot reach Blink: {one_line(exc)} ({type(exc).__name__})")

    async def _one(self, source: Source, clip: Clip, report: SyncReport) -> None:
        """The duplicate rule, then fetch → store. An account whose clips all come from one source pays
        nothing for the rule."""
        verdict = dedup.FETCH
        if clip.camera_blink_id is not None and len(self._seen_sources) > 1:
            verdict = await asyncio.to_thread(self.repo.settle, clip, self.order)
        if verdict.twin is not None and verdict.action != "fetch":
            twin = verdict.twin.identity
            if verdict.action == "duplicate":
                report.duplicates += 1
                source.settled(clip, "duplicate")
                reason = f"the same recording is stored as {twin}"
            else:
                source.settled(clip, "waiting")
                reason = f"the same recording is pending as {twin}, fetched from there first"
            self.reporter.clip_skipped(clip, reason)
            return
        await self.archive_clip(source, clip, report)

    # -- one clip ------------------------------------------------------------------------------------
    def key_for(self, clip: Clip) -> str:
        return clip_key(
            self.settings.sync.filename_template,
            network=clip.network_name,
            camera=clip.camera_name,
            clip_id=clip.blink_id,
            created_at=clip.created_at,
            time_zone=clip.time_zone,
            source=clip.source,
            camera_id=clip.camera_blink_id,
            network_id=clip.network_blink_id,
        )

    async def archive_clip(self, source: Source, clip: Clip, report: SyncReport) -> bool:
        """Fetch, check, process and store one clip; record the outcome. Never raises for clip errors
        (auth errors, the breaker and an unavailable source do propagate)."""
        assert clip.id is not None
        clip_id = clip.id
        work = self._workdir()
        cleaned = False  # the staging folder is emptied (by the worker-thread trip that stored the clip)
        try:
            task = ClipTask(clip, work, self.key_for(clip))
            fresh = clip.state == ClipState.discovered and clip.attempts == 0  # never tried before
            staged = await source.fetch(clip, work, self.transfer)
            media, thumb = staged.clip, staged.thumbnail
            if source.lane(clip) is None:  # lanes go one clip at a time by design: not the link's pace
                self._transfers.observe_last(media.size, self.http.limiter.bound)
            self.reporter.bytes_fetched(media.size)
            task.files.append(StagedFile(ObjectKind.clip, media.path, task.key, media.size, media.sha256))
            if thumb is not None:
                key = sibling(task.key, ".jpg")
                task.files.append(StagedFile(ObjectKind.thumbnail, thumb.path, key, thumb.size, thumb.sha256))
            task.has_thumbnail = thumb is not None
            task.thumbnail_error = staged.thumbnail_error
            task.warnings.extend(staged.notes)
            await process_clip(self.steps, task)
            metadata = {
                "clip-id": clip.identity,
                "camera": clip.camera_name or "",
                "recorded-at": clip.created_at.astimezone(UTC).isoformat(),
            }

            def finish(s: Session) -> None:
                f, note = task.facts or MediaFacts(), task.note
                repo.mark_stored(
                    s,
                    clip,
                    duration=f.duration,
                    width=f.width,
                    height=f.height,
                    codec=f.codec,
                    note=note,
                    size=media.size,
                    sha256=media.sha256,
                )

            def keep() -> None:
                """The blocking tail of a clip in one worker-thread trip: sidecar, store, staging gone."""
                nonlocal cleaned
                try:
                    if self.settings.sync.sidecar:
                        task.files.append(write_sidecar(task, self.account_settings.name))
                    dests = self.destinations
                    self.repo.store(clip_id, task.files, dests, metadata, finish, fresh=fresh)
                finally:
                    cleaned = _emptied(work)

            await asyncio.to_thread(keep)
        except SourceUnavailable:
            raise
        except (AuthError, ConfigError):
            await asyncio.to_thread(self.repo.record_failure, clip.id, "interrupted: authentication failed")
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a clip's failure is recorded and retried next run
            message = one_line(exc)
            if isinstance(exc, NotFoundUpstream):
                message = f"{message}; will retry"
            await asyncio.to_thread(self.repo.record_failure, clip.id, message, self.backoff)
            report.failed += 1
            report.clip_errors.append(f"{clip.identity}: {message}")
            source.settled(clip, "failed")
            self.reporter.clip_done(clip, False, message)
            return False
        finally:
            if not cleaned:
                cleaned = await asyncio.to_thread(_emptied, work)
            if cleaned:
                self._spare_dirs.append(work)
        report.stored += 1
        report.bytes += sum(f.size for f in task.files)
        source.settled(clip, "stored")
        self.reporter.clip_done(clip, True)
        return True

    def _workdir(self) -> Path:
        """An empty staging folder for one clip (one left by an earlier clip, or a new one)."""
        if self._spare_dirs:
            return self._spare_dirs.pop()
        self._made_dirs += 1
        work = self.staging / f"w{self._made_dirs}"
        work.mkdir(parents=True, exist_ok=True)
        return work

    def _clean_staging(self) -> None:
        """Leftovers of a killed run are never trusted: they are refetched."""
        shutil.rmtree(self.staging, ignore_errors=True)


def _emptied(folder: Path) -> bool:
    """Remove what a clip left in its staging folder; True when the folder is empty (reusable), else it is
    removed as a whole (best effort) and False."""
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
        return True
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
        return False
