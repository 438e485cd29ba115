"""The media step of the sync pipeline (between download and store).

``MediaProcessor.process`` validates a downloaded clip (probe) and derives the files the settings ask
for: a generated thumbnail, a transcode, an animated preview. Every ffmpeg job runs in a worker thread
of this processor's own thread pool under a semaphore of ``workers`` slots shared by all clips, with
``settings.timeout_s`` per job. A dedicated pool (rather than ``asyncio.to_thread``'s default executor)
keeps long ffmpeg jobs from starving the pipeline's other blocking calls, and the default executor's
size (min(32, cpus + 4)) from silently capping ``workers``. If the awaiting task is cancelled, the
job's ffmpeg is killed.

Failure policy: a probe failure of the original raises :class:`~archiver.errors.MediaError` (the
pipeline marks the clip failed and retries next run); a failed/timed-out thumbnail, transcode or preview
only adds a warning: the original is kept and stored regardless.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field

from archiver.config import ProcessingSettings
from archiver.errors import MediaError
from archiver.media import ffmpeg as ff
from archiver.media.probe import MediaInfo, in_process_available, probe
from archiver.media.thumbnail import make_preview, make_thumbnail
from archiver.media.transcode import get_profile, transcode

log = logging.getLogger(__name__)

T = TypeVar("T")


class DerivedFile(BaseModel):
    kind: Literal["thumbnail", "transcode", "preview"]
    path: Path
    suffix: str  # what replaces ".mp4" in the stored name: ".jpg", ".h265.mp4", ".webp"


class ProcessResult(BaseModel):
    info: MediaInfo | None = None  # of the original; None when settings.probe is off
    derived: list[DerivedFile] = Field(default_factory=list)
    keep_original: bool = True
    warnings: list[str] = Field(default_factory=list)


class MediaProcessor:
    def __init__(self, settings: ProcessingSettings, workers: int | None = None) -> None:
        self.settings = settings
        self.workers = max(1, workers or settings.workers or os.cpu_count() or 1)
        self._ffmpeg: str | None = None
        self._ffprobe: str | None = None
        self._sems: dict[asyncio.AbstractEventLoop, asyncio.Semaphore] = {}
        self._executor: ThreadPoolExecutor | None = None

    def close(self) -> None:
        """Release the worker threads (idempotent; a later job starts a new pool)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def __enter__(self) -> MediaProcessor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------- setup

    @property
    def ffmpeg(self) -> str:
        if self._ffmpeg is None:
            self._ffmpeg = ff.find_ffmpeg(self.settings.ffmpeg)
            self._ffprobe = ff.find_ffprobe(self._ffmpeg)
        return self._ffmpeg

    def _in_process_or_ffmpeg(self) -> str | None:
        """None when probes and thumbnails run in this process (PyAV), else the ffmpeg to run."""
        return None if in_process_available() else self.ffmpeg

    @property
    def ffprobe(self) -> str | None:
        _ = self.ffmpeg
        return self._ffprobe

    def _sem(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._sems.get(loop)
        if sem is None:
            self._sems = {k: v for k, v in self._sems.items() if not k.is_closed()}
            sem = self._sems[loop] = asyncio.Semaphore(self.workers)
        return sem

    async def _job(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        """Run one blocking media job in a thread, inside the pool, killable by cancellation."""
        async with self._sem():
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="media")
            with ff.kill_scope() as scope:
                ctx = contextvars.copy_context()  # carries the kill scope into the worker thread
                call = functools.partial(ctx.run, fn, *args, **kwargs)
                try:
                    return await asyncio.get_running_loop().run_in_executor(self._executor, call)
                except asyncio.CancelledError:
                    scope.kill()
                    raise

    # ------------------------------------------------------------------------------------- the step

    async def process(self, clip: Path, workdir: Path, has_blink_thumbnail: bool) -> ProcessResult:
        s = self.settings
        clip = Path(clip)
        result = ProcessResult()
        timeout = s.timeout_s

        if s.probe:
            exe = self._in_process_or_ffmpeg()
            result.info = await self._job(probe, clip, exe, self.ffprobe if exe else None, timeout)

        want_thumb = s.thumbnail in ("generated", "both") or not has_blink_thumbnail
        want_transcode = s.transcode != "off"
        want_preview = s.preview != "off"
        if not (want_thumb or want_transcode or want_preview):
            return result

        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        stem = clip.name[: -len(".mp4")] if clip.name.lower().endswith(".mp4") else clip.stem
        duration = result.info.duration if result.info else None

        async def thumb() -> DerivedFile:
            exe = self._in_process_or_ffmpeg()
            path = await self._job(
                make_thumbnail, clip, workdir / f"{stem}.jpg", exe, timeout=timeout, duration=duration
            )
            return DerivedFile(kind="thumbnail", path=path, suffix=".jpg")

        async def trans() -> DerivedFile:
            prof = get_profile(s.transcode)
            res = await self._job(
                transcode,
                clip,
                workdir / f"{stem}{prof.suffix}",
                prof,
                s.crf,
                s.preset,
                self.ffmpeg,
                timeout,
                self.ffprobe,
            )
            return DerivedFile(kind="transcode", path=res.path, suffix=prof.suffix)

        async def preview() -> DerivedFile:
            kind = "gif" if s.preview == "gif" else "webp"
            res = await self._job(
                make_preview,
                clip,
                workdir / f"{stem}.{kind}",
                self.ffmpeg,
                kind=kind,
                timeout=timeout,
                duration=duration,
            )
            if res.note:
                result.warnings.append(f"preview: {res.note}")
            return DerivedFile(kind="preview", path=res.path, suffix=res.path.suffix)

        jobs: list[tuple[str, asyncio.Task[DerivedFile | Exception]]] = []
        async with asyncio.TaskGroup() as tg:
            if want_thumb:
                jobs.append(("thumbnail", tg.create_task(_guard(thumb()))))
            if want_transcode:
                jobs.append(("transcode", tg.create_task(_guard(trans()))))
            if want_preview:
                jobs.append(("preview", tg.create_task(_guard(preview()))))

        transcode_ok = False
        for what, task in jobs:
            outcome = task.result()
            if isinstance(outcome, DerivedFile):
                result.derived.append(outcome)
                transcode_ok = transcode_ok or what == "transcode"
            else:
                text = str(outcome)
                msg = text if text.startswith(what) else f"{what} failed: {text}"
                log.warning("%s: %s", clip.name, msg)
                result.warnings.append(msg)
        result.keep_original = s.keep_original or not transcode_ok
        return result


async def _guard(coro: Coroutine[Any, Any, DerivedFile]) -> DerivedFile | Exception:
    """Turn a derived-file job's failure into a value (it becomes a warning, never fails the clip)."""
    try:
        return await coro
    except (MediaError, OSError) as exc:
        return exc
