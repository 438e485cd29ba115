"""Verify: re-read what the database says each destination holds, and find what it holds unasked.

For every ``StoredObject`` row (or a random sample): ``stat`` (missing? size right?) then ``hash``
(sha256 right?). A good object gets ``verified_at``. On a full run every destination is also listed and
objects no row names are reported as strays (temporary/hidden names and ignored prefixes are skipped).
A destination that cannot be reached is one error entry, never a crash; its objects are not judged.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field, computed_field
from sqlalchemy import update
from sqlmodel import Session, select

from archiver.db.models import Clip, ClipSource, ClipState, StoredObject, utcnow
from archiver.destinations.base import (
    Destination,
    DestinationError,
    ObjectCorrupt,
    is_temporary_key,
    unreachable,
)
from archiver.util import sha256_file

log = logging.getLogger(__name__)

MAX_ERRORS_PER_DESTINATION = 3  # then the destination is re-checked and skipped if it is down


class ObjectProblem(BaseModel):
    destination: str
    key: str
    clip_id: int | None = None
    object_id: int | None = None
    detail: str = ""


class VerifyReport(BaseModel):
    checked: int = 0  # objects judged (ok, missing or corrupt)
    verified: int = 0  # objects found intact
    missing: list[ObjectProblem] = Field(default_factory=list)
    corrupt: list[ObjectProblem] = Field(default_factory=list)
    stray: list[ObjectProblem] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    # --repair: clips queued to be fetched again from Blink, objects copied back from another destination,
    # and what nothing can bring back
    requeued: int = 0
    copied: int = 0
    unrepairable: list[ObjectProblem] = Field(default_factory=list)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt or self.stray or self.errors)


def object_problem(dest: Destination, key: str, size: int, sha256: str) -> tuple[str, str] | None:
    """Re-read one object: ``None`` when the destination holds it intact, else ("missing" | "corrupt",
    detail). Shared by ``verify`` and the cloud cleanup (which deletes from Blink only after it)."""
    info = dest.stat(key)
    if info is None:
        return "missing", ""
    if info.size != size:
        return "corrupt", f"size {info.size}, expected {size}"
    try:
        actual = dest.hash(key)
    except ObjectCorrupt as exc:  # an encrypted object whose MAC fails
        return "corrupt", str(exc)
    if actual != sha256:
        return "corrupt", f"sha256 {actual[:12]}…, expected {sha256[:12]}…"
    return None


def database_problems(session: Session) -> list[str]:
    """SQLite's own check of the index file (``PRAGMA quick_check``): what it finds, one line each, naming
    the way back. Other databases check themselves: nothing to do."""
    from sqlalchemy.exc import DBAPIError

    if session.get_bind().dialect.name != "sqlite":
        return []
    try:
        found = [str(r[0]) for r in session.connection().exec_driver_sql("PRAGMA quick_check").all()]
    except DBAPIError as exc:
        found = [" ".join(str(exc.orig).split())[:200]]
    if found == ["ok"]:
        return []
    way_back = "move the database aside and run `archiver reindex`"
    return [f"database: {line} ({way_back})" for line in found[:10]]


def verify(
    session: Session,
    destinations: Mapping[str, Destination],
    sample: int | None = None,
    rng: random.Random | None = None,
    *,
    strays: bool | None = None,
    ignore_prefixes: Sequence[str] = (),
    now: datetime | None = None,
) -> VerifyReport:
    """Check objects against their rows; ``strays`` defaults to on when every row is checked."""
    report = VerifyReport()
    now = now or datetime.now(UTC)
    rows = list(
        session.exec(
            select(
                StoredObject.id,
                StoredObject.clip_id,
                StoredObject.destination,
                StoredObject.key,
                StoredObject.size,
                StoredObject.sha256,
            )
        )
    )
    known: dict[str, set[str]] = defaultdict(set)
    for _oid, _cid, dest, key, _size, _sha in rows:
        known[dest].add(key)
    full = sample is None or sample >= len(rows)
    if not full:
        rows = (rng or random.Random()).sample(rows, sample or 0)
    rows.sort(key=lambda r: (r[2], r[3]))

    down: dict[str, str] = {}
    for name in sorted({r[2] for r in rows} | set(destinations)):
        if name in destinations and (err := unreachable(destinations[name])):
            down[name] = err
            report.errors.append(err)

    unconfigured: dict[str, int] = defaultdict(int)
    failures: dict[str, int] = defaultdict(int)
    ok_ids: list[int] = []
    for oid, cid, dest_name, key, size, sha in rows:
        dest = destinations.get(dest_name)
        if dest is None:
            unconfigured[dest_name] += 1
            continue
        if dest_name in down:
            continue
        try:
            problem = object_problem(dest, key, size, sha)
            if problem is None:
                ok_ids.append(oid)
                report.verified += 1
            else:
                what, detail = problem
                found = ObjectProblem(
                    destination=dest_name, key=key, clip_id=cid, object_id=oid, detail=detail
                )
                (report.missing if what == "missing" else report.corrupt).append(found)
            report.checked += 1
        except Exception as exc:
            report.errors.append(str(exc) if isinstance(exc, DestinationError) else f"{key}: {exc!r}")
            failures[dest_name] += 1
            if failures[dest_name] >= MAX_ERRORS_PER_DESTINATION and (err := unreachable(dest)):
                down[dest_name] = err
                report.errors.append(f"{err} (skipping its remaining objects)")
                failures[dest_name] = 0

    for name, count in sorted(unconfigured.items()):
        report.errors.append(f"destination {name!r} is not configured: {count} object(s) not checked")

    for start in range(0, len(ok_ids), 500):
        chunk = ok_ids[start : start + 500]
        session.exec(update(StoredObject).where(StoredObject.id.in_(chunk)).values(verified_at=now))  # type: ignore[union-attr,call-overload]
    session.commit()

    if strays if strays is not None else full:
        prefixes = tuple(p.strip("/") + "/" for p in ignore_prefixes if p.strip("/"))
        for name, dest in sorted(destinations.items()):
            if name in down:
                continue
            names = known.get(name, set())
            try:
                for info in dest.list():
                    if info.key in names or is_temporary_key(info.key) or info.key.startswith(prefixes):
                        continue
                    report.stray.append(
                        ObjectProblem(destination=name, key=info.key, detail=f"{info.size} bytes")
                    )
            except Exception as exc:
                report.errors.append(str(exc) if isinstance(exc, DestinationError) else f"{name}: {exc!r}")
    log.info(
        "verify checked=%s missing=%s corrupt=%s stray=%s errors=%s",
        report.checked,
        len(report.missing),
        len(report.corrupt),
        len(report.stray),
        len(report.errors),
    )
    return report


def _refetchable(clip: Clip) -> bool:
    """Blink still has it: a cloud clip neither gone upstream nor deleted by cloud cleanup."""
    return clip.source == ClipSource.cloud and not clip.deleted_upstream and clip.cloud_deleted_at is None


def repair(
    session: Session, destinations: Mapping[str, Destination], report: VerifyReport, workdir: Path
) -> VerifyReport:
    """Bring back what ``report`` found missing or corrupt.

    A clip Blink still has is queued again (its bad rows removed, a corrupt object deleted, state reset):
    the next sync refetches it and stores it where it is missing, keeping the good copies. Otherwise the
    object is copied from another destination whose copy has the right sha256. What neither can bring
    back is listed in ``unrepairable``.
    """
    bad = [p for p in (*report.missing, *report.corrupt) if p.object_id is not None and p.clip_id is not None]
    corrupt_ids = {p.object_id for p in report.corrupt}
    bad_ids = {p.object_id for p in bad}
    by_clip: dict[int, list[ObjectProblem]] = defaultdict(list)
    for p in bad:
        by_clip[p.clip_id].append(p)  # type: ignore[index]
    workdir.mkdir(parents=True, exist_ok=True)
    for clip_id, problems in sorted(by_clip.items()):
        clip = session.get(Clip, clip_id)
        if clip is None:
            continue
        rows = {o.id: o for o in session.exec(select(StoredObject).where(StoredObject.clip_id == clip_id))}
        if _refetchable(clip):
            for p in problems:
                dest = destinations[p.destination]
                if p.object_id in corrupt_ids:
                    try:
                        dest.delete(p.key)  # a same-size damaged object could pass a put's quick check
                    except Exception as exc:
                        report.errors.append(f"repair: {p.destination}:{p.key}: {exc}")
                        continue
                row = rows.get(p.object_id)
                if row is not None:
                    session.delete(row)
            clip.state = ClipState.discovered
            clip.attempts = 0
            clip.next_attempt_at = None  # fetched by the next sync, whatever its back-off was
            clip.last_error = "verify --repair: queued to be fetched again"
            session.add(clip)
            report.requeued += 1
            continue
        for p in problems:
            row = rows.get(p.object_id)
            if row is None:
                continue
            sources = [
                o
                for o in rows.values()
                if o.kind == row.kind
                and o.id not in bad_ids
                and o.destination != row.destination
                and o.sha256 == row.sha256
                and o.destination in destinations
            ]
            if not _copy_back(destinations, row, sources, workdir, report):
                report.unrepairable.append(p)
    session.commit()
    log.info(
        "repair requeued=%s copied=%s unrepairable=%s",
        report.requeued,
        report.copied,
        len(report.unrepairable),
    )
    return report


def _copy_back(
    destinations: Mapping[str, Destination],
    row: StoredObject,
    sources: Sequence[StoredObject],
    workdir: Path,
    report: VerifyReport,
) -> bool:
    target = destinations[row.destination]
    tmp = workdir / f"object-{row.id}"
    for src in sources:
        try:
            destinations[src.destination].read_to(src.key, tmp)
            if sha256_file(tmp) != row.sha256:
                continue  # that copy is damaged too
            with contextlib.suppress(DestinationError):
                target.delete(row.key)
            target.put(tmp, row.key, sha256=row.sha256, metadata={"sha256": row.sha256})
        except Exception as exc:  # try the next copy; one failure never stops the repair
            report.errors.append(f"repair: {row.destination}:{row.key} from {src.destination}: {exc}")
            continue
        finally:
            tmp.unlink(missing_ok=True)
        row.stored_at = row.verified_at = utcnow()
        report.copied += 1
        return True
    return False
