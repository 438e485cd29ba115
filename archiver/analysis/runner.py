"""Running the detectors on stored clips: one clip (:func:`analyze_clip`), the clips still to do
(:func:`pending_clips`, for ``archiver analyze`` and the catch-up), and the bounded worker that analyses
clips as a sync stores them (:class:`AnalysisWorker`, :func:`with_analysis`).

Off the download path: a stored clip is handed to the worker (a bounded queue; when it is full the clip
waits for the next catch-up), the detectors run in worker threads, and nothing here can fail or delay a
clip's archiving. A failed analysis is recorded with its reason and tried again after
``analysis.retry_after`` (doubling), up to ``analysis.max_attempts`` times (``archiver analyze`` retries
the rest). Clips are read through the Destination interface: a local path when a destination has one
(``location``), else a copy (``read_to``) in the staging folder.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlmodel import select

from archiver.analysis import Detection, Detector, Tag, build_detectors
from archiver.analysis.sidecar import rewrite_sidecar
from archiver.analysis.store import preview, record_failure, record_success, versions
from archiver.config import Settings, parse_duration
from archiver.db.engine import session_scope
from archiver.db.models import Clip, ClipAnalysis, ClipState, ObjectKind, StoredObject
from archiver.destinations.base import Destination, DestinationError
from archiver.errors import ArchiverError
from archiver.pipeline.report import ForwardingReporter, Reporter
from archiver.util import one_line

log = logging.getLogger("archiver.analysis")

SOURCE_KINDS = (ObjectKind.clip.value, ObjectKind.transcode.value)  # the original first


class Analysed(BaseModel):
    """What one clip's analysis gave (the hook for MQTT clip events: ``AnalysisWorker.listeners``)."""

    clip_id: int
    ok: bool
    activity: float | None = None
    tags: list[Tag] = Field(default_factory=list)
    error: str | None = None


DRAIN_WORKERS = 4  # consumers once the sync is over (one per core, at most this many)
CATCH_UP = timedelta(days=2)  # how far back a sync's analysis pass looks for clips left unanalysed


def needs(row: ClipAnalysis | None, detectors: Sequence[Detector]) -> bool:
    """A clip needs analysing when one of ``detectors`` has no result of its current version."""
    done = versions(row)
    return any(done.get(d.name) != d.version for d in detectors)


def pending_clips(
    engine: Engine,
    detectors: Sequence[Detector],
    *,
    max_attempts: int,
    since: datetime | None = None,
    stored_since: datetime | None = None,
    cameras: Sequence[str] = (),
    retry_failed: bool = False,
    now: datetime | None = None,
    limit: int | None = None,
) -> list[int]:
    """Stored clips (oldest first) that need one of ``detectors``; failed ones only once their back-off
    is over and while they have attempts left (``retry_failed``: all of them, now)."""
    now = now or datetime.now(UTC)
    wanted = {c.strip().lower() for c in cameras if c.strip()}
    out: list[int] = []
    with session_scope(engine) as s:
        q = (
            select(Clip.id, Clip.camera_name, Clip.camera_blink_id, ClipAnalysis)
            .outerjoin(ClipAnalysis, ClipAnalysis.clip_id == Clip.id)  # type: ignore[arg-type]
            .where(Clip.state == ClipState.stored)
            .order_by(Clip.created_at, Clip.id)  # type: ignore[arg-type]
        )
        if since is not None:
            q = q.where(Clip.created_at >= since)
        if stored_since is not None:
            q = q.where(Clip.stored_at >= stored_since)  # type: ignore[operator]
        for clip_id, name, cam_id, row in s.exec(q):
            if wanted and (name or "").lower() not in wanted and str(cam_id) not in wanted:
                continue
            if not needs(row, detectors):
                continue
            if row is not None and row.error and not retry_failed:
                if row.attempts >= max_attempts:
                    continue
                due = row.next_attempt_at
                if due is not None and (due if due.tzinfo else due.replace(tzinfo=UTC)) > now:
                    continue
            out.append(int(clip_id))
            if limit is not None and len(out) >= limit:
                break
    return out


def _local_copy(
    destinations: Sequence[Destination], objects: Sequence[StoredObject], workdir: Path
) -> tuple[Path, bool]:
    """The clip as a local file: ``(path, is_a_copy)``. A destination's own local path when it has one,
    else a copy read through the interface."""
    by_name = {d.name: d for d in destinations}
    ranked = sorted(
        (o for o in objects if o.kind in SOURCE_KINDS and o.destination in by_name),
        key=lambda o: SOURCE_KINDS.index(o.kind),
    )
    if not ranked:
        raise ArchiverError("no destination holds the clip's video")
    for o in ranked:
        loc = by_name[o.destination].location(o.key)
        if loc and loc.startswith("/") and Path(loc).is_file():
            return Path(loc), False
    problems: list[str] = []
    for o in ranked:
        tmp = workdir / f"clip-{o.clip_id}.mp4"
        try:
            by_name[o.destination].read_to(o.key, tmp)
            return tmp, True
        except (DestinationError, OSError) as exc:
            tmp.unlink(missing_ok=True)
            problems.append(f"{o.destination}: {one_line(exc)}")
    raise ArchiverError(f"the clip could not be read ({'; '.join(problems)[:300]})")


def analyze_clip(
    settings: Settings,
    engine: Engine,
    destinations: Sequence[Destination],
    detectors: Sequence[Detector],
    clip_id: int,
) -> Analysed:
    """Run ``detectors`` on one stored clip, record the results (database, then the sidecar); a failure
    is recorded and returned, never raised (blocking: call it in a worker thread)."""
    staging = settings.staging_dir
    staging.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="analysis-", dir=staging))
    try:
        with session_scope(engine) as s:
            objects = list(s.exec(select(StoredObject).where(StoredObject.clip_id == clip_id)))
            for o in objects:
                s.expunge(o)
        path, _ = _local_copy(destinations, objects, workdir)
        results: dict[str, tuple[str, Detection]] = {}
        for d in detectors:
            results[d.name] = (d.version, d.analyze(path))
        # The archive first, then its index: the sidecar with the results is put in every destination,
        # then the results and the sidecar's new size and sha256 are recorded in one transaction. A kill
        # in between leaves the clip unanalysed in the database, so the next run analyses it again and
        # puts the same key (which also replaces a half-written temporary file).
        now = datetime.now(UTC)
        with session_scope(engine) as s:
            doc = preview(s, clip_id, results, now)  # the sidecar's "analysis" as it will be recorded
            clip = s.get(Clip, clip_id)  # pruned meanwhile: never put a sidecar back for a clip gone
            current = list(s.exec(select(StoredObject).where(StoredObject.clip_id == clip_id)))
            for o in current:
                s.expunge(o)
        rewritten = []
        if settings.sync.sidecar and clip is not None and clip.state == ClipState.stored:
            rewritten = rewrite_sidecar(destinations, current, doc, workdir)
        with session_scope(engine) as s:
            record_success(s, clip_id, results, now)
            for o, size, digest in rewritten:
                row = s.get(StoredObject, o.id)
                if row is not None:
                    row.size, row.sha256 = size, digest
                    s.add(row)
        tags = [Tag.model_validate(t) for t in doc.get("tags", [])]  # type: ignore[union-attr]
        activity = doc.get("activity")
        return Analysed(
            clip_id=clip_id, ok=True, activity=activity if isinstance(activity, float) else None, tags=tags
        )
    except (ArchiverError, DestinationError, OSError, ValueError, RuntimeError) as exc:
        message = one_line(exc)
        log.warning("analysis of clip id=%s failed (tried again later): %s", clip_id, message)
        retry = parse_duration(settings.analysis.retry_after)
        with session_scope(engine) as s:
            record_failure(s, clip_id, message, retry)
        return Analysed(clip_id=clip_id, ok=False, error=message)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class AnalysisWorker:
    """A bounded queue of stored clips and ``analysis.workers`` consumers running the detectors in
    threads. ``submit`` never blocks and never fails: a full queue leaves the clip to the next catch-up."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        destinations: Sequence[Destination] | None = None,
        detectors: Sequence[Detector] | None = None,
    ) -> None:
        from archiver.destinations import build_destinations

        self.settings, self.engine = settings, engine
        self.destinations = list(destinations) if destinations is not None else build_destinations(settings)
        self.detectors = list(detectors) if detectors is not None else build_detectors(settings.analysis)
        self.queue: asyncio.Queue[int] = asyncio.Queue(maxsize=settings.analysis.queue)
        self.listeners: list[Callable[[Analysed], None]] = []  # e.g. the MQTT clip event (AnalysisReporter)
        self.done: list[Analysed] = []
        self._queued: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [asyncio.create_task(self._consume()) for _ in range(self.settings.analysis.workers)]

    def submit(self, clip_id: int) -> bool:
        """Queue a stored clip (from the event loop or any thread)."""
        loop = self._loop
        if loop is None:
            return False
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            return self._put(clip_id)
        loop.call_soon_threadsafe(self._put, clip_id)
        return True

    def _put(self, clip_id: int) -> bool:
        if clip_id in self._queued:
            return True
        try:
            self.queue.put_nowait(clip_id)
        except asyncio.QueueFull:
            log.info("analysis queue full: clip id=%s waits for the next catch-up", clip_id)
            return False
        self._queued.add(clip_id)
        return True

    def catch_up(self) -> int:
        """Queue clips stored in the last :data:`CATCH_UP` that still need the detectors (the queue was
        full, or a failure is now due). Older clips are ``archiver analyze``'s: an upgrade or a new
        detector never makes every sync analyse (and every no-op sync read) the whole archive."""
        room = self.queue.maxsize - self.queue.qsize()
        ids = pending_clips(
            self.engine,
            self.detectors,
            max_attempts=self.settings.analysis.max_attempts,
            stored_since=datetime.now(UTC) - CATCH_UP,
            limit=room,
        )
        return sum(1 for i in ids if self._put(i))

    async def _consume(self) -> None:
        while True:
            clip_id = await self.queue.get()
            try:
                outcome = await asyncio.to_thread(
                    analyze_clip, self.settings, self.engine, self.destinations, self.detectors, clip_id
                )
                self.done.append(outcome)
                for listener in self.listeners:
                    try:
                        listener(outcome)
                    except Exception:  # a listener's trouble never stops the analysis
                        log.exception("analysis listener failed")
            except Exception:  # a bug: keep analysing the others
                log.exception("analysis of clip id=%s crashed", clip_id)
            finally:
                self._queued.discard(clip_id)
                self.queue.task_done()

    async def finish(self, wait: bool = True) -> None:
        """Wait until every queued clip is analysed (``wait``), then stop the consumers.

        The sync is over by then, so nothing else wants the CPU: the queue drains with a consumer per
        core (at most :data:`DRAIN_WORKERS`), not the ``analysis.workers`` that ran beside the sync, and
        a one-shot run ends sooner after a backlog."""
        try:
            if wait:
                drain = max(self.settings.analysis.workers, min(DRAIN_WORKERS, os.cpu_count() or 1))
                extra = min(drain - len(self._tasks), self.queue.qsize())
                self._tasks += [asyncio.create_task(self._consume()) for _ in range(max(0, extra))]
                await self.queue.join()
        finally:
            for t in self._tasks:
                t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []


class AnalysisReporter(ForwardingReporter):
    """Forwards a sync's progress to ``inner`` and hands each stored clip to the analysis worker."""

    def __init__(self, inner: Reporter, worker: AnalysisWorker) -> None:
        super().__init__(inner)
        self.worker = worker
        inner.analysis_started()  # e.g. the MQTT clip event waits (bounded) for the clip's results
        worker.listeners.append(lambda outcome: inner.clip_analysed(outcome.clip_id))

    def clip_done(self, clip: Clip, ok: bool, message: str = "") -> None:
        super().clip_done(clip, ok, message)
        if ok and clip.id is not None:
            self.worker.submit(clip.id)


ReporterFactory = Callable[[str], Reporter]


async def with_analysis(
    settings: Settings,
    engine: Engine,
    run: Callable[[ReporterFactory | None], Awaitable[Any]],
    inner: ReporterFactory | None = None,
) -> Any:
    """Run a sync (``run(reporter_factory)``) with the analysis worker beside it: clips are analysed as
    they are stored, then clips left from earlier runs (catch-up); returns once the analysis drained, with
    the sync's result (so Home Assistant's states, published after this, count the grown sidecars).
    Analysis off, or its detectors unavailable (logged): just the sync."""
    if not settings.analysis.enabled or not settings.analysis.detectors:
        return await run(inner)
    try:
        worker = AnalysisWorker(settings, engine)
    except ArchiverError as exc:  # a missing extra or model: archiving goes on, the log says why
        log.error("analysis is off for this run: %s", one_line(exc))
        return await run(inner)
    worker.start()

    def factory(account: str) -> Reporter:
        return AnalysisReporter(inner(account) if inner else Reporter(), worker)

    try:
        result = await run(factory)
        await asyncio.to_thread(worker.catch_up)
    except BaseException:
        await worker.finish(wait=False)
        raise
    await worker.finish()
    return result


async def sync_and_prune_analysed(
    settings: Settings, engine: Engine, *, reporter_factory: ReporterFactory | None = None, **kwargs: Any
) -> list[Any]:
    """``archiver sync``'s ``sync_and_prune`` with the analysis beside it (see :func:`with_analysis`)."""
    from archiver.pipeline.runner import sync_and_prune

    reports: list[Any] = await with_analysis(
        settings,
        engine,
        lambda factory: sync_and_prune(settings, engine, reporter_factory=factory, **kwargs),
        reporter_factory,
    )
    return reports
