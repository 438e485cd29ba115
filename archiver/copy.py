"""``archiver copy --from NAME --to NAME``: give another destination everything one already holds.

For adding a NAS to an existing archive, or turning encryption on (copy into a new destination with
``encrypt = true``, then remove the old one from the config). Every StoredObject row of the source is
read through the Destination interface, checked against its sha256, put into the target (which
verifies what it wrote) and recorded as a row of the target, one commit per object: an interrupted
copy resumes where it stopped, and an object the target already holds with the right size and sha256
is only recorded, not sent again.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from archiver.db import repo
from archiver.db.engine import session_scope
from archiver.db.models import StoredObject
from archiver.destinations.base import Capability, Destination, DestinationError, preflight_all

log = logging.getLogger(__name__)

Progress = Callable[[int, int, int], None]  # (objects done, objects in all, bytes copied)


class CopyReport(BaseModel):
    objects: int = 0  # rows of the source considered
    copied: int = 0  # objects sent to the target
    present: int = 0  # already in the target intact (recorded, not sent)
    bytes: int = 0
    failed: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def _holds(target: Destination, key: str, size: int, sha256: str) -> bool:
    """The target has this object intact (size, then the stored or re-read sha256)."""
    info = target.stat(key)
    if info is None or info.size != size:
        return False
    if info.sha256 is not None and Capability.stored_sha256 in target.capabilities:
        return info.sha256 == sha256
    try:
        return target.hash(key) == sha256
    except DestinationError:
        return False


def copy_objects(
    engine: Engine,
    source: Destination,
    target: Destination,
    *,
    workdir: Path,
    progress: Progress | None = None,
) -> CopyReport:
    if source.name == target.name:
        raise DestinationError("copy: --from and --to name the same destination", config=True)
    problems, notes = preflight_all([target])
    for note in notes:
        log.info("%s", note)
    if problems:
        raise problems[0]
    report = CopyReport()
    with Session(engine) as s:
        rows = list(s.exec(select(StoredObject).where(StoredObject.destination == source.name)))
        have = {
            (o.clip_id, o.kind): (o.id, o.key, o.sha256)
            for o in s.exec(select(StoredObject).where(StoredObject.destination == target.name))
        }
    rows.sort(key=lambda o: o.id or 0)
    total = len(rows)
    workdir.mkdir(parents=True, exist_ok=True)
    for done, row in enumerate(rows, 1):
        report.objects += 1
        known = have.get((row.clip_id, row.kind))
        try:
            if _holds(target, row.key, row.size, row.sha256):
                report.present += 1
                if known is None or known[1:] != (row.key, row.sha256):
                    _record(engine, row, target.name, known[0] if known else None)
            else:
                _copy_one(source, target, row, workdir)
                _record(engine, row, target.name, known[0] if known else None)
                report.copied += 1
                report.bytes += row.size
        except Exception as exc:  # one object's failure never stops the copy; the next run retries it
            message = str(exc) if isinstance(exc, DestinationError) else f"{exc.__class__.__name__}: {exc}"
            report.failed.append(f"{row.key}: {message}")
            log.warning("copy %s: %s", row.key, message)
        if progress is not None:
            progress(done, total, report.bytes)
    log.info(
        "copy %s -> %s: %s objects, %s copied, %s present, %s failed",
        source.name,
        target.name,
        report.objects,
        report.copied,
        report.present,
        len(report.failed),
    )
    return report


def _copy_one(source: Destination, target: Destination, row: StoredObject, workdir: Path) -> None:
    with tempfile.NamedTemporaryFile(dir=workdir, prefix=".copy-", suffix=".part", delete=False) as fh:
        tmp = Path(fh.name)
        digest = hashlib.sha256()
        for chunk in source.open(row.key):
            digest.update(chunk)
            fh.write(chunk)
    try:
        if digest.hexdigest() != row.sha256:
            raise DestinationError(
                f"{source.name}:{row.key} does not match its sha256 (damaged there: `archiver verify`)"
            )
        target.put(tmp, row.key, sha256=row.sha256, metadata={"kind": str(row.kind), "sha256": row.sha256})
    finally:
        tmp.unlink(missing_ok=True)


def _record(engine: Engine, row: StoredObject, target: str, existing_id: int | None) -> None:
    with session_scope(engine) as s:
        repo.record_object(
            s, row.clip_id, target, row.kind, row.key, row.size, row.sha256, existing_id=existing_id
        )
