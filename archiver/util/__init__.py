"""Small helpers shared by every layer: the first line of an error, UTC instants, fsync, sha256."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["as_utc", "fsync_file", "one_line", "sha256_file"]


def one_line(exc: BaseException | str, limit: int = 500) -> str:
    """The first non-empty line of an error (its type name when it has no text), at most ``limit`` chars."""
    text = str(exc).strip()
    if not text:
        text = type(exc).__name__ if isinstance(exc, BaseException) else ""
    return text.splitlines()[0][:limit] if text else text


def as_utc(ts: datetime) -> datetime:
    """An aware UTC instant; naive values (SQLite returns them) are taken as UTC."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
