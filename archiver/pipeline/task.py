"""The per-clip data that travels from fetch to store (pure data: no I/O, no callbacks)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from archiver.db.models import Clip
from archiver.pipeline.fetch import Fetched
from archiver.pipeline.store import StagedFile


@dataclass
class Staged:
    """What a source's ``fetch`` delivers: the clip, Blink's thumbnail when the source has one, and notes
    worth keeping on the row (e.g. a USB size mismatch)."""

    clip: Fetched
    thumbnail: Fetched | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MediaFacts:
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    codec: str | None = None


@dataclass
class ClipTask:
    """One clip on its way to ``stored``: staged files, probe facts, warnings (written with ``stored``)."""

    clip: Clip
    work: Path
    key: str
    files: list[StagedFile] = field(default_factory=list)
    has_thumbnail: bool = False
    facts: MediaFacts | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def note(self) -> str | None:
        return "; ".join(self.warnings)[:500] if self.warnings else None
