"""Where a clip lands: a template rendered in the clip's local time, every segment sanitised."""

from __future__ import annotations

import re
import string
import unicodedata
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from archiver.errors import ConfigError
from archiver.util import as_utc

_BAD = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
_FIELDS = {
    "network",
    "camera",
    "date",
    "time",
    "id",
    "source",
    "camera_id",
    "network_id",
    "year",
    "month",
    "day",
    "utc",
}
MAX_SEGMENT = 120


def sanitize_segment(value: str) -> str:
    """One path segment that can neither escape the root nor hide: no separators, no '..', no controls."""
    text = unicodedata.normalize("NFC", str(value))
    text = _BAD.sub("_", text).strip().strip(".")
    text = re.sub(r"\s+", " ", text)
    if not text or set(text) <= {".", " "}:
        text = "_"
    return text[:MAX_SEGMENT].rstrip(" .") or "_"


def local_time(created_at: datetime, time_zone: str | None) -> datetime:
    aware = as_utc(created_at)
    if time_zone:
        try:
            return aware.astimezone(ZoneInfo(time_zone))
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return aware.astimezone(UTC)


def validate_template(template: str) -> None:
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    except ValueError as exc:
        raise ConfigError(f"invalid setting sync.filename_template: {exc}") from None
    unknown = names - _FIELDS
    if unknown:
        raise ConfigError(
            f"invalid setting sync.filename_template: unknown field(s) {sorted(unknown)}; "
            f"use {sorted(_FIELDS)}"
        )
    if not template.endswith(".mp4"):
        raise ConfigError("invalid setting sync.filename_template: must end with .mp4")


def clip_key(
    template: str,
    *,
    network: str | None,
    camera: str | None,
    clip_id: str,
    created_at: datetime,
    time_zone: str | None,
    source: str = "cloud",
    camera_id: int | None = None,
    network_id: int | None = None,
) -> str:
    """Relative POSIX key like 'Home/Front Door/2024-05-01/12-00-00_42.mp4' (local time of the clip)."""
    local = local_time(created_at, time_zone)
    values = {
        "network": network or f"network-{network_id}",
        "camera": camera or f"camera-{camera_id}",
        "date": local.strftime("%Y-%m-%d"),
        "time": local.strftime("%H-%M-%S"),
        "id": clip_id,
        "source": source,
        "camera_id": camera_id if camera_id is not None else "",
        "network_id": network_id if network_id is not None else "",
        "year": local.strftime("%Y"),
        "month": local.strftime("%m"),
        "day": local.strftime("%d"),
        "utc": created_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ"),
    }
    safe = {k: sanitize_segment(str(v)) for k, v in values.items()}
    rendered = template.format(**safe)
    segments = [sanitize_segment(s) for s in rendered.split("/") if s not in ("", ".")]
    return "/".join(segments)


def sibling(key: str, suffix: str) -> str:
    """'a/b/c.mp4' + '.jpg' -> 'a/b/c.jpg'."""
    stem = key[: -len(".mp4")] if key.endswith(".mp4") else key
    return stem + suffix
