"""Exports: a selection of stored clips (cameras or a network, a time range, a source, or clip ids)
handed over as one zip with checksums, or as one video.

The zip holds the original files byte for byte (clip, thumbnails, sidecar) under their archive keys, a
``manifest.csv`` (one row per clip: camera, network, local and UTC time, duration, Blink id, source,
sha256, size, when archived, archive key), a ``README.txt`` and a ``SHA256SUMS`` in the format of
``sha256sum``: ``sha256sum -c SHA256SUMS`` in the unzipped folder checks every file without this tool.

Objects are read only through the Destination interface (:meth:`Destination.open`) and written into the
zip as they arrive (``ZipFile.open(name, "w")`` on a non-seekable sink: data descriptors), so neither the
CLI nor the web UI ever holds or stages the whole zip. Times in a selection are the network's local time
unless they carry an offset.
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import PurePosixPath
from typing import BinaryIO

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from archiver.db.models import Clip, ClipState, ObjectKind, StoredObject
from archiver.destinations.base import Destination
from archiver.errors import ArchiverError, ConfigError

EXPORT_KINDS = (ObjectKind.clip, ObjectKind.thumbnail, ObjectKind.generated_thumbnail, ObjectKind.sidecar)
MANIFEST_FIELDS = (
    "camera",
    "network",
    "local_time",
    "time_zone",
    "utc_time",
    "duration_s",
    "blink_id",
    "source",
    "file",
    "sha256",
    "size",
    "archived_at_utc",
    "archive_key",
    "destination",
)
_COMPRESSED_SUFFIXES = {".json", ".csv", ".txt"}
_WIDEN = timedelta(hours=15)  # any zone's local day lies within UTC +-15 h of the same wall-clock time
MAX_IDS = 5000


class ExportError(ConfigError):
    """The selection is empty or cannot be read as asked: a person must change it (exit 2)."""


class ExportIncomplete(ArchiverError):
    """The export finished but some file could not be read or did not match its checksum (exit 1)."""


class Bound(BaseModel):
    """One end of a time range: ``at`` naive = the network's local time, aware = that instant."""

    at: datetime
    inclusive: bool = True


class Selection(BaseModel):
    cameras: list[str] = Field(default_factory=list)  # camera names (any network), case-insensitive
    network: str | None = None
    start: Bound | None = None
    end: Bound | None = None
    source: str | None = None  # "cloud" | "local"
    clip_ids: list[int] = Field(default_factory=list)  # explicit clips (the web UI's checkboxes)
    tags: list[str] = Field(default_factory=list)  # clips with any of these tags (person, car...)
    min_activity: float | None = Field(default=None, ge=0.0, le=1.0)  # clips at least this active

    def describe(self) -> str:
        parts = []
        if self.cameras:
            parts.append("camera " + ", ".join(self.cameras))
        if self.network:
            parts.append(f"network {self.network}")
        if self.start:
            parts.append(f"from {self.start.at.isoformat(' ')}")
        if self.end:
            parts.append(f"to {self.end.at.isoformat(' ')}")
        if self.source:
            parts.append(f"source {self.source}")
        if self.clip_ids:
            parts.append(f"{len(self.clip_ids)} chosen clips")
        if self.tags:
            parts.append("tagged " + " or ".join(self.tags))
        if self.min_activity:
            parts.append(f"activity at least {self.min_activity:g}")
        return ", ".join(parts) or "every clip"


class ExportFile(BaseModel):
    kind: str
    key: str
    size: int
    sha256: str


class ExportItem(BaseModel):
    clip_id: int
    camera: str
    network: str
    time_zone: str | None
    created_at: datetime  # UTC
    local_at: datetime
    duration: float | None
    width: int | None = None
    height: int | None = None
    blink_id: str
    source: str
    archived_at: datetime | None
    archive_key: str | None
    files: list[ExportFile]

    @property
    def video(self) -> ExportFile | None:
        return next((f for f in self.files if f.kind == ObjectKind.clip), None)


class ExportPlan(BaseModel):
    destination: str
    items: list[ExportItem]
    missing: list[str] = Field(default_factory=list)  # clips selected but not held by the destination

    @property
    def total_bytes(self) -> int:
        return sum(f.size for i in self.items for f in i.files)


class ExportResult(BaseModel):
    clips: int = 0
    files: int = 0
    bytes: int = 0
    problems: list[str] = Field(default_factory=list)


# -- parsing ------------------------------------------------------------------------------------------------
def parse_bound(text: str, *, end: bool) -> Bound:
    """``2026-12-06`` (a whole local day: its start, or for ``end`` the start of the next day, exclusive),
    ``2026-12-06T01:00`` / ``2026-12-06 01:00`` (local), or with an offset / ``Z`` (that instant)."""
    value = text.strip()
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            if end:
                return Bound(at=datetime.combine(d + timedelta(days=1), time()), inclusive=False)
            return Bound(at=datetime.combine(d, time()))
        at = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T", 1))
    except (ValueError, OverflowError):
        raise ExportError(
            f"{'--to' if end else '--from'} {text!r}: give a date or a time such as 2026-12-06, "
            "2026-12-06T01:00 (the network's local time) or 2026-12-06T01:00+01:00"
        ) from None
    return Bound(at=at)


def _in_zone(bound: Bound, tz_name: str | None) -> datetime:
    from archiver.web.queries import zone

    at = bound.at
    return at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=zone(tz_name)).astimezone(UTC)


def _matches(clip: Clip, sel: Selection) -> bool:
    from archiver.web.queries import aware

    at = aware(clip.created_at)
    if sel.start is not None and at < _in_zone(sel.start, clip.time_zone):
        return False
    if sel.end is not None:
        end = _in_zone(sel.end, clip.time_zone)
        if at > end or (at == end and not sel.end.inclusive):
            return False
    return True


# -- selecting ----------------------------------------------------------------------------------------------
def plan(s: Session, sel: Selection, destination: str) -> ExportPlan:
    """The stored clips ``sel`` names, oldest first, with the files ``destination`` holds for each. Raises
    :class:`ExportError` for an unknown camera or network and for an empty selection."""
    from archiver.analysis.store import clip_filters
    from archiver.web import queries

    conds: list[object] = [col(Clip.state) == ClipState.stored, *clip_filters(sel.tags, sel.min_activity)]
    if sel.source:
        conds.append(Clip.source == sel.source)
    lo = hi = None
    if sel.start is not None:
        lo = sel.start.at if sel.start.at.tzinfo else sel.start.at.replace(tzinfo=UTC) - _WIDEN
    if sel.end is not None:
        hi = sel.end.at if sel.end.at.tzinfo else sel.end.at.replace(tzinfo=UTC) + _WIDEN
    if lo is not None:
        conds.append(col(Clip.created_at) >= lo.astimezone(UTC))
    if hi is not None:
        conds.append(col(Clip.created_at) <= hi.astimezone(UTC))
    clips: list[Clip] = []
    if sel.clip_ids:
        ids = sorted(set(sel.clip_ids))[:MAX_IDS]
        clips = list(s.exec(select(Clip).where(col(Clip.id).in_(ids), *conds)).all())  # type: ignore[arg-type]
    else:
        names = {n.casefold() for n in sel.cameras}
        keys = []
        seen_names: set[str] = set()
        seen_networks: set[str] = set()
        for account_id, camera_id in queries.camera_keys(s):
            latest = queries.latest_clip(s, account_id, camera_id)
            if latest is None:
                continue
            cam = (latest.camera_name or "").casefold()
            net = (latest.network_name or "").casefold()
            seen_names.add(latest.camera_name or "")
            seen_networks.add(latest.network_name or "")
            if names and cam not in names:
                continue
            if sel.network and net != sel.network.casefold():
                continue
            keys.append((account_id, camera_id))
        known = {n.casefold() for n in seen_names}
        unknown = [n for n in sel.cameras if n.casefold() not in known]
        if unknown:
            raise ExportError(
                f"no camera named {', '.join(map(repr, unknown))} has stored clips "
                f"(cameras: {', '.join(sorted(n for n in seen_names if n)) or 'none'})"
            )
        if sel.network and sel.network.casefold() not in {n.casefold() for n in seen_networks}:
            raise ExportError(
                f"no network named {sel.network!r} has stored clips "
                f"(networks: {', '.join(sorted(n for n in seen_networks if n)) or 'none'})"
            )
        for account_id, camera_id in keys:
            clips += s.exec(
                select(Clip).where(
                    Clip.account_id == account_id,
                    queries.camera_is(camera_id),  # type: ignore[arg-type]
                    *conds,  # type: ignore[arg-type]
                )
            ).all()
    clips = [c for c in clips if _matches(c, sel)]
    clips.sort(key=lambda c: (queries.aware(c.created_at), c.id or 0))
    if not clips:
        raise ExportError(f"no stored clip matches the selection ({sel.describe()})")
    objects: dict[int, list[StoredObject]] = {}
    ids = [c.id for c in clips if c.id is not None]
    for i in range(0, len(ids), 500):
        for o in s.exec(
            select(StoredObject).where(
                col(StoredObject.clip_id).in_(ids[i : i + 500]),
                StoredObject.destination == destination,
                col(StoredObject.kind).in_([k.value for k in EXPORT_KINDS]),
            )
        ).all():
            objects.setdefault(o.clip_id, []).append(o)
    items: list[ExportItem] = []
    missing: list[str] = []
    for c in clips:
        assert c.id is not None
        objs = objects.get(c.id, [])
        local_at = queries.local(c.created_at, c.time_zone)
        label = f"{c.camera_name or '?'} {local_at:%Y-%m-%d %H:%M:%S}"
        if not any(o.kind == ObjectKind.clip for o in objs):
            missing.append(f"{label}: not in destination {destination!r}")
            continue
        order = {k.value: n for n, k in enumerate(EXPORT_KINDS)}
        objs.sort(key=lambda o: order.get(o.kind, 99))
        items.append(
            ExportItem(
                clip_id=c.id,
                camera=c.camera_name or "?",
                network=c.network_name or "?",
                time_zone=c.time_zone,
                created_at=queries.aware(c.created_at).astimezone(UTC),
                local_at=local_at,
                duration=c.duration,
                width=c.width,
                height=c.height,
                blink_id=c.blink_id,
                source=c.source,
                archived_at=queries.aware(c.stored_at).astimezone(UTC) if c.stored_at else None,
                archive_key=c.archive_key,
                files=[ExportFile(kind=o.kind, key=o.key, size=o.size, sha256=o.sha256) for o in objs],
            )
        )
    if not items:
        raise ExportError(
            f"none of the {len(clips)} selected clips is held by destination {destination!r}"
            " (choose another with --destination)"
        )
    return ExportPlan(destination=destination, items=items, missing=missing)


def pick_destination(destinations: Sequence[Destination], name: str | None) -> Destination:
    if not destinations:
        raise ExportError("no destination is configured")
    if name is None:
        return destinations[0]
    for d in destinations:
        if d.name == name:
            return d
    raise ExportError(
        f"no destination named {name!r} (destinations: {', '.join(d.name for d in destinations)})"
    )


# -- the zip ------------------------------------------------------------------------------------------------
class _Sink(io.RawIOBase):
    """What zipfile writes into: collected until the generator hands the bytes on (not seekable, so
    zipfile writes data descriptors instead of seeking back)."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._parts.append(bytes(b))
        return len(b)

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def _zip_time(at: datetime) -> tuple[int, int, int, int, int, int]:
    if at.year < 1980:
        return (1980, 1, 1, 0, 0, 0)
    return (at.year, at.month, at.day, at.hour, at.minute, at.second)


def _info(name: str, at: datetime, size: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_zip_time(at))
    compressed = PurePosixPath(name).suffix.lower() in _COMPRESSED_SUFFIXES
    info.compress_type = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    info.file_size = size  # decides zip64 up front (the size is known)
    info.external_attr = 0o644 << 16
    return info


def sums_line(digest: str, name: str) -> str:
    """One line of ``sha256sum`` output (GNU's escaping for a backslash or newline in the name)."""
    if "\\" in name or "\n" in name:
        return "\\" + digest + "  " + name.replace("\\", "\\\\").replace("\n", "\\n") + "\n"
    return f"{digest}  {name}\n"


def manifest_csv(items: Sequence[ExportItem], destination: str) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(MANIFEST_FIELDS)
    for it in items:
        video = it.video
        assert video is not None
        w.writerow(
            [
                it.camera,
                it.network,
                it.local_at.isoformat(),
                it.time_zone or "UTC",
                it.created_at.isoformat(),
                f"{it.duration:.3f}" if it.duration is not None else "",
                it.blink_id,
                it.source,
                video.key,
                video.sha256,
                video.size,
                it.archived_at.isoformat() if it.archived_at else "",
                it.archive_key or video.key,
                destination,
            ]
        )
    return buf.getvalue().encode()


def readme_text(plan: ExportPlan, made_at: datetime, selection: str) -> bytes:
    return (
        "Blink camera clips exported by blink-archiver\n"
        f"Exported: {made_at.astimezone(UTC).isoformat(timespec='seconds')}\n"
        f"Selection: {selection}\n"
        f"Clips: {len(plan.items)} (from destination {plan.destination!r})\n\n"
        "Every clip is the original file as Blink served it, byte for byte, with its thumbnail and a JSON\n"
        "sidecar describing it. manifest.csv lists the clips (camera, network, local and UTC time,\n"
        "duration, Blink id, source, sha256, size, when it was archived, its archive key).\n\n"
        "To check that no file was changed, in this folder run:\n\n"
        "    sha256sum -c SHA256SUMS\n\n"
        "(macOS: shasum -a 256 -c SHA256SUMS; Windows PowerShell: Get-FileHash -Algorithm SHA256 FILE,\n"
        "compared with the line for FILE in SHA256SUMS.) Every line must say OK.\n"
    ).encode()


def zip_chunks(
    plan: ExportPlan,
    dest: Destination,
    *,
    selection: str = "",
    result: ExportResult | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[bytes]:
    """The export zip as a stream of byte chunks, read from ``dest`` as it is written. A file that cannot
    be read or whose bytes do not match the recorded sha256 is named in ``PROBLEMS.txt`` (and in
    ``result.problems``); the others are still exported."""
    result = result if result is not None else ExportResult()
    sink = _Sink()
    sums: list[str] = []
    made_at = datetime.now(UTC)
    with zipfile.ZipFile(sink, "w", allowZip64=True) as zf:  # type: ignore[arg-type]
        used: set[str] = set()
        for item in plan.items:
            for f in item.files:
                if f.key in used:
                    continue
                used.add(f.key)
                digest = hashlib.sha256()
                written = 0
                try:
                    with zf.open(_info(f.key, item.local_at, f.size), "w", force_zip64=f.size > 2**31) as out:
                        for chunk in dest.open(f.key):
                            out.write(chunk)
                            digest.update(chunk)
                            written += len(chunk)
                            if progress is not None:
                                progress(len(chunk))
                            data = sink.take()
                            if data:
                                yield data
                except Exception as exc:  # one unreadable file must not lose the others
                    result.problems.append(f"{f.key}: could not be read ({type(exc).__name__}: {exc})")
                    yield sink.take()
                    continue
                hexdigest = digest.hexdigest()
                if hexdigest != f.sha256 or written != f.size:
                    result.problems.append(
                        f"{f.key}: read {written} bytes with sha256 {hexdigest}, but {f.size} bytes with "
                        f"sha256 {f.sha256} were archived (run `archiver verify --repair`)"
                    )
                sums.append(sums_line(hexdigest, f.key))
                result.files += 1
                result.bytes += written
                yield sink.take()
            result.clips += 1
        for name, data in (
            ("manifest.csv", manifest_csv(plan.items, plan.destination)),
            ("README.txt", readme_text(plan, made_at, selection)),
        ):
            zf.writestr(_info(name, made_at, len(data)), data)
            sums.append(sums_line(hashlib.sha256(data).hexdigest(), name))
        problems = result.problems + [f"not exported: {m}" for m in plan.missing]
        if problems:
            text = ("\n".join(problems) + "\n").encode()
            zf.writestr(_info("PROBLEMS.txt", made_at, len(text)), text)
            sums.append(sums_line(hashlib.sha256(text).hexdigest(), "PROBLEMS.txt"))
        sums_data = "".join(sums).encode()
        zf.writestr(_info("SHA256SUMS", made_at, len(sums_data)), sums_data)
        yield sink.take()
    yield sink.take()


def write_zip(
    plan: ExportPlan,
    dest: Destination,
    out: BinaryIO,
    *,
    selection: str = "",
    progress: Callable[[int], None] | None = None,
) -> ExportResult:
    result = ExportResult()
    for chunk in zip_chunks(plan, dest, selection=selection, result=result, progress=progress):
        if chunk:
            out.write(chunk)
    return result


def zip_name(sel: Selection, now: datetime | None = None) -> str:
    """An ASCII file name for the zip (it goes into a Content-Disposition header)."""
    import re

    what = re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(sel.cameras) or sel.network or "clips").strip("_")
    return f"blink-{what[:60] or 'clips'}-{(now or datetime.now(UTC)):%Y%m%d-%H%M%S}.zip"


# -- one video ----------------------------------------------------------------------------------------------
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
)
GAP_MARK_S = 60.0  # a pause longer than this between clips is written on the next clip


class VideoResult(BaseModel):
    clips: int = 0
    duration: float = 0.0
    burned_in: bool = True
    notes: list[str] = Field(default_factory=list)


def find_font() -> str | None:
    """A TrueType font for the burned-in text: a common system font (Debian: fonts-dejavu-core), else any
    .ttf under /usr/share/fonts; None when there is none."""
    import os
    from pathlib import Path

    configured = os.environ.get("ARCHIVER_FONT")
    for path in ((configured,) if configured else ()) + FONT_CANDIDATES:
        if path and Path(path).is_file():
            return path
    for root in ("/usr/share/fonts", "/usr/local/share/fonts"):
        found = sorted(Path(root).rglob("*.ttf")) if Path(root).is_dir() else []
        if found:
            return str(found[0])
    return None


def has_drawtext(ffmpeg: str) -> bool:
    from archiver.media.ffmpeg import run

    try:
        out = run([ffmpeg, "-hide_banner", "-nostdin", "-filters"], timeout=30).stdout.decode(
            "utf-8", "replace"
        )
    except ArchiverError:
        return False
    return any(line.split()[1:2] == ["drawtext"] for line in out.splitlines() if line.strip())


def _filter_value(text: str) -> str:
    """A value inside a filter option (``textfile=...``): escape the option and the graph level."""
    for ch in ("\\", "'", ":", ",", ";", "[", "]", "="):
        text = text.replace(ch, "\\" + ch)
    return text


def _even(n: float) -> int:
    return max(2, int(n) // 2 * 2)


def _canvas(items: Sequence[ExportItem]) -> tuple[int, int]:
    """The output size: the largest clip (at most 1920x1080), at least 640x360 so the text is legible."""
    w = max((i.width or 0 for i in items), default=0) or 1280
    h = max((i.height or 0 for i in items), default=0) or 720
    scale = min(1920 / w, 1080 / h, 1.0)
    w, h = w * scale, h * scale
    if h < 360:
        w, h = w * 360 / h, 360
    return _even(w), _even(h)


def _gap_text(seconds: float) -> str:
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"after a gap of {minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"after a gap of {hours} h {minutes:02d} min"


def clip_caption(item: ExportItem) -> str:
    zone_name = item.local_at.tzname() or "UTC"
    return f"{item.camera} · {item.local_at:%Y-%m-%d %H:%M:%S} {zone_name}"


def write_video(
    plan: ExportPlan,
    dest: Destination,
    out: str,
    *,
    ffmpeg: str,
    work_dir: str | None = None,
    progress: Callable[[int], None] | None = None,
    timeout_per_clip: float = 300,
    speed: float = 1.0,
    burn_in: bool = True,
) -> VideoResult:
    """One MP4 of the plan's clips in time order, each with its camera and local time burned in (and a
    pause longer than :data:`GAP_MARK_S` named on the clip after it). Each original is copied out of the
    destination into a scratch folder and re-encoded from there; the archive is never written. The output
    has no sound (the zip export keeps the originals with theirs)."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from archiver.media.ffmpeg import GLOBAL_ARGS, encoders, path_arg, run

    result = VideoResult()
    font = find_font() if burn_in else None
    if not burn_in:
        result.burned_in = False
    elif font is None or not has_drawtext(ffmpeg):
        result.burned_in = False
        result.notes.append(
            "no burned-in camera name and time: "
            + (
                "no font found (install fonts-dejavu-core)"
                if font is None
                else f"{ffmpeg} has no drawtext filter"
            )
        )
    width, height = _canvas(plan.items)
    codec = (
        ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23"]
        if "libx264" in encoders(ffmpeg)
        else [
            "-c:v",
            "mpeg4",
            "-q:v",
            "3",
        ]
    )
    target = Path(out)
    part = target.with_name(target.name + ".part")
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="archiver-video-") as tmp:
        scratch = Path(tmp)
        segments: list[Path] = []
        prev_end: datetime | None = None
        for n, item in enumerate(plan.items):
            video = item.video
            assert video is not None
            src = scratch / f"in{n}{PurePosixPath(video.key).suffix or '.mp4'}"
            with src.open("wb") as f:
                for chunk in dest.open(video.key):
                    f.write(chunk)
            caption = clip_caption(item)
            if prev_end is not None and (item.created_at - prev_end).total_seconds() > GAP_MARK_S:
                caption += "\n" + _gap_text((item.created_at - prev_end).total_seconds())
            prev_end = item.created_at + timedelta(seconds=item.duration or 0)
            vf = (
                (f"setpts=PTS/{speed:g}," if speed != 1 else "")
                + f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
                f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps=25,format=yuv420p"
            )
            if result.burned_in and font is not None:
                text_file = scratch / f"caption{n}.txt"
                text_file.write_text(caption, encoding="utf-8")
                size = max(14, height // 22)
                vf += (
                    f",drawtext=fontfile={_filter_value(font)}:textfile={_filter_value(str(text_file))}"
                    f":expansion=none:x={size // 2}:y={size // 2}:fontsize={size}:fontcolor=white"
                    f":box=1:boxcolor=black@0.65:boxborderw={max(4, size // 3)}:line_spacing={size // 4}"
                )
            seg = scratch / f"seg{n:05d}.mp4"
            run(
                [
                    ffmpeg,
                    *GLOBAL_ARGS,
                    "-v",
                    "error",
                    "-y",
                    "-i",
                    path_arg(src),
                    "-map",
                    "0:v:0",
                    "-vf",
                    vf,
                    "-an",
                    *codec,
                    "-video_track_timescale",
                    "12800",
                    "-f",
                    "mp4",
                    path_arg(seg),
                ],
                timeout=timeout_per_clip,
            )
            src.unlink()
            segments.append(seg)
            result.clips += 1
            result.duration += (item.duration or 0.0) / speed
            if progress is not None:
                progress(1)
        listing = scratch / "segments.txt"
        listing.write_text("".join(f"file '{s.name}'\n" for s in segments), encoding="utf-8")
        try:
            run(
                [
                    ffmpeg,
                    *GLOBAL_ARGS,
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "concat",
                    "-safe",
                    "0",
                    "-i",
                    path_arg(listing),
                    "-c",
                    "copy",
                    "-movflags",
                    "+faststart",
                    "-f",
                    "mp4",
                    path_arg(part),
                ],
                timeout=timeout_per_clip * max(1, len(segments)),
            )
            os.replace(part, target)
        finally:
            if part.exists():
                part.unlink()
        shutil.rmtree(scratch, ignore_errors=True)
    return result
