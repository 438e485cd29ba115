"""A few frames of a clip, decoded in this process with PyAV (no ffmpeg process).

Cheap first: one seek per sampled moment, decoding only the key frame it lands on (a 1080p key frame
costs a few ms: a 30 s 1080p clip with a key frame every 2 s takes about 50 ms of CPU). A clip with a
single key frame (a GOP as long as the clip) is decoded from the start instead, keeping the frames
nearest the moments spread over its first ``max_decoded`` frames (3 s at 30 fps): the CPU stays bounded,
and motion that triggered a recording is at its start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archiver.errors import MediaError
from archiver.media import probe as media_probe


@dataclass(frozen=True)
class Sample:
    at_s: float  # seconds from the clip's start
    frame: Any  # av.VideoFrame


def moments(duration: float, count: int) -> list[float]:
    """``count`` instants spread evenly over the clip (the middle of each slice)."""
    if duration <= 0:
        return [0.0]
    return [(i + 0.5) * duration / count for i in range(count)]


def sample_frames(path: Path, count: int, max_decoded: int = 90) -> list[Sample]:
    """Up to ``count`` distinct frames spread over the clip, in time order. MediaError when the clip has
    no decodable video."""
    av = media_probe.pyav()
    if av is None:
        raise MediaError("the analysis needs PyAV (pip install av)")
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise MediaError(f"{path.name}: no video stream")
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1  # a few frames: a decoder thread pool costs more
            base = stream.time_base
            if stream.duration and base:
                duration = float(stream.duration * base)
            else:
                duration = container.duration / av.time_base if container.duration else 0.0
            samples = _by_seeking(container, stream, moments(duration, count)) if count > 1 and base else []
            if len(samples) < min(count, 2):
                container.seek(0)
                stream.codec_context.skip_frame = "DEFAULT"
                rate = float(stream.average_rate or 0) or 30.0
                span = min(duration, max_decoded / rate) if duration > 0 else max_decoded / rate
                samples = _by_decoding(container, stream, moments(span, count), max_decoded)
    except av.FFmpegError as exc:
        raise MediaError(f"{path.name}: cannot decode: {media_probe.av_reason(exc)}") from None
    except OSError as exc:
        raise MediaError(f"{path.name}: cannot read: {exc.strerror or exc}") from None
    if not samples:
        raise MediaError(f"{path.name}: no frame could be decoded")
    return samples


def _by_seeking(container: Any, stream: Any, targets: list[float]) -> list[Sample]:
    stream.codec_context.skip_frame = "NONKEY"
    seen: dict[float, Sample] = {}
    for t in targets:
        container.seek(int(t / stream.time_base), stream=stream)  # the key frame at or before t
        for frame in container.decode(stream):
            at = float(frame.time or 0.0)
            seen.setdefault(round(at, 3), Sample(at, frame))
            break
    return [seen[k] for k in sorted(seen)]


def _by_decoding(container: Any, stream: Any, targets: list[float], max_decoded: int) -> list[Sample]:
    """Decode from the start and keep, for each target, the first frame at or after it."""
    out: list[Sample] = []
    pending = list(targets)
    last: Sample | None = None
    for n, frame in enumerate(container.decode(stream)):
        last = Sample(float(frame.time or 0.0), frame)
        if pending and last.at_s >= pending[0] - 1e-6:
            out.append(last)
            while pending and pending[0] <= last.at_s + 1e-6:
                pending.pop(0)
        if not pending or n + 1 >= max_decoded:
            break
    if last is not None and (not out or out[-1] is not last) and pending:
        out.append(last)  # the clip ended before the last moments: its last frame stands in
    return out


def gray(frame: Any, width: int) -> tuple[bytes, int, int]:
    """The frame as ``width`` px wide grey pixels (aspect kept), row by row without padding."""
    height = max(2, round(frame.height * width / max(frame.width, 1) / 2) * 2)
    small = frame.reformat(width=width, height=height, format="gray", interpolation="AREA")
    plane = small.planes[0]
    data, step = bytes(plane), plane.line_size
    if step == width:
        return data[: width * height], width, height
    return b"".join(data[y * step : y * step + width] for y in range(height)), width, height
