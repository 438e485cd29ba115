"""Where analysis results are kept in the database: one ``clip_analysis`` row per analysed clip (the
activity score, indexed for "minimum activity" filters; which detector versions ran; a failure and when
to try again) and one ``clip_tag`` row per tag (indexed by label, then clip, for "tag = person").
Both are an index of the sidecars' ``"analysis"`` (the archive stays the truth)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col, select

from archiver.analysis import Detection, Tag
from archiver.db.models import ClipAnalysis, ClipTag, utcnow


def versions(row: ClipAnalysis | None) -> dict[str, str]:
    if row is None or not row.detectors:
        return {}
    try:
        value = json.loads(row.detectors)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def record_success(
    s: Session, clip_id: int, results: dict[str, tuple[str, Detection]], now: datetime | None = None
) -> ClipAnalysis:
    """Record the results of the detectors that ran (``name -> (version, detection)``); results of other
    detectors recorded earlier are kept."""
    row = s.get(ClipAnalysis, clip_id) or ClipAnalysis(clip_id=clip_id)
    done = versions(row)
    for name, (version, found) in results.items():
        done[name] = version
        if found.activity is not None:
            row.activity = found.activity
        s.exec(delete(ClipTag).where(ClipTag.clip_id == clip_id, ClipTag.detector == name))  # type: ignore[call-overload,arg-type]
        for tag in found.tags:
            s.add(ClipTag(clip_id=clip_id, detector=name, **tag.model_dump()))
    row.detectors = json.dumps(done, sort_keys=True)
    row.analyzed_at = now or utcnow()
    row.attempts, row.error, row.next_attempt_at = 0, None, None
    s.add(row)
    return row


def record_failure(
    s: Session, clip_id: int, error: str, retry_after: timedelta, now: datetime | None = None
) -> ClipAnalysis:
    """A failed analysis: recorded with its reason, tried again after ``retry_after`` doubling."""
    row = s.get(ClipAnalysis, clip_id) or ClipAnalysis(clip_id=clip_id)
    row.attempts += 1
    row.error = error[:500]
    row.next_attempt_at = (now or utcnow()) + retry_after * (2 ** min(row.attempts - 1, 10))
    s.add(row)
    return row


def tags_of(s: Session, clip_id: int) -> list[Tag]:
    rows = s.exec(select(ClipTag).where(ClipTag.clip_id == clip_id).order_by(ClipTag.at_s, ClipTag.label))
    return [Tag(label=r.label, confidence=r.confidence, at_s=r.at_s) for r in rows]


def preview(
    s: Session, clip_id: int, results: dict[str, tuple[str, Detection]], now: datetime
) -> dict[str, object]:
    """What :func:`summary` will say once :func:`record_success` recorded ``results`` at ``now``,
    computed without writing (the sidecar is put before the database records it)."""
    row = s.get(ClipAnalysis, clip_id)
    done = versions(row)
    activity = row.activity if row is not None else None
    tags = [(name, t) for name, t in _tags_by_detector(s, clip_id) if name not in results]
    for name, (version, found) in results.items():
        done[name] = version
        if found.activity is not None:
            activity = found.activity
        tags.extend((name, t) for t in found.tags)
    ordered = sorted((t for _, t in tags), key=lambda t: (t.at_s, t.label))
    return {
        "activity": activity,
        "tags": [t.model_dump() for t in ordered],
        "detectors": done,
        "analyzed_at": now.astimezone(UTC).isoformat(),
    }


def _tags_by_detector(s: Session, clip_id: int) -> list[tuple[str, Tag]]:
    rows = s.exec(select(ClipTag).where(ClipTag.clip_id == clip_id))
    return [(r.detector, Tag(label=r.label, confidence=r.confidence, at_s=r.at_s)) for r in rows]


def summary(s: Session, clip_id: int) -> dict[str, object] | None:
    """The sidecar's ``"analysis"`` for a clip, from the database (None: not analysed yet)."""
    row = s.get(ClipAnalysis, clip_id)
    if row is None or row.analyzed_at is None:
        return None
    return {
        "activity": row.activity,
        "tags": [t.model_dump() for t in tags_of(s, clip_id)],
        "detectors": versions(row),
        "analyzed_at": row.analyzed_at.astimezone(UTC).isoformat(),
    }


def clips_with_tag(s: Session, label: str, clip_ids: Sequence[int] | None = None) -> set[int]:
    """Hook for the web UI / export filters: the clips carrying ``label``."""
    q = select(ClipTag.clip_id).where(ClipTag.label == label)
    if clip_ids is not None:
        q = q.where(ClipTag.clip_id.in_(list(clip_ids)))  # type: ignore[attr-defined]
    return set(s.exec(q))


def clip_filters(tags: Sequence[str] = (), min_activity: float | None = None) -> list[Any]:
    """Conditions on ``Clip`` for the web UI's and export's filters: any of ``tags`` (``clip_tag``'s
    label index), an activity of at least ``min_activity`` (``clip_analysis``'s activity index). Added to
    the page's own query: still one query per page."""
    from archiver.db.models import Clip

    conds: list[Any] = []
    labels = sorted({t.strip().lower() for t in tags if t.strip()})
    if labels:
        tagged = select(ClipTag.clip_id).where(col(ClipTag.label).in_(labels))
        conds.append(col(Clip.id).in_(tagged))
    if min_activity is not None and min_activity > 0:
        active = select(ClipAnalysis.clip_id).where(col(ClipAnalysis.activity) >= min_activity)
        conds.append(col(Clip.id).in_(active))
    return conds


def import_sidecar(s: Session, clip_id: int, doc: dict[str, object]) -> bool:
    """Hook for ``archiver reindex``: the database's scores and tags from a sidecar's ``"analysis"``
    (the archive is the truth). False when the sidecar has none (the clip is analysed again later)."""
    analysis = doc.get("analysis")
    if not isinstance(analysis, dict) or not isinstance(analysis.get("detectors"), dict):
        return False
    tags = [Tag.model_validate(t) for t in analysis.get("tags") or []]
    activity = analysis.get("activity")
    found = Detection(activity=activity if isinstance(activity, (int, float)) else None, tags=tags)
    detectors = {str(k): str(v) for k, v in analysis["detectors"].items()}
    # every tag is attributed to the first tag-giving detector (the sidecar does not say which gave it)
    results: dict[str, tuple[str, Detection]] = {name: (v, Detection()) for name, v in detectors.items()}
    first = next((n for n in detectors if n != "motion"), next(iter(detectors), "motion"))
    results[first] = (detectors.get(first, "0"), found)
    record_success(s, clip_id, results)
    return True


def last_tagged(s: Session, camera_blink_id: int, label: str) -> datetime | None:
    """Hook for Home Assistant's "<camera> last person" sensor: when the newest clip of the camera with
    ``label`` was recorded."""
    from sqlalchemy import func

    from archiver.db.models import Clip

    q = (
        select(func.max(Clip.created_at))
        .join(ClipTag, ClipTag.clip_id == Clip.id)  # type: ignore[arg-type]
        .where(Clip.camera_blink_id == camera_blink_id, ClipTag.label == label)
    )
    return s.exec(q).first()
