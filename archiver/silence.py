"""Silence watch: which camera went quiet, which Sync Module is offline, which USB storage stopped.

Per camera the watch learns the usual gap between its clips: the ``silence.percentile`` (95th) of the
gaps between the clips recorded in the last ``silence.window_days`` (14). A camera that has recorded
nothing for ``max(silence.min_silence, silence.factor x usual gap)`` is "silent": raised once (a
notification through archiver.notify, a row in ``silence_alert`` for the status page and Home Assistant,
the ``archiver_silence_alerts`` metric) and cleared, with a second notification, by its next clip.
With fewer than ``silence.min_gaps`` gaps in the window the usual gap is the whole window, so a camera
that is simply rarely triggered (once a week) needs weeks of silence before it is reported; a camera
that never recorded anything has no usual gap and is never reported.

From the homescreen the sync already reads (the Sync Module rows): a module whose status is not
``online`` is reported offline, and one whose USB clips were archived before but whose
``local_storage_status`` is no longer ``active`` is reported as USB storage inactive. Both clear when the
homescreen says so again.

Hooks for other areas: :func:`open_alerts` (status page, the HA binary sensor "<camera> silent" with
device class problem), ``archiver.metrics.SilenceCollector`` (the ``archiver_silence_alerts`` metric).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from pydantic import BaseModel, Field
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from archiver.config import SilenceSettings, parse_duration
from archiver.db.engine import session_scope
from archiver.db.models import Account, Camera, Clip, ClipSource, ClipState, SilenceAlert, SyncModule

log = logging.getLogger("archiver.silence")

Kind = Literal["camera_silent", "sync_module_offline", "usb_inactive"]
COUNTED = (ClipState.stored, ClipState.duplicate, ClipState.discovered, ClipState.failed)


class Sender(Protocol):
    def send(self, title: str, body: str) -> bool: ...


class Alert(BaseModel):
    account_id: int
    kind: Kind
    subject: str  # the camera's or Sync Module's Blink id
    name: str
    detail: str = ""

    @property
    def key(self) -> tuple[int, str, str]:
        return self.account_id, self.kind, self.subject

    def title(self, cleared: bool = False) -> str:
        what = {
            "camera_silent": ("camera silent", "recording again"),
            "sync_module_offline": ("Sync Module offline", "Sync Module back online"),
            "usb_inactive": ("USB storage inactive", "USB storage active again"),
        }[self.kind]
        return f"{self.name}: {what[1] if cleared else what[0]}"


class SilenceReport(BaseModel):
    raised: list[Alert] = Field(default_factory=list)
    cleared: list[Alert] = Field(default_factory=list)
    open: list[Alert] = Field(default_factory=list)


def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (not empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def threshold(times: Sequence[datetime], now: datetime, cfg: SilenceSettings) -> timedelta:
    """How long this camera may stay quiet before it is reported (``times``: its clips, any order)."""
    window = timedelta(days=cfg.window_days)
    recent = sorted(_utc(t) for t in times if _utc(t) >= now - window)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(recent) if b > a]
    usual = timedelta(seconds=percentile(gaps, cfg.percentile)) if len(gaps) >= cfg.min_gaps else window
    return max(parse_duration(cfg.min_silence), usual * cfg.factor)


def _fmt(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"


def evaluate(s: Session, account_id: int, cfg: SilenceSettings, now: datetime) -> list[Alert]:
    """The alerts that hold for one account now."""
    alerts: list[Alert] = []
    window_start = now - timedelta(days=cfg.window_days)
    counted = Clip.state.in_(COUNTED)  # type: ignore[attr-defined]
    # Core rows, no ORM objects: at 100,000 clips this runs after every one-shot sync
    db = s.connection()
    last_seen: dict[int, datetime] = {}
    # grouped by state too: answered from the (state, account, camera, created_at) index alone
    for cam, last in db.execute(
        select(Clip.camera_blink_id, func.max(Clip.created_at))
        .where(counted, Clip.account_id == account_id, Clip.camera_blink_id.is_not(None))  # type: ignore[union-attr]
        .group_by(Clip.state, Clip.camera_blink_id)
    ):
        if last is not None and (cam not in last_seen or _utc(last) > last_seen[cam]):
            last_seen[cam] = _utc(last)
    recent: dict[int, list[datetime]] = {}
    rows = db.execute(
        select(Clip.camera_blink_id, Clip.created_at).where(
            Clip.account_id == account_id, Clip.created_at >= window_start, counted
        )
    )
    for cam, created in rows:
        if cam is not None:
            recent.setdefault(cam, []).append(created)
    silent: list[tuple[int, str]] = []
    for cam, last in last_seen.items():
        quiet = now - last
        limit = threshold(recent.get(cam, []), now, cfg)
        if quiet > limit:
            silent.append((cam, f"no clip for {_fmt(quiet)} (usually reported after {_fmt(limit)})"))
    if silent:
        names = _camera_names(s, account_id, [cam for cam, _ in silent])
        alerts += [
            Alert(
                account_id=account_id,
                kind="camera_silent",
                subject=str(cam),
                name=names.get(cam) or f"camera {cam}",
                detail=detail,
            )
            for cam, detail in silent
        ]
    if cfg.sync_modules:
        modules = s.exec(select(SyncModule).where(SyncModule.account_id == account_id))
        for m in modules:
            if m.status and m.status.lower() != "online":
                alerts.append(
                    Alert(
                        account_id=account_id,
                        kind="sync_module_offline",
                        subject=str(m.blink_id),
                        name=m.name,
                        detail=f"Blink says the Sync Module is {m.status}",
                    )
                )
            if (m.local_storage_status or "").lower() != "active" and _had_usb_clips(
                s, account_id, m.blink_id
            ):
                alerts.append(
                    Alert(
                        account_id=account_id,
                        kind="usb_inactive",
                        subject=str(m.blink_id),
                        name=m.name,
                        detail=f"USB storage is {m.local_storage_status or 'not reported'}: "
                        "its clips are not archived",
                    )
                )
    return alerts


def _camera_names(s: Session, account_id: int, cams: Sequence[int]) -> dict[int, str]:
    """The cameras' names: the homescreen's, else the newest a clip of theirs was listed with."""
    names = {
        c.blink_id: c.name
        for c in s.exec(select(Camera).where(Camera.account_id == account_id, col(Camera.blink_id).in_(cams)))
    }
    for cam in set(cams) - set(names):
        name = s.exec(
            select(Clip.camera_name)
            .where(Clip.account_id == account_id, Clip.camera_blink_id == cam)
            .where(col(Clip.camera_name).is_not(None))
            .order_by(col(Clip.created_at).desc())
            .limit(1)
        ).first()
        if name:
            names[cam] = name
    return names


def _had_usb_clips(s: Session, account_id: int, module: int) -> bool:
    q = select(Clip.id).where(
        Clip.account_id == account_id,
        Clip.source == ClipSource.local.value,
        Clip.sync_module_blink_id == module,
    )
    return s.exec(q.limit(1)).first() is not None


def check(
    engine: Engine, cfg: SilenceSettings, notifier: Sender | None = None, now: datetime | None = None
) -> SilenceReport:
    """Compare what holds now with the open alerts: raise the new ones once, clear the ones that ended
    (each with one notification), keep the rest quiet."""
    now = now or datetime.now(UTC)
    report = SilenceReport()
    if not cfg.enabled:
        return report
    with session_scope(engine) as s:
        accounts = [a.id for a in s.exec(select(Account)) if a.id is not None]
        current: dict[tuple[int, str, str], Alert] = {}
        for account_id in accounts:
            for alert in evaluate(s, account_id, cfg, now):
                current[alert.key] = alert
        stored = {(r.account_id, r.kind, r.subject): r for r in s.exec(select(SilenceAlert))}
        for key, alert in current.items():
            if key not in stored:
                s.add(
                    SilenceAlert(
                        account_id=alert.account_id,
                        kind=alert.kind,
                        subject=alert.subject,
                        name=alert.name,
                        raised_at=now,
                        detail=alert.detail,
                    )
                )
                report.raised.append(alert)
            report.open.append(alert)
        for key, row in stored.items():
            if key not in current:
                s.delete(row)
                report.cleared.append(
                    Alert(account_id=row.account_id, kind=row.kind, subject=row.subject, name=row.name)  # type: ignore[arg-type]
                )
    for alert in report.raised:
        log.warning("silence: %s: %s", alert.title(), alert.detail)
        if notifier is not None:
            notifier.send(alert.title(), alert.detail)
    for alert in report.cleared:
        log.info("silence: %s", alert.title(cleared=True))
        if notifier is not None:
            notifier.send(alert.title(cleared=True), "cleared")
    return report


def open_alerts(engine: Engine) -> list[SilenceAlert]:
    """The open alerts (status page, Home Assistant's "<camera> silent" binary sensors)."""
    with session_scope(engine) as s:
        rows = list(s.exec(select(SilenceAlert).order_by(SilenceAlert.raised_at)))  # type: ignore[arg-type]
        for r in rows:
            s.expunge(r)
        return rows
