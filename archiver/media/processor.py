"""The media toolbox of the processing steps (:mod:`archiver.media.steps`).

``MediaProcessor`` holds what the steps share: the processing settings, ffmpeg (looked up when a step
first runs it) and a pool of ``workers`` threads. Every media job runs in a worker thread of this
processor's own thread pool under a semaphore of ``workers`` slots shared by all clips, with
``settings.timeout_s`` per job. A dedicated pool (rather than ``asyncio.to_thread``'s default executor)
keeps long ffmpeg jobs from starving the pipeline's other blocking calls, and the default executor's
size (min(32, cpus + 4)) from silently capping ``workers``. If the awaiting task is cancelled, the
job's ffmpeg is killed.

Failure policy (the steps'): a probe failure of the original raises :class:`~archiver.errors.MediaError`
(the pipeline marks the clip failed and retries next run); a failed/timed-out thumbnail, transcode or
preview only adds a warning: the original is kept and stored regardless.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, Field

from archiver.config import ProcessingSettings
from archiver.media import ffmpeg as ff
from archiver.media.probe import MediaInfo, in_process_available
from archiver.media.steps import DerivedFile, StepTask, build_steps, run_steps

log = logging.getLogger(__name__)

T = TypeVar("T")


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

    def in_process_or_ffmpeg(self) -> str | None:
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

    async def job(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
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

    # ------------------------------------------------------------------------------------- the steps

    async def process(self, clip: Path, workdir: Path, has_blink_thumbnail: bool) -> ProcessResult:
        """The configured steps (``settings.steps``) on one clip, outside a sync (bench, tests)."""
        task = StepTask(Path(clip), Path(workdir), has_blink_thumbnail)
        derived = await run_steps(build_steps(self.settings.steps, self), task)
        return ProcessResult(
            info=task.info,
            derived=derived,
            keep_original=not any(d.replaces_original for d in derived),
            warnings=task.warnings,
        )
