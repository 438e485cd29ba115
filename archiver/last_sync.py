"""The last sync of each account, as ``archiver status`` shows it: a small JSON file in the data directory
(``last-sync.json``), written after every sync by ``archiver sync`` and the worker. It is a convenience, not
part of the archive: losing it loses nothing but this line of ``status``."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, ValidationError

from archiver.logs import REDACTOR

if TYPE_CHECKING:
    from archiver.pipeline.report import SyncReport

log = logging.getLogger(__name__)

FILE = "last-sync.json"
Result = Literal["ok", "failed", "error", "skipped"]


class LastSync(BaseModel):
    """One account's last sync. ``result``: ok (exit 0), failed (some clips failed, exit 1), error (the
    run stopped: an outage, a login needed; ``exit_code`` 1 or 2), skipped (another run held the lease)."""

    finished_at: datetime
    duration_s: float = 0.0
    result: Result
    exit_code: int = 0
    listed: int = 0
    stored: int = 0
    failed: int = 0
    duplicates: int = 0
    bytes: int = 0
    error: str | None = None


class LastSyncs(BaseModel):
    accounts: dict[str, LastSync] = Field(default_factory=dict)


def path_for(data_dir: Path) -> Path:
    return data_dir / FILE


def read(data_dir: Path) -> dict[str, LastSync]:
    """Every account's last sync; empty when none was recorded (or the file is unreadable)."""
    try:
        return LastSyncs.model_validate_json(path_for(data_dir).read_bytes()).accounts
    except (OSError, ValidationError, ValueError):
        return {}


def of_report(r: SyncReport, finished_at: datetime | None = None) -> LastSync:
    result: Result = "skipped" if r.skipped_lease else ("ok" if r.exit_code == 0 else "failed")
    problems = [*r.errors, *r.clip_errors[:1]]
    return LastSync(
        finished_at=finished_at or datetime.now(UTC),
        duration_s=round(r.duration_s, 2),
        result=result,
        exit_code=r.exit_code,
        listed=r.listed,
        stored=r.stored,
        failed=r.failed,
        duplicates=r.duplicates,
        bytes=r.bytes,
        error=REDACTOR.scrub(problems[0])[:300] if problems else None,
    )


def of_error(message: str, exit_code: int, duration_s: float = 0.0) -> LastSync:
    return LastSync(
        finished_at=datetime.now(UTC),
        duration_s=round(duration_s, 2),
        result="error",
        exit_code=exit_code,
        error=REDACTOR.scrub(message)[:300],
    )


def record(data_dir: Path, runs: dict[str, LastSync]) -> None:
    """Merge ``runs`` (account -> its sync) into the file, atomically. Never fails the sync."""
    if not runs:
        return
    try:
        merged = LastSyncs(accounts={**read(data_dir), **runs})
        data_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".last-sync.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(merged.model_dump_json(indent=1))
            os.replace(tmp, path_for(data_dir))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    except OSError as exc:
        log.debug("the last sync was not recorded in %s: %s", data_dir, exc)
