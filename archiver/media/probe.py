"""Is this file a playable clip, and what is in it?

:func:`probe` answers in up to three steps, cheapest first:

1. **MP4 box walk** (pure Python, reads only box headers, microseconds): for an ISO-BMFF file the
   top-level boxes must tile the file and include ``moov``. A download cut short leaves the last box
   (usually ``mdat``, or ``moov`` for non-faststart files) claiming more bytes than exist → rejected
   without starting ffmpeg.

Then, **in process** when PyAV is installed (it ships libav in its wheel; the default): open the file
with libav's demuxer, read the video stream's header, and demux every packet of it, decoding key frames
(``decode="keyframes"``) or every frame (``"full"``). A read error, a packet or frame libav flags as
corrupt, or a decoder error fails the check: the same checks as the ffmpeg run below, without starting
a process (about 2 ms for a simulator clip instead of about 20 ms for an ffmpeg process).

Without PyAV, **ffmpeg** does the same in a child process:

2. **Metadata**: ffprobe JSON when an ffprobe exists (the bundled imageio-ffmpeg has none), else the
   ``Input #0`` header that ffmpeg prints on stderr.
3. **Decode check**: ``ffmpeg -xerror [-skip_frame nokey] -i clip -map 0:v:0 -f null -``. The demuxer
   reads *every* packet (a truncated/corrupt ``mdat`` fails with "partial file"/"corrupt input packet",
   which ``-xerror`` turns into a non-zero exit); with ``decode="keyframes"`` (default) only key frames
   are decoded, so the cost is roughly one file read plus one decoded frame per GOP: a few ms for a
   2 s 320x240 clip, ~50-100 ms for a 10 s 720p clip (see ``bench/bench_processing.py``) — against
   roughly 10x that for ``decode="full"``. Without ffprobe, steps 2 and 3 are the same ffmpeg run
   (``-v info`` prints the header, ``-xerror`` fails the run on the first error).

Any failure → :class:`~archiver.errors.MediaError` with a one-line reason.
"""

from __future__ import annotations

import functools
import json
import os
import re
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal

from archiver.errors import MediaError
from archiver.media import ffmpeg as ff

Decode = Literal["keyframes", "full", "none"]


@dataclass(frozen=True)
class MediaInfo:
    duration: float  # seconds
    width: int
    height: int
    codec: str  # ffmpeg codec name: h264, hevc, av1, mjpeg ...
    format: str  # demuxer name(s): "mov,mp4,m4a,3gp,3g2,mj2", "image2" ...


# --------------------------------------------------------------------------------------------- sniffing


MP4_FIRST_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide")  # what an MP4 file may begin with


def starts_like_mp4(first_bytes: bytes) -> bool:
    """True if the bytes begin with a top-level box an MP4 may start with (``ftyp``, or ``moov``/``mdat``/
    ``free``/``wide`` as some encoders write first): the download's check that a body is a clip at all
    (not an HTML or JSON error page). :func:`looks_like_mp4` is the strict form."""
    return len(first_bytes) >= 8 and first_bytes[4:8] in MP4_FIRST_BOXES


def looks_like_mp4(first_bytes: bytes) -> bool:
    """True if the bytes start with an ISO-BMFF ``ftyp`` box (size at 0, type at offset 4)."""
    if len(first_bytes) < 8 or first_bytes[4:8] != b"ftyp":
        return False
    return struct.unpack(">I", first_bytes[:4])[0] >= 8


def looks_like_jpeg(first_bytes: bytes) -> bool:
    """True if the bytes start with a JPEG SOI marker followed by another marker (FF D8 FF)."""
    return first_bytes[:3] == b"\xff\xd8\xff"


_TOP_LEVEL_OK = re.compile(rb"^[\x20-\x7e]{4}$")


def mp4_structure_problem(path: str | os.PathLike[str]) -> str | None:
    """Walk the top-level ISO-BMFF boxes; a one-line problem, or None if they fit the file and include a moov.

    A box claiming more bytes than the file holds means a cut download. Non-box bytes after a complete
    ``moov`` are tolerated. Only box headers are read (a seek per box): microseconds even for big files."""
    size = os.path.getsize(path)
    seen: set[bytes] = set()
    with open(path, "rb") as f:
        pos = 0
        while pos < size:
            f.seek(pos)
            head = f.read(16)
            if len(head) < 8 or not _TOP_LEVEL_OK.match(head[4:8]):
                # Bytes that are not a box header. After a complete moov, tolerate them as trailing junk
                # (padding some writers leave; ffmpeg ignores it and the decode check still runs);
                # before one, this is not an MP4 we can play.
                if b"moov" in seen:
                    return None
                return f"not an MP4: no box header at offset {pos}"
            box_size, box_type = struct.unpack(">I4s", head[:8])
            if box_size == 1:
                if len(head) < 16:
                    return f"truncated: {box_type.decode()} header cut short"
                box_size = struct.unpack(">Q", head[8:16])[0]
                if box_size < 16:
                    return f"not an MP4: bad {box_type.decode()} box size at offset {pos}"
            elif box_size == 0:  # box extends to end of file
                box_size = size - pos
            elif box_size < 8:
                return f"not an MP4: bad {box_type.decode()} box size at offset {pos}"
            if pos + box_size > size:
                missing = pos + box_size - size
                return f"truncated: {box_type.decode()} box is missing {missing} bytes"
            seen.add(box_type)
            pos += box_size
    if b"moov" not in seen:
        return "truncated or not an MP4: no moov box"
    return None


# --------------------------------------------------------------------------------------------- parsing

_DURATION = re.compile(r"Duration:\s*(?:(\d+):(\d+):(\d+(?:\.\d+)?)|N/A)")
_INPUT = re.compile(r"^Input #0, (.+?), from ", re.M)
_VIDEO = re.compile(r"^\s*Stream #0:\d+.*?: Video: ([A-Za-z0-9_]+)(.*)$", re.M)
_SIZE = re.compile(r"\b([1-9]\d{0,4})x([1-9]\d{0,4})\b")
_TIME = re.compile(r"\btime=(\d+):(\d+):(\d+(?:\.\d+)?)")


def parse_ffmpeg_header(stderr: str) -> MediaInfo:
    """MediaInfo from the ``Input #0 ...`` block that ``ffmpeg -i`` prints. MediaError if incomplete."""
    if "Input #0" not in stderr:
        raise MediaError(f"not a media file: {ff.error_reason(stderr)}")
    m = _VIDEO.search(stderr)
    if not m:
        raise MediaError("no video stream")
    codec, rest = m.group(1), m.group(2)
    size = _SIZE.search(rest)
    if not size:
        raise MediaError(f"video stream {codec} has no frame size")
    d = _DURATION.search(stderr)
    duration = 0.0
    if d and d.group(1) is not None:
        duration = int(d.group(1)) * 3600 + int(d.group(2)) * 60 + float(d.group(3))
    fmt = _INPUT.search(stderr)
    return MediaInfo(
        duration=duration,
        width=int(size.group(1)),
        height=int(size.group(2)),
        codec=codec,
        format=fmt.group(1) if fmt else "",
    )


def parse_ffprobe_json(data: dict) -> MediaInfo:
    """MediaInfo from ``ffprobe -show_format -show_streams -of json`` output. MediaError if no video."""
    video = next((s for s in data.get("streams", []) if s.get("codec_type") == "video"), None)
    if video is None:
        raise MediaError("no video stream")
    fmt = data.get("format", {})
    duration = 0.0
    for raw in (fmt.get("duration"), video.get("duration")):
        try:
            duration = float(raw)
        except (TypeError, ValueError):
            continue
        if duration > 0:
            break
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if not width or not height:
        raise MediaError(f"video stream {video.get('codec_name', '?')} has no frame size")
    return MediaInfo(
        duration=duration,
        width=width,
        height=height,
        codec=str(video.get("codec_name", "")),
        format=str(fmt.get("format_name", "")),
    )


# --------------------------------------------------------------------------------------------- probing


def _decode_cmd(path: str, ffmpeg: str, decode: Decode, loglevel: str) -> list[str]:
    import ffmpeg as ffmpeg_python  # ffmpeg-python loads with the first command line

    in_kwargs = {"skip_frame": "nokey"} if decode == "keyframes" else {}
    stream = ffmpeg_python.input(ff.path_arg(path), **in_kwargs).output("-", map="0:v:0", f="null")
    cmd = ff.compile_cmd(stream, ffmpeg, loglevel=loglevel, overwrite=False)
    return [cmd[0], *cmd[1:4], "-xerror", *cmd[4:]]


def _validate(info: MediaInfo, path: str) -> MediaInfo:
    if not info.duration or info.duration <= 0:
        raise MediaError(f"{Path(path).name}: no duration (empty or broken clip)")
    return info


def probe_header(
    path: str | os.PathLike[str], ffmpeg: str, ffprobe: str | None = None, timeout: float = 30
) -> MediaInfo:
    """Metadata only (no decoding, no structural check): used when the clip was already validated."""
    path = str(path)
    if ffprobe:
        return _validate(_ffprobe(path, ffprobe, timeout), path)
    cmd = [ffmpeg, *ff.GLOBAL_ARGS, "-i", ff.path_arg(path)]
    try:
        ff.run(cmd, timeout)
    except ff.FFmpegError as exc:
        if exc.timed_out:
            raise MediaError(f"{Path(path).name}: probe timed out after {timeout:g}s") from None
        stderr = exc.stderr
    else:  # pragma: no cover - ffmpeg -i without an output always exits 1
        stderr = ""
    try:
        return _validate(parse_ffmpeg_header(stderr), path)
    except MediaError as exc:
        raise MediaError(f"{Path(path).name}: {exc}") from None


def _ffprobe(path: str, ffprobe: str, timeout: float) -> MediaInfo:
    # The same argv as ffmpeg.probe(path, cmd=ffprobe), run through ff.run for the timeout/kill handling
    # (ffmpeg-python's probe() waits forever).
    cmd = [ffprobe, "-v", "error", "-show_format", "-show_streams", "-of", "json", ff.path_arg(path)]
    try:
        cp = ff.run(cmd, timeout)
    except ff.FFmpegError as exc:
        if exc.timed_out:
            raise MediaError(f"{Path(path).name}: probe timed out after {timeout:g}s") from None
        raise MediaError(f"{Path(path).name}: {ff.error_reason(exc.stderr)}") from None
    try:
        data = json.loads(cp.stdout.decode("utf-8", "replace") or "{}")
    except ValueError:
        raise MediaError(f"{Path(path).name}: ffprobe printed no JSON") from None
    try:
        return parse_ffprobe_json(data)
    except MediaError as exc:
        raise MediaError(f"{Path(path).name}: {exc}") from None


@functools.cache
def pyav() -> ModuleType | None:
    """PyAV, when installed (imported on the first probe: it costs about 0.1 s of start-up)."""
    try:
        import av
    except ImportError:  # pragma: no cover - PyAV is a dependency; platforms without a wheel fall back
        return None
    return av


def in_process_available() -> bool:
    """True when probes run in this process (PyAV), so a probe needs no ffmpeg binary."""
    return pyav() is not None


def probe(
    path: str | os.PathLike[str],
    ffmpeg: str | None,
    ffprobe: str | None = None,
    timeout: float = 30,
    decode: Decode = "keyframes",
    in_process: bool | None = None,
) -> MediaInfo:
    """Validate a clip and return its metadata, or raise MediaError with a one-line reason.

    Rejects: a missing/empty file, an MP4 whose boxes run past the end or lack ``moov`` (truncated
    download), anything libav cannot open (JSON, HTML error pages ...), no video stream, zero or
    absent duration, and any demux/decode error while reading all packets (``decode`` chooses how much
    is decoded: ``keyframes`` (default), ``full`` or ``none`` for header + structure only).

    ``in_process``: None (default) probes with PyAV when it is installed, else with ``ffmpeg``; False
    always runs ``ffmpeg``/``ffprobe``; True requires PyAV."""
    deadline = time.monotonic() + timeout
    path = str(path)
    name = Path(path).name
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise MediaError(f"{name}: cannot read: {exc.strerror or exc}") from None
    if size == 0:
        raise MediaError(f"{name}: empty file")
    if looks_like_mp4(head):
        problem = mp4_structure_problem(path)
        if problem:
            raise MediaError(f"{name}: {problem}")

    av = pyav() if in_process is not False else None
    if av is not None:
        return _validate(_probe_av(av, path, decode, deadline), path)
    if in_process:
        raise MediaError("in-process probe asked for, but PyAV is not installed (pip install av)")
    if ffmpeg is None:
        raise MediaError("no ffmpeg to probe with: set processing.ffmpeg or pip install av")

    if ffprobe:
        info = _validate(_ffprobe(path, ffprobe, timeout), path)
        if decode != "none":
            _decode_check(path, ffmpeg, decode, max(deadline - time.monotonic(), 0.001), loglevel="error")
        return info

    if decode == "none":
        return probe_header(path, ffmpeg, None, timeout)
    # One ffmpeg run: "-v info" prints the Input header, -xerror fails on the first demux/decode error.
    stderr = _decode_check(path, ffmpeg, decode, timeout, loglevel="info")
    try:
        info = parse_ffmpeg_header(stderr)
    except MediaError as exc:
        raise MediaError(f"{name}: {exc}") from None
    if not info.duration:
        # Some containers lack a header duration; the decode's last "time=" is the next best thing.
        times = _TIME.findall(stderr)
        if times:
            h, m, s = times[-1]
            info = MediaInfo(
                int(h) * 3600 + int(m) * 60 + float(s), info.width, info.height, info.codec, info.format
            )
    return _validate(info, path)


def _decode_check(path: str, ffmpeg: str, decode: Decode, timeout: float, loglevel: str) -> str:
    cmd = _decode_cmd(path, ffmpeg, decode, loglevel)
    name = Path(path).name
    try:
        cp = ff.run(cmd, timeout)
    except ff.FFmpegError as exc:
        if exc.timed_out:
            raise MediaError(f"{name}: probe timed out after {timeout:g}s") from None
        stderr = exc.stderr
        if "Input #0" in stderr and not _VIDEO.search(stderr):
            raise MediaError(f"{name}: no video stream") from None
        if "Input #0" not in stderr and loglevel == "info":
            raise MediaError(f"{name}: not a media file: {ff.error_reason(stderr)}") from None
        raise MediaError(f"{name}: decode failed: {ff.error_reason(stderr)}") from None
    return cp.stderr.decode("utf-8", "replace")


def av_reason(exc: BaseException) -> str:
    """One line from a PyAV error, without the file path it appends."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return str(text).strip().splitlines()[0]


def _probe_av(av: ModuleType, path: str, decode: Decode, deadline: float) -> MediaInfo:
    """The header, then every packet of the video stream, in this process (see the module docstring)."""
    name = Path(path).name
    try:
        container = av.open(path, metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise MediaError(f"{name}: not a media file: {av_reason(exc)}") from None
    except OSError as exc:
        raise MediaError(f"{name}: cannot read: {exc.strerror or exc}") from None
    with container:
        video = container.streams.video[0] if container.streams.video else None
        if video is None:
            raise MediaError(f"{name}: no video stream")
        ctx = video.codec_context
        codec = ctx.codec.canonical_name or ctx.name  # "av1", not the decoder's name ("libdav1d")
        if not ctx.width or not ctx.height:
            raise MediaError(f"{name}: video stream {codec} has no frame size")
        duration = 0.0
        if container.duration:
            duration = container.duration / av.time_base
        elif video.duration and video.time_base:
            duration = float(video.duration * video.time_base)
        end = 0.0
        if decode != "none":
            # one decoder thread: probes of several clips run in parallel already, and starting a
            # decoder's thread pool costs more than decoding a few key frames
            ctx.thread_count = 1
            ctx.thread_type = "NONE"
            if decode == "keyframes":
                ctx.skip_frame = "NONKEY"
            try:
                for packet in container.demux(video):
                    if packet.is_corrupt:
                        raise MediaError(f"{name}: decode failed: corrupt packet")
                    if packet.pts is not None and packet.time_base:
                        end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
                    for frame in packet.decode():
                        if frame.is_corrupt:
                            raise MediaError(f"{name}: decode failed: corrupt frame")
                    if time.monotonic() > deadline:
                        raise MediaError(f"{name}: probe timed out")
            except av.FFmpegError as exc:
                raise MediaError(f"{name}: decode failed: {av_reason(exc)}") from None
        fmt = container.format.name if container.format else ""
        return MediaInfo(
            duration=duration or end, width=ctx.width, height=ctx.height, codec=codec, format=fmt
        )
