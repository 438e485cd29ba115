"""Where a clip lands: a template rendered in the clip's local time, every segment sanitised."""

from __future__ import annotations

import re
import string
import unicodedata
from datetime import UTC, datetime, tzinfo
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
# Filesystems allow 255 bytes per name. A folder segment keeps 200; a file name keeps 160 bytes of stem
# so that every sibling (".generated.jpg", ".h265.mp4"), a conflict suffix ("-12") and the ".part"
# temp name of a disk put still fit. Cuts are by UTF-8 bytes, never inside a character.
MAX_SEGMENT_BYTES = 200
MAX_STEM_BYTES = 160
EXTENSION = ".mp4"


def cut_utf8(text: str, limit: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding fits ``limit`` bytes."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", errors="ignore")


def sanitize_segment(value: str, limit: int = MAX_SEGMENT_BYTES) -> str:
    """One path segment that can neither escape the root nor hide: no separators, no '..', no controls."""
    text = unicodedata.normalize("NFC", str(value))
    text = _BAD.sub("_", text).strip().strip(".")
    text = re.sub(r"\s+", " ", text)
    if not text or set(text) <= {".", " "}:
        text = "_"
    return cut_utf8(text, limit).rstrip(" .") or "_"


def sanitize_file_name(value: str) -> str:
    """The last segment: the stem is cut to fit, the extension never."""
    stem = value[: -len(EXTENSION)] if value.endswith(EXTENSION) else value
    return sanitize_segment(stem, MAX_STEM_BYTES) + EXTENSION


def zone(name: str | None) -> tzinfo | None:
    """The IANA zone, or None for anything that is not one ("America", "../etc", "")."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # a folder of zones raises IsADirectoryError
        return None


def local_time(created_at: datetime, time_zone: str | None) -> datetime:
    aware = as_utc(created_at)
    return aware.astimezone(zone(time_zone) or UTC)


def template_problem(template: str) -> str | None:
    """Why ``template`` cannot name clips, or None when it can (used by config validation)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return str(exc)
    names: set[str] = set()
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field == "" or field.isdigit():
            return f"positional field {{{field}}}: name a field, one of {sorted(_FIELDS)}"
        if spec or conversion:
            return f"field {{{field}}}: no format spec or conversion (use {{{field.split('.')[0]}}})"
        names.add(field)
    unknown = names - _FIELDS
    if unknown:
        return f"unknown field(s) {sorted(unknown)}; use {sorted(_FIELDS)}"
    if not template.endswith(EXTENSION):
        return "must end with .mp4"
    if not names:
        return "names every clip the same: use fields such as {camera}, {date}, {time}, {id}"
    return None


def validate_template(template: str) -> None:
    problem = template_problem(template)
    if problem is not None:
        raise ConfigError(f"invalid setting sync.filename_template: {problem}")


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
    parts = [p for p in rendered.split("/") if p not in ("", ".")]
    if not parts:
        parts = [f"{safe['id']}{EXTENSION}"]
    segments = [sanitize_segment(p) for p in parts[:-1]] + [sanitize_file_name(parts[-1])]
    return "/".join(segments)


def with_suffix_number(key: str, n: int) -> str:
    """'a/b/c.mp4', 2 -> 'a/b/c-2.mp4': the name a clip gets when another clip owns its key."""
    stem = key[: -len(EXTENSION)] if key.endswith(EXTENSION) else key
    return f"{stem}-{n}{EXTENSION}"


def sibling(key: str, suffix: str) -> str:
    """'a/b/c.mp4' + '.jpg' -> 'a/b/c.jpg'."""
    stem = key[: -len(".mp4")] if key.endswith(".mp4") else key
    return stem + suffix
