"""Verify: re-read what the database says each destination holds, and find what it holds unasked.

For every ``StoredObject`` row (or a random sample): ``stat`` (missing? size right?) then ``hash``
(sha256 right?). A good object gets ``verified_at``. On a full run every destination is also listed and
objects no row names are reported as strays (temporary/hidden names and ignored prefixes are skipped).
A destination that cannot be reached is one error entry, never a crash; its objects are not judged.
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, Field, computed_field
from sqlalchemy import update
from sqlmodel import Session, select

from archiver.db.models import StoredObject
from archiver.destinations.base import Destination, DestinationError, is_temporary_key, unreachable

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
    if (actual := dest.hash(key)) != sha256:
        return "corrupt", f"sha256 {actual[:12]}…, expected {sha256[:12]}…"
    return None


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
