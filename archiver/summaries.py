"""Daily summary videos: one video per camera and local day, the day's clips in time order with the
camera's name and time burned in (optionally as a time-lapse), built after a sync for every camera-day
whose clips changed since its summary was made (USB clips and late cloud clips arrive after the day).

A summary is stored like any derived file, in every destination, under ``[summaries] template``
(``summaries/{network}/{camera}/{date}.mp4``), and recorded as a ``StoredObject`` of kind
``daily_summary`` on the day's newest clip: verify checks it like any object, and retention removes it
with that clip, the last of its day to go when clips go oldest first. A failure is reported, never a
failed clip: the clips are archived whatever happens here.
"""

from __future__ import annotations

import hashlib
import logging
import resource
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from archiver.config import Settings
from archiver.db.models import Clip, ClipState, StoredObject
from archiver.destinations.base import Destination, check_key

log = logging.getLogger(__name__)
SUMMARY_KIND = "daily_summary"


class CameraDay(BaseModel):
    account_id: int
    camera_id: int
    camera: str
    network: str
    time_zone: str | None
    day: date


class SummaryReport(BaseModel):
    built: list[str] = Field(default_factory=list)  # the keys written
    failed: list[str] = Field(default_factory=list)  # one line per camera-day that failed
    video_s: float = 0.0  # seconds of summary video made
    cpu_s: float = 0.0  # CPU of this process and its ffmpeg children


def summary_key(template: str, day: CameraDay) -> str:
    from archiver.pipeline.naming import sanitize_segment

    key = template.format(
        network=sanitize_segment(day.network), camera=sanitize_segment(day.camera), date=day.day.isoformat()
    )
    return check_key(key, "summaries")


def due_days(s: Session) -> list[CameraDay]:
    """Camera-days with a stored clip newer (by when it was archived) than the day's summary, or with no
    summary yet. Each camera is read through the (state, account, camera, created_at) index."""
    from archiver.web import queries

    days: dict[tuple[int, int, date], CameraDay] = {}
    for account_id, camera_id in queries.camera_keys(s):
        if camera_id is None:
            continue
        latest = queries.latest_clip(s, account_id, camera_id)
        if latest is None:
            continue
        rows = s.exec(
            select(Clip.id, Clip.created_at, Clip.stored_at, Clip.time_zone).where(
                Clip.state == ClipState.stored,
                Clip.account_id == account_id,
                Clip.camera_blink_id == camera_id,
            )
        ).all()
        by_day: dict[date, list[tuple[int, datetime | None]]] = {}
        for clip_id, created_at, stored_at, tz_name in rows:
            by_day.setdefault(queries.local(created_at, tz_name).date(), []).append((clip_id, stored_at))
        built = {
            clip_id: stored_at
            for clip_id, stored_at in s.exec(
                select(StoredObject.clip_id, StoredObject.stored_at).where(
                    StoredObject.kind == SUMMARY_KIND,
                    col(StoredObject.clip_id).in_([r[0] for r in rows]),
                )
            ).all()
        }
        for day, clips in by_day.items():
            made = [built[c] for c, _ in clips if c in built]
            newest_store = max((queries.aware(st) for _, st in clips if st is not None), default=None)
            if made and newest_store is not None and newest_store <= queries.aware(min(made)):
                continue
            days[(account_id, camera_id, day)] = CameraDay(
                account_id=account_id,
                camera_id=camera_id,
                camera=latest.camera_name or f"camera {camera_id}",
                network=latest.network_name or "?",
                time_zone=latest.time_zone,
                day=day,
            )
    return sorted(days.values(), key=lambda d: (d.day, d.network, d.camera))


def _day_clips(s: Session, day: CameraDay) -> list[Clip]:
    from archiver.web import queries

    rows = s.exec(
        select(Clip).where(
            Clip.state == ClipState.stored,
            Clip.account_id == day.account_id,
            Clip.camera_blink_id == day.camera_id,
        )
    ).all()
    clips = [c for c in rows if queries.local(c.created_at, c.time_zone).date() == day.day]
    return sorted(clips, key=lambda c: (queries.aware(c.created_at), c.id or 0))


def build_day(
    settings: Settings, engine: Engine, destinations: Sequence[Destination], day: CameraDay, ffmpeg: str
) -> tuple[str, float]:
    """Build, store everywhere and record one camera-day's summary; returns (key, seconds of video)."""
    from archiver.export import Selection, plan, write_video

    cfg = settings.summaries
    key = summary_key(cfg.template, day)
    with Session(engine) as s:
        clips = _day_clips(s, day)
        ids = [c.id for c in clips if c.id is not None]
        chosen = plan(s, Selection(clip_ids=ids), destinations[0].name)
    settings.staging_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=settings.staging_dir, prefix="summary-") as tmp:
        out = Path(tmp) / "summary.mp4"
        result = write_video(
            chosen,
            destinations[0],
            str(out),
            ffmpeg=ffmpeg,
            work_dir=tmp,
            speed=cfg.speed,
            burn_in=cfg.burn_in,
        )
        digest = hashlib.sha256()
        with out.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        sha256, size = digest.hexdigest(), out.stat().st_size
        meta = {
            "kind": SUMMARY_KIND,
            "camera": day.camera,
            "network": day.network,
            "date": day.day.isoformat(),
            "clips": str(len(chosen.items)),
        }
        for dest in destinations:
            dest.put(out, key, sha256=sha256, metadata=meta)
    newest = chosen.items[-1].clip_id
    with Session(engine) as s:
        for old in s.exec(
            select(StoredObject).where(StoredObject.kind == SUMMARY_KIND, col(StoredObject.clip_id).in_(ids))
        ).all():
            s.delete(old)
        s.flush()
        now = datetime.now(UTC)
        for dest in destinations:
            row = StoredObject(clip_id=newest, destination=dest.name, kind=SUMMARY_KIND, key=key, size=size)
            row.sha256, row.stored_at = sha256, now
            s.add(row)
        s.commit()
    return key, result.duration


def run_summaries(
    settings: Settings, engine: Engine, destinations: Sequence[Destination] | None = None
) -> SummaryReport:
    """Build every due camera-day's summary. Never raises for one day: its failure is a line in the
    report."""
    from archiver.destinations import build_destinations
    from archiver.media.ffmpeg import find_ffmpeg

    report = SummaryReport()
    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        dests = list(destinations) if destinations is not None else build_destinations(settings)
        ffmpeg = find_ffmpeg(settings.processing.ffmpeg)
        with Session(engine) as s:
            days = due_days(s)
    except Exception as exc:
        report.failed.append(f"summaries: {type(exc).__name__}: {exc}")
        return report
    for day in days:
        began = time.monotonic()
        try:
            key, seconds = build_day(settings, engine, dests, day, ffmpeg)
        except Exception as exc:  # a summary never fails a sync
            line = f"{day.camera} {day.day}: {type(exc).__name__}: {exc}"
            log.warning("daily summary not built: %s", line)
            report.failed.append(line)
            continue
        report.built.append(key)
        report.video_s += seconds
        log.info("daily summary %s (%.0f s of video) in %.1f s", key, seconds, time.monotonic() - began)
    after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    report.cpu_s = sum(
        (a.ru_utime + a.ru_stime) - (b.ru_utime + b.ru_stime) for a, b in zip(after, before, strict=True)
    )
    return report
