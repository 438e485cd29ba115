"""Processing steps (gallery-dl's post-processors): what runs on a downloaded clip before it is stored.

A step has a ``name`` (its key in :data:`STEPS` and in ``[processing] steps``), declares the object kinds it
``produces`` and whether it is ``required`` (a failure fails the clip: the probe) or optional (a failure is a
warning and the clip is stored without its output), and has ``async run(task) -> list[DerivedFile]``. A
step reads the original (``task.clip``) and writes its outputs into ``task.workdir``; the pipeline hashes,
names (``<clip key stem><suffix>``) and stores them like every other file of the clip, under the step's
kind (a plain string: a new kind needs no migration).

``[processing] steps`` lists the steps in order (default: probe, thumbnail, transcode, preview). They run in
that order, except that adjacent optional steps run at the same time (they only read the original), each
as one job of the :class:`~archiver.media.processor.MediaProcessor`'s pool. Adding a step is one class and
one line in :data:`STEPS` (its factory gets the processor: settings, pool and ffmpeg; None = disabled).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from pydantic import BaseModel

from archiver.errors import ConfigError, MediaError
from archiver.media.probe import MediaInfo, probe
from archiver.media.thumbnail import make_preview, make_thumbnail
from archiver.media.transcode import get_profile, transcode
from archiver.util import sha256_file

if TYPE_CHECKING:
    from archiver.media.processor import MediaProcessor

log = logging.getLogger("archiver.media")


class DerivedFile(BaseModel):
    kind: str  # the stored object's kind: "thumbnail", "transcode", "preview", or a step's own
    path: Path
    suffix: str  # what replaces ".mp4" in the stored name: ".jpg", ".h265.mp4", ".webp"
    replaces_original: bool = False  # a transcode with keep_original off: the original is not stored
    sha256: str | None = None  # when the step hashed it already (in its own worker-thread trip)


@dataclass
class StepTask:
    """One clip on its way through the steps: what a step reads, and what the steps found so far."""

    clip: Path  # the original, as downloaded (never modified)
    workdir: Path  # where steps write their outputs (created by the step that writes first)
    has_blink_thumbnail: bool = False
    subject: Any = None  # the pipeline's clip row (camera, time...) for steps that need it
    info: MediaInfo | None = None  # the probe's facts, once it ran
    warnings: list[str] = field(default_factory=list)  # worth keeping on the row; never a failure

    @property
    def stem(self) -> str:
        name = self.clip.name
        return name[: -len(".mp4")] if name.lower().endswith(".mp4") else self.clip.stem

    @property
    def duration(self) -> float | None:
        return self.info.duration if self.info else None

    def out(self, suffix: str) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self.workdir / f"{self.stem}{suffix}"


class Step(Protocol):
    name: ClassVar[str]
    produces: ClassVar[tuple[str, ...]]  # the object kinds its outputs are stored as
    required: ClassVar[bool]  # a failure fails the clip (else: a warning, the clip is stored anyway)

    async def run(self, task: StepTask) -> list[DerivedFile]: ...


StepFactory = Callable[["MediaProcessor"], "Step | None"]  # None: disabled by the settings


class MediaStep:
    """A step run with the media processor (its settings, pool and ffmpeg)."""

    def __init__(self, media: MediaProcessor) -> None:
        self.media = media


class ProbeStep(MediaStep):
    """The original's facts (duration, size, codec); a clip that does not probe is failed and retried."""

    name: ClassVar[str] = "probe"
    produces: ClassVar[tuple[str, ...]] = ()
    required: ClassVar[bool] = True

    @classmethod
    def build(cls, media: MediaProcessor) -> ProbeStep | None:
        return cls(media) if media.settings.probe else None

    async def run(self, task: StepTask) -> list[DerivedFile]:
        m = self.media
        exe = m.in_process_or_ffmpeg()
        task.info = await m.job(probe, task.clip, exe, m.ffprobe if exe else None, m.settings.timeout_s)
        return []


class ThumbnailStep(MediaStep):
    """A still from the clip, when ``processing.thumbnail`` asks for one or the source brought none."""

    name: ClassVar[str] = "thumbnail"
    produces: ClassVar[tuple[str, ...]] = ("thumbnail", "generated_thumbnail")
    required: ClassVar[bool] = False

    @classmethod
    def build(cls, media: MediaProcessor) -> ThumbnailStep:
        return cls(media)

    async def run(self, task: StepTask) -> list[DerivedFile]:
        m = self.media
        if m.settings.thumbnail not in ("generated", "both") and task.has_blink_thumbnail:
            return []
        exe = m.in_process_or_ffmpeg()
        out, timeout, duration = task.out(".jpg"), m.settings.timeout_s, task.duration

        def thumbnail() -> tuple[Path, str]:
            """Made and hashed in one worker-thread trip (the pipeline would otherwise hash it in another)."""
            path = make_thumbnail(task.clip, out, exe, timeout=timeout, duration=duration)
            return path, sha256_file(path)

        path, digest = await m.job(thumbnail)
        return [DerivedFile(kind="thumbnail", path=path, suffix=".jpg", sha256=digest)]


class TranscodeStep(MediaStep):
    """Another encoding of the clip (``processing.transcode``); replaces the original unless keep_original."""

    name: ClassVar[str] = "transcode"
    produces: ClassVar[tuple[str, ...]] = ("transcode",)
    required: ClassVar[bool] = False

    @classmethod
    def build(cls, media: MediaProcessor) -> TranscodeStep | None:
        return cls(media) if media.settings.transcode != "off" else None

    async def run(self, task: StepTask) -> list[DerivedFile]:
        m, s = self.media, self.media.settings
        prof = get_profile(s.transcode)
        res = await m.job(
            transcode,
            task.clip,
            task.out(prof.suffix),
            prof,
            s.crf,
            s.preset,
            m.ffmpeg,
            s.timeout_s,
            m.ffprobe,
        )
        return [
            DerivedFile(
                kind="transcode", path=res.path, suffix=prof.suffix, replaces_original=not s.keep_original
            )
        ]


class PreviewStep(MediaStep):
    """An animated preview (``processing.preview``: webp, or gif where ffmpeg has no webp encoder)."""

    name: ClassVar[str] = "preview"
    produces: ClassVar[tuple[str, ...]] = ("preview",)
    required: ClassVar[bool] = False

    @classmethod
    def build(cls, media: MediaProcessor) -> PreviewStep | None:
        return cls(media) if media.settings.preview != "off" else None

    async def run(self, task: StepTask) -> list[DerivedFile]:
        m = self.media
        kind = "gif" if m.settings.preview == "gif" else "webp"
        res = await m.job(
            make_preview,
            task.clip,
            task.out(f".{kind}"),
            m.ffmpeg,
            kind=kind,
            timeout=m.settings.timeout_s,
            duration=task.duration,
        )
        if res.note:
            task.warnings.append(f"preview: {res.note}")
        return [DerivedFile(kind="preview", path=res.path, suffix=res.path.suffix)]


STEPS: dict[str, StepFactory] = {
    ProbeStep.name: ProbeStep.build,
    ThumbnailStep.name: ThumbnailStep.build,
    TranscodeStep.name: TranscodeStep.build,
    PreviewStep.name: PreviewStep.build,
}
DEFAULT_STEPS = ("probe", "thumbnail", "transcode", "preview")


def build_steps(names: Sequence[str], media: MediaProcessor) -> list[Step]:
    """The configured steps, in order (each enabled one once); an unknown name is a ConfigError."""
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        raise ConfigError(f"processing.steps: unknown step {unknown[0]!r} (known: {', '.join(STEPS)})")
    return [step for name in dict.fromkeys(names) if (step := STEPS[name](media)) is not None]


async def run_steps(steps: Sequence[Step], task: StepTask) -> list[DerivedFile]:
    """Run the steps in order (adjacent optional ones at the same time); their outputs in step order.
    A required step's failure propagates; an optional step's becomes a warning."""
    derived: list[DerivedFile] = []
    i = 0
    while i < len(steps):
        if steps[i].required:
            derived += await steps[i].run(task)
            i += 1
            continue
        batch = []
        while i < len(steps) and not steps[i].required:
            batch.append(steps[i])
            i += 1
        async with asyncio.TaskGroup() as tg:
            jobs = [(s.name, tg.create_task(_guard(s.run(task)))) for s in batch]
        for name, job in jobs:
            outcome = job.result()
            if isinstance(outcome, Exception):
                text = str(outcome)
                msg = text if text.startswith(name) else f"{name} failed: {text}"
                log.warning("%s: %s", task.clip.name, msg)
                task.warnings.append(msg)
            else:
                derived += outcome
    return derived


async def _guard(coro: Coroutine[Any, Any, list[DerivedFile]]) -> list[DerivedFile] | Exception:
    """An optional step's failure as a value (it becomes a warning, never fails the clip)."""
    try:
        return await coro
    except (MediaError, OSError) as exc:
        return exc
