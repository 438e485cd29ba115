"""Retention: decide which stored clips to forget (pure), then delete them everywhere (prune).

How the rules combine
---------------------
The rules in ``[retention]`` follow ``restic forget``: each *keep rule* selects a set of clips to keep, and a
clip is kept when ANY keep rule selects it. A clip no keep rule selects is forgotten.

* ``max_age_days = D`` keeps every clip recorded less than D days before ``now`` (clips stamped in the
  future count as young).
* ``keep_last = N`` keeps the newest N clips of each camera.
* ``keep_daily = N`` keeps, per camera, the newest clip of each of the last N distinct days *that have
  clips* (days without clips do not use up a slot); ``keep_weekly`` does the same with ISO weeks and
  ``keep_monthly`` with calendar months. Days, weeks and months are those of the clip's own time zone
  when it is known, else UTC.
* A count of 0 means the rule is off, as in restic (so ``keep_last = 0`` never deletes everything by
  itself); likewise ``max_total_bytes = 0`` is off.
* With no active rule at all nothing is forgotten.

``max_total_bytes`` is different on purpose: it is a **hard cap**, applied after the union. Someone who
writes "at most 500 GB" has a disk or a bucket quota in mind and expects the archive never to grow past it,
even when ``keep_last`` or ``max_age_days`` would keep more; a cap that another rule can overrule would let
the disk fill up. So: take the clips the keep rules keep (or every clip when the cap is the only rule),
walk them newest first across all cameras, and keep them while the running total fits the budget; the first
clip that does not fit and every older one is forgotten (no holes: an old small clip never survives a newer
large one). A clip's size is what one destination holds for it (clip + thumbnail + sidecar, the largest
footprint over its destinations), so the cap bounds each destination separately.

Candidates are clips in state ``stored``. ``prune`` deletes each forgotten clip's objects from their
destinations first and removes a ``StoredObject`` row only after its delete succeeded; once every object of
a clip is gone the clip becomes ``pruned`` (the row stays, so the clip is never fetched again). A failed
delete, or a row naming a destination that is no longer configured, leaves the row and is reported; the
clip stays ``stored`` and is tried again on the next prune. Byte counts are reported per destination
(each destination frees what it held); the plan's ``forget_bytes`` is the per-clip size defined above.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field
from sqlalchemy import delete, update
from sqlmodel import Session, select

from archiver.config import RetentionSettings
from archiver.db.models import Clip, ClipState, StoredObject
from archiver.destinations.base import Destination, delete_many, unreachable
from archiver.util import as_utc

log = logging.getLogger(__name__)

COMMIT_EVERY = 200  # clips per transaction while pruning


@dataclass(frozen=True, slots=True)
class RetentionItem:
    clip_id: int
    camera: str
    created_at: datetime  # aware, UTC
    size: int
    time_zone: str | None = None  # IANA name; days/weeks/months are counted in it when known


@dataclass
class RetentionPlan:
    keep: dict[int, list[str]] = field(default_factory=dict)  # clip id -> why it stays
    forget: list[RetentionItem] = field(default_factory=list)  # oldest first
    forget_reasons: dict[int, str] = field(default_factory=dict)  # clip id -> why it goes

    @property
    def forget_bytes(self) -> int:
        return sum(item.size for item in self.forget)


@lru_cache(maxsize=256)
def _zone(name: str | None) -> tzinfo:
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "America" is a folder: IsADirectoryError
        return UTC


def _local_date(item: RetentionItem) -> date:
    return item.created_at.astimezone(_zone(item.time_zone)).date()


def _day(item: RetentionItem) -> str:
    return _local_date(item).isoformat()


def _week(item: RetentionItem) -> str:
    year, week, _ = _local_date(item).isocalendar()
    return f"{year}-W{week:02d}"


def _month(item: RetentionItem) -> str:
    d = _local_date(item)
    return f"{d.year}-{d.month:02d}"


def _active(value: float | None) -> bool:
    return value is not None and value > 0


def _newest_first(items: Sequence[RetentionItem]) -> list[RetentionItem]:
    return sorted(items, key=lambda i: (i.created_at, i.clip_id), reverse=True)


def plan(items: Sequence[RetentionItem], policy: RetentionSettings, now: datetime) -> RetentionPlan:
    """Apply ``policy`` to ``items`` at ``now``; see the module docstring for the exact semantics."""
    result = RetentionPlan()
    ordered = _newest_first(items)
    keep_rules = any(
        _active(v)
        for v in (
            policy.max_age_days,
            policy.keep_last,
            policy.keep_daily,
            policy.keep_weekly,
            policy.keep_monthly,
        )
    )
    cap = policy.max_total_bytes if _active(policy.max_total_bytes) else None
    if not keep_rules and cap is None:
        result.keep = {item.clip_id: ["no retention rule configured"] for item in ordered}
        return result

    keep: dict[int, list[str]] = {}

    def mark(item: RetentionItem, reason: str) -> None:
        keep.setdefault(item.clip_id, []).append(reason)

    if _active(policy.max_age_days):
        assert policy.max_age_days is not None
        cutoff = now - timedelta(days=policy.max_age_days)
        for item in ordered:
            if item.created_at <= cutoff:
                break  # ordered newest first: everything after is older still
            mark(item, "max_age")

    per_camera: dict[str, list[RetentionItem]] = defaultdict(list)
    for item in ordered:
        per_camera[item.camera].append(item)

    if _active(policy.keep_last):
        n = int(policy.keep_last or 0)
        for camera, clips in per_camera.items():
            for item in clips[:n]:
                mark(item, f"last {n} of camera {camera}")

    buckets: list[tuple[int | None, str, Callable[[RetentionItem], str]]] = [
        (policy.keep_daily, "daily", _day),
        (policy.keep_weekly, "weekly", _week),
        (policy.keep_monthly, "monthly", _month),
    ]
    for count, label, bucket_of in buckets:
        if not _active(count):
            continue
        n = int(count or 0)
        for clips in per_camera.values():
            seen = 0
            last: str | None = None
            for item in clips:  # newest first: the first clip met in a bucket is its newest
                bucket = bucket_of(item)
                if bucket == last:
                    continue
                last = bucket
                mark(item, f"{label} {bucket}")
                seen += 1
                if seen >= n:
                    break

    forget_reasons: dict[int, str] = {}
    if cap is not None:
        kept_in_order = [i for i in ordered if i.clip_id in keep] if keep_rules else ordered
        total = 0
        over = False
        for item in kept_in_order:
            if not over and total + item.size <= cap:
                total += item.size
                if not keep_rules:
                    mark(item, "max_total_bytes")
                continue
            over = True
            keep.pop(item.clip_id, None)
            forget_reasons[item.clip_id] = f"over max_total_bytes {cap}"

    forget = [i for i in reversed(ordered) if i.clip_id not in keep]
    for item in forget:
        forget_reasons.setdefault(item.clip_id, "no rule keeps it")
    result.keep = keep
    result.forget = forget
    result.forget_reasons = forget_reasons
    return result


# -- applying a plan ---------------------------------------------------------------------------------


class DestinationDeletes(BaseModel):
    objects: int = 0
    bytes: int = 0


class PruneGroup(BaseModel):
    """The forgotten clips of one camera on one local day (the clip's own time zone, else UTC)."""

    camera: str  # "network/camera"
    day: date
    clips: int = 0
    bytes: int = 0


class PruneReport(BaseModel):
    dry_run: bool = False
    candidates: int = 0  # stored clips the policy looked at
    clips: int = 0  # clips the policy forgets
    bytes: int = 0  # their size (per-clip footprint, see module docstring)
    pruned: int = 0  # clips now fully removed (state pruned); 0 on a dry run
    clip_ids: list[int] = Field(default_factory=list)  # forgotten clip ids, oldest first
    groups: list[PruneGroup] = Field(default_factory=list)  # what they are: by camera, then local day
    destinations: dict[str, DestinationDeletes] = Field(default_factory=dict)  # deleted (or would be)
    errors: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def deleted_anything(self) -> bool:
        """Objects or rows are gone (never on a dry run): the archive's size and counts changed."""
        return not self.dry_run and (self.pruned > 0 or any(d.objects for d in self.destinations.values()))


def group_by_camera_day(items: Sequence[RetentionItem]) -> list[PruneGroup]:
    groups: dict[tuple[str, date], PruneGroup] = {}
    for item in items:
        day = _local_date(item)
        g = groups.get((item.camera, day))
        if g is None:
            g = groups[item.camera, day] = PruneGroup(camera=item.camera, day=day)
        g.clips += 1
        g.bytes += item.size
    return [groups[k] for k in sorted(groups, key=lambda k: (k[0].casefold(), k[1]))]


class _Obj(NamedTuple):
    id: int
    destination: str
    key: str
    size: int


def _camera_label(network: str | None, camera: str | None, camera_id: int | None) -> str:
    name = camera or (f"#{camera_id}" if camera_id is not None else "unknown")
    return f"{network}/{name}" if network else name


def load_candidates(session: Session) -> tuple[list[RetentionItem], dict[int, list[_Obj]]]:
    """Stored clips and their objects, in one joined query (no per-clip round trips)."""
    stmt = (
        select(
            Clip.id,
            Clip.network_name,
            Clip.camera_name,
            Clip.camera_blink_id,
            Clip.created_at,
            Clip.time_zone,
            StoredObject.id,
            StoredObject.destination,
            StoredObject.key,
            StoredObject.size,
        )
        .join(StoredObject, StoredObject.clip_id == Clip.id)  # type: ignore[arg-type]
        .where(Clip.state == ClipState.stored)
    )
    objects: dict[int, list[_Obj]] = {}
    meta: list[tuple[int, str, datetime, str | None]] = []
    # Core execution (no ORM identity map): this reads every stored object of the archive.
    for cid, net, cam, cam_id, created, tz, oid, dest, key, size in session.connection().execute(stmt).all():
        objs = objects.get(cid)
        if objs is None:
            objs = objects[cid] = []
            meta.append((cid, _camera_label(net, cam, cam_id), created, tz))
        objs.append(_Obj(oid, dest, key, size))
    items: list[RetentionItem] = []
    for cid, camera, created, tz in meta:
        created = as_utc(created)  # SQLite hands back naive values; they were stored as UTC
        per_dest: dict[str, int] = {}
        for obj in objects[cid]:
            per_dest[obj.destination] = per_dest.get(obj.destination, 0) + obj.size
        items.append(RetentionItem(cid, camera, created, max(per_dest.values()), tz))
    return items, objects


def prune(
    session: Session,
    destinations: Mapping[str, Destination],
    policy: RetentionSettings,
    now: datetime,
    dry_run: bool = False,
) -> PruneReport:
    """Forget what ``policy`` says at ``now``: delete objects, then their rows, then mark clips pruned.

    Commits as it goes (every ``COMMIT_EVERY`` clips) so a long prune that is interrupted keeps its
    progress; a dry run changes nothing.
    """
    items, objects = load_candidates(session)
    result = plan(items, policy, now)
    report = PruneReport(
        dry_run=dry_run,
        candidates=len(items),
        clips=len(result.forget),
        bytes=result.forget_bytes,
        clip_ids=[i.clip_id for i in result.forget],
        groups=group_by_camera_day(result.forget),
    )
    unconfigured: dict[str, int] = defaultdict(int)
    down: dict[str, int] = {}  # destinations found unreachable mid-prune -> objects skipped

    def tally(dest: str, size: int) -> None:
        stats = report.destinations.setdefault(dest, DestinationDeletes())
        stats.objects += 1
        stats.bytes += size

    for start in range(0, len(result.forget), COMMIT_EVERY):
        batch = result.forget[start : start + COMMIT_EVERY]
        per_dest: dict[str, list[_Obj]] = defaultdict(list)
        clip_of: dict[tuple[str, str], int] = {}
        for item in batch:
            for obj in objects[item.clip_id]:
                clip_of[obj.destination, obj.key] = item.clip_id
                if obj.destination not in destinations:
                    unconfigured[obj.destination] += 1
                elif dry_run:
                    tally(obj.destination, obj.size)
                else:
                    per_dest[obj.destination].append(obj)
        if dry_run:
            continue
        gone: set[int] = set()
        for name, objs in per_dest.items():
            if name in down:
                down[name] += len(objs)
                continue
            backend = destinations[name]
            failures = delete_many(backend, [o.key for o in objs])  # objects first, rows after
            for obj in objs:
                if obj.key not in failures:
                    tally(name, obj.size)
                    gone.add(obj.id)
            by_error: dict[int, list[str]] = defaultdict(list)  # one line per distinct failure
            for key, exc in failures.items():
                by_error[id(exc)].append(key)
            for keys in by_error.values():
                if len(keys) == 1:
                    report.errors.append(f"clip {clip_of[name, keys[0]]}: {name}: {failures[keys[0]]}")
                else:
                    report.errors.append(f"{name}: {failures[keys[0]]} ({len(keys)} objects kept)")
                log.warning("prune delete failed destination=%s keys=%d", name, len(keys))
            if failures and (problem := unreachable(backend)) is not None:
                report.errors.append(f"{problem} (skipping its remaining deletes)")
                down[name] = 0
        if not gone:
            continue
        session.exec(delete(StoredObject).where(StoredObject.id.in_(gone)))  # type: ignore[union-attr,call-overload]
        pruned = [
            i.clip_id for i in batch if objects[i.clip_id] and all(o.id in gone for o in objects[i.clip_id])
        ]
        if pruned:
            session.exec(
                update(Clip).where(Clip.id.in_(pruned)).values(state=ClipState.pruned)  # type: ignore[union-attr,call-overload,arg-type]
            )
            report.pruned += len(pruned)
        session.commit()
    for dest, count in sorted(down.items()):
        if count:
            report.errors.append(f"destination {dest!r} was unreachable: {count} more object(s) kept")
    for dest, count in sorted(unconfigured.items()):
        report.errors.append(
            f"destination {dest!r} is not configured: {count} object(s) kept (add it back or remove the rows)"
        )
    log.info(
        "prune dry_run=%s candidates=%s forget=%s pruned=%s errors=%s",
        dry_run,
        report.candidates,
        report.clips,
        report.pruned,
        len(report.errors),
    )
    return report
