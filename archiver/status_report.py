"""What `archiver status` shows, as typed models: :class:`Status` is also what ``status --json`` prints
(its keys are stable; a change of meaning bumps ``version``)."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from archiver.last_sync import LastSync
from archiver.logs import REDACTOR

if TYPE_CHECKING:
    from archiver.db.summary import AccountSummary, FailedClip

JSON_VERSION = 1


class FailedClipStatus(BaseModel):
    identity: str  # cloud:<media id>, local:…
    source: str
    network: str | None = None
    camera: str | None = None
    recorded_at: datetime | None = None  # UTC
    recorded_local: str | None = None  # ISO 8601 in the network's time zone, with its offset
    time_zone: str | None = None  # that zone (IANA); None: unknown, times are UTC
    attempts: int = 0
    reason: str | None = None
    next_try: datetime | None = None  # UTC; None: tried at the next sync


class AccountStatus(BaseModel):
    name: str
    logged_in: bool
    tier: str | None = None
    login_needed: str | None = None  # why a person must run `archiver login`
    signin_blocked_until: datetime | None = None
    clips: dict[str, dict[str, int]] = Field(default_factory=dict)  # source -> state -> count
    cursor: datetime | None = None  # where the next cloud listing starts
    archive_bytes: int = 0
    last_sync: LastSync | None = None
    failed: list[FailedClipStatus] = Field(default_factory=list)  # the newest few


class Status(BaseModel):
    version: int = JSON_VERSION
    accounts: list[AccountStatus] = Field(default_factory=list)


def _zone(name: str | None) -> tzinfo:
    from zoneinfo import ZoneInfo

    if name:
        try:
            return ZoneInfo(name)
        except (ValueError, OSError, KeyError):
            pass
    return UTC


def local_time(ts: datetime, zone: str | None) -> str:
    """``2026-12-06 23:14:05 CET``: the clip's network's local time, labelled with its zone."""
    local = ts.astimezone(_zone(zone))
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname() or 'UTC'}"


def failed_status(c: FailedClip) -> FailedClipStatus:
    local = c.created_at.astimezone(_zone(c.time_zone)).isoformat() if c.created_at else None
    return FailedClipStatus(
        identity=c.identity,
        source=c.source,
        network=c.network_name,
        camera=c.camera_name,
        recorded_at=c.created_at,
        recorded_local=local,
        time_zone=c.time_zone,
        attempts=c.attempts,
        reason=REDACTOR.scrub(c.last_error) if c.last_error else None,
        next_try=c.next_attempt_at,
    )


def account_status(a: AccountSummary, last: LastSync | None) -> AccountStatus:
    from archiver.db.summary import SOURCES, STATES

    sources = [*SOURCES, *sorted({src for src, _ in a.counts} - set(SOURCES))]
    return AccountStatus(
        name=a.name,
        logged_in=a.logged_in,
        tier=a.tier,
        login_needed=a.login_needed_reason,
        signin_blocked_until=a.signin_blocked_until,
        clips={src: {st: a.counts.get((src, st), 0) for st in STATES} for src in sources},
        cursor=a.cursor,
        archive_bytes=a.archive_bytes,
        last_sync=last,
        failed=[failed_status(c) for c in a.failed],
    )
