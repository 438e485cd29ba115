"""Process: the configured processing steps between fetch and store (:mod:`archiver.media.steps`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from archiver.db.models import ObjectKind
from archiver.media.steps import Step, StepTask, run_steps
from archiver.pipeline.naming import sibling
from archiver.pipeline.store import StagedFile
from archiver.pipeline.task import ClipTask, MediaFacts
from archiver.util import sha256_file

log = logging.getLogger("archiver.process")


async def process_clip(steps: Sequence[Step], task: ClipTask) -> None:
    """Run the steps on the original (a required step's failure fails the clip) and add their outputs to
    ``task.files``; never lose the original unless a step replaced it (a transcode, keep_original off)."""
    if not steps:
        return
    original = task.files[0]
    # the outputs go beside the original in the clip's staging folder ("clip.jpg", "clip.h265.mp4"...):
    # no folder of their own to create and remove for each clip
    work = StepTask(original.path, task.work, task.has_thumbnail, subject=task.clip)
    derived = await run_steps(steps, work)
    if work.info is not None:
        i = work.info
        task.facts = MediaFacts(duration=i.duration, width=i.width, height=i.height, codec=i.codec)
    replaced = any(d.replaces_original for d in derived)
    out = list(task.files[1:]) if replaced else list(task.files)
    for d in derived:
        kind, suffix = d.kind, d.suffix
        if kind == ObjectKind.thumbnail and task.has_thumbnail:  # Blink's own keeps the plain name
            kind, suffix = ObjectKind.generated_thumbnail, ".generated.jpg"
        digest = d.sha256 or await asyncio.to_thread(sha256_file, d.path)
        out.append(StagedFile(kind, d.path, sibling(task.key, suffix), d.path.stat().st_size, digest))
    task.files = out
    if work.warnings:
        note = "; ".join(work.warnings)[:500]
        log.warning("clip=%s processing: %s", task.clip.identity, note)
        task.warnings.append(note)
