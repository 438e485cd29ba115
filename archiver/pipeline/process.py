"""Process: the optional ffmpeg step between fetch and store (probe, thumbnails, transcode, preview)."""

from __future__ import annotations

import asyncio
import logging

from archiver.db.models import ObjectKind
from archiver.media.processor import MediaProcessor
from archiver.pipeline.naming import sibling
from archiver.pipeline.store import StagedFile
from archiver.pipeline.task import ClipTask, MediaFacts
from archiver.util import sha256_file

log = logging.getLogger("archiver.process")


async def process_clip(processor: MediaProcessor, task: ClipTask) -> None:
    """Probe the original (a failed probe fails the clip), add derived files to ``task.files``; never lose
    the original unless a transcode succeeded and ``keep_original`` is off."""
    original = task.files[0]
    result = await processor.process(original.path, task.work / "derived", task.has_thumbnail)
    if result.info is not None:
        i = result.info
        task.facts = MediaFacts(duration=i.duration, width=i.width, height=i.height, codec=i.codec)
    out = list(task.files) if result.keep_original else list(task.files[1:])
    for d in result.derived:
        if d.kind == "thumbnail":
            kind = ObjectKind.generated_thumbnail if task.has_thumbnail else ObjectKind.thumbnail
            suffix = ".generated.jpg" if task.has_thumbnail else ".jpg"
        else:
            kind, suffix = ObjectKind(d.kind), d.suffix
        digest = await asyncio.to_thread(sha256_file, d.path)
        out.append(StagedFile(kind, d.path, sibling(task.key, suffix), d.path.stat().st_size, digest))
    task.files = out
    if result.warnings:
        note = "; ".join(result.warnings)[:500]
        log.warning("clip=%s processing: %s", task.clip.identity, note)
        task.warnings.append(note)
