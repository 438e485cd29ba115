"""Process: the optional ffmpeg step between fetch and store (probe, thumbnails, transcode, preview)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from archiver.db.models import Clip, ObjectKind
from archiver.destinations.disk import sha256_file
from archiver.pipeline.naming import sibling
from archiver.pipeline.store import StagedFile

if TYPE_CHECKING:
    from pathlib import Path

    from archiver.pipeline.sync import AccountSync

log = logging.getLogger("archiver.process")


async def run_processor(
    sync: AccountSync, clip: Clip, work: Path, key: str, files: list[StagedFile], has_thumbnail: bool
) -> list[StagedFile]:
    """Probe the original (a failed probe fails the clip), add derived files; never lose the original
    unless a transcode succeeded and ``keep_original`` is off."""
    original = files[0]
    result = await sync.processor.process(original.path, work / "derived", has_thumbnail)  # type: ignore[union-attr]
    updates = sync.row_updates.setdefault(clip.identity, {})
    if result.info is not None:
        i = result.info
        updates.update(duration=i.duration, width=i.width, height=i.height, codec=i.codec)
        clip.duration, clip.width, clip.height, clip.codec = i.duration, i.width, i.height, i.codec  # sidecar
    out = list(files) if result.keep_original else list(files[1:])
    for d in result.derived:
        if d.kind == "thumbnail":
            kind = ObjectKind.generated_thumbnail if has_thumbnail else ObjectKind.thumbnail
            suffix = ".generated.jpg" if has_thumbnail else ".jpg"
        else:
            kind, suffix = ObjectKind(d.kind), d.suffix
        digest = await asyncio.to_thread(sha256_file, d.path)
        out.append(StagedFile(kind, d.path, sibling(key, suffix), d.path.stat().st_size, digest))
    if result.warnings:
        note = "; ".join(result.warnings)[:500]
        log.warning("clip=%s processing: %s", clip.identity, note)
        updates["last_error"] = note
    return out
