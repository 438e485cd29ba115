"""Still thumbnails (JPEG) and short animated previews (WebP, or GIF) from a clip."""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Literal

from archiver.errors import MediaError
from archiver.media import ffmpeg as ff
from archiver.media import probe as media_probe
from archiver.media.probe import looks_like_jpeg, probe_header

PreviewKind = Literal["webp", "gif"]


def thumbnail_time(duration: float, at_s: float | None = None) -> float:
    """Where to grab the still: ``at_s`` (default 1 s, or the middle of clips shorter than 2 s), clamped
    into the clip so the seek always lands on a frame."""
    if duration <= 0:
        return 0.0
    t = at_s if at_s is not None else (1.0 if duration >= 2.0 else duration / 2)
    last = max(duration - 0.1, 0.0)  # a seek right at the end can fall past the last frame
    return min(max(t, 0.0), last)


def _tmp_for(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.{os.getpid()}.part{dst.suffix}")


def _remaining(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.001)


def make_thumbnail(
    src: str | os.PathLike[str],
    dst_jpg: str | os.PathLike[str],
    ffmpeg: str | None,
    at_s: float | None = None,
    width: int = 640,
    timeout: float = 60,
    duration: float | None = None,
    in_process: bool | None = None,
) -> Path:
    """Write one frame of ``src`` as a JPEG ``width`` px wide (never upscaled, aspect kept, even height).

    In this process with PyAV when it is installed (``in_process`` None, the default; True requires it):
    seek to the key frame before the moment, decode up to it, scale and encode; a few ms for a small
    clip, about 40 % less CPU than an ffmpeg process for a 1080p one. Otherwise ``ffmpeg`` does it.
    ``duration`` (if known from a previous probe) saves reading the header again. Returns ``dst_jpg``;
    MediaError if no frame can be had or what was written is not a JPEG."""
    deadline = time.monotonic() + timeout
    src, dst = Path(src), Path(dst_jpg)
    av = media_probe.pyav() if in_process is not False else None
    tmp = _tmp_for(dst)
    try:
        if av is not None:
            tmp.write_bytes(_thumbnail_av(av, src, at_s, width, deadline, duration))
        elif in_process:
            raise MediaError("in-process thumbnail asked for, but PyAV is not installed (pip install av)")
        elif ffmpeg is None:
            raise MediaError("no ffmpeg to make a thumbnail with: set processing.ffmpeg or pip install av")
        else:
            _thumbnail_ffmpeg(src, tmp, ffmpeg, at_s, width, deadline, duration)
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise MediaError(f"{src.name}: no frame for the thumbnail")
        with open(tmp, "rb") as f:
            if not looks_like_jpeg(f.read(3)):
                raise MediaError(f"{src.name}: thumbnail is not a JPEG")
        os.replace(tmp, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return dst


def _scaled(width: int, height: int, most: int) -> tuple[int, int]:
    """``most`` px wide at most (never upscaled), aspect kept, both sides even (what encoders want)."""
    w = min(most, width) // 2 * 2 or 2
    return w, max(2, round(height * w / width / 2) * 2)


def _thumbnail_av(
    av: ModuleType, src: Path, at_s: float | None, width: int, deadline: float, duration: float | None
) -> bytes:
    try:
        with av.open(str(src), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise MediaError(f"{src.name}: no video stream")
            video = container.streams.video[0]
            video.codec_context.thread_count = 1  # one frame or a few: a decoder thread pool costs more
            if duration is None:
                duration = container.duration / av.time_base if container.duration else 0.0
            t = thumbnail_time(duration, at_s)
            if t > 0 and video.time_base:
                container.seek(int(t / video.time_base), stream=video)  # the key frame at or before t
            frame = None
            for frame in container.decode(video):
                if frame.time is None or frame.time >= t - 0.001:
                    break
                if time.monotonic() > deadline:
                    raise MediaError(f"{src.name}: thumbnail timed out")
            if frame is None:
                raise MediaError(f"{src.name}: no frame at {t:.2f}s for the thumbnail")
            w, h = _scaled(frame.width, frame.height, width)
            encoder = av.CodecContext.create("mjpeg", "w")
            encoder.width, encoder.height, encoder.pix_fmt = w, h, "yuvj420p"
            encoder.time_base = Fraction(1, 25)
            encoder.qmin = encoder.qmax = 3  # about ffmpeg's -q:v 3
            # one JPEG: libav's default (a thread per core) would start and join a thread pool for it,
            # which costs three times the encoding itself (0.47 -> 0.14 ms CPU, 1.7 -> 0.14 ms wall for
            # Blink's 160x90 stills; also fewer restart markers, so smaller files)
            encoder.thread_count = 1
            still = frame.reformat(width=w, height=h, format="yuvj420p")
            return b"".join(bytes(p) for p in [*encoder.encode(still), *encoder.encode(None)])
    except av.FFmpegError as exc:
        raise MediaError(f"{src.name}: thumbnail failed: {media_probe.av_reason(exc)}") from None
    except OSError as exc:
        raise MediaError(f"{src.name}: cannot read: {exc.strerror or exc}") from None


def _thumbnail_ffmpeg(
    src: Path, tmp: Path, ffmpeg: str, at_s: float | None, width: int, deadline: float, duration: float | None
) -> None:
    import ffmpeg as ffmpeg_python  # ffmpeg-python loads with the first command line

    if duration is None:
        duration = probe_header(src, ffmpeg, timeout=_remaining(deadline)).duration
    t = thumbnail_time(duration, at_s)
    stream = (
        ffmpeg_python.input(ff.path_arg(src), ss=f"{t:.3f}")
        .filter("scale", f"min({int(width)},iw)", -2)
        .output(
            ff.path_arg(tmp), vframes=1, format="image2", vcodec="mjpeg", pix_fmt="yuvj420p", **{"q:v": 3}
        )
    )
    ff.run(ff.compile_cmd(stream, ffmpeg), _remaining(deadline))


@dataclass(frozen=True)
class Preview:
    path: Path
    kind: PreviewKind
    note: str | None = None  # e.g. why a GIF was written although WebP was asked for


def webp_encoder(ffmpeg: str) -> str | None:
    """``libwebp_anim`` (animated) if present, else ``libwebp`` (recent builds animate with it), else None."""
    have = ff.encoders(ffmpeg)
    return next((e for e in ("libwebp_anim", "libwebp") if e in have), None)


def make_preview(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    ffmpeg: str,
    kind: PreviewKind = "webp",
    seconds: float = 3.0,
    width: int = 320,
    fps: int = 5,
    timeout: float = 120,
    duration: float | None = None,
) -> Preview:
    """A short looping animation: ``seconds`` from about 1 s in (from the start for short clips),
    ``width`` px wide, ``fps`` frames/s. WebP needs libwebp in the ffmpeg build; without it a GIF is
    written instead (``dst`` gets the ``.gif`` suffix) and :attr:`Preview.note` says so."""
    import ffmpeg as ffmpeg_python  # ffmpeg-python loads with the first command line

    deadline = time.monotonic() + timeout
    src, dst = Path(src), Path(dst)
    if duration is None:
        duration = probe_header(src, ffmpeg, timeout=timeout).duration
    note = None
    encoder = None
    if kind == "webp":
        encoder = webp_encoder(ffmpeg)
        if encoder is None:
            note = "ffmpeg has no WebP encoder (libwebp): wrote a GIF preview instead"
            kind = "gif"
    dst = dst.with_suffix(f".{kind}")
    start = 1.0 if duration >= seconds + 1.0 else 0.0
    inp = ffmpeg_python.input(ff.path_arg(src), ss=f"{start:.3f}", t=f"{seconds:.3f}")
    v = inp.video.filter("fps", fps).filter("scale", f"min({int(width)},iw)", -2, flags="lanczos")
    tmp = _tmp_for(dst)
    if kind == "webp":
        out = v.output(
            ff.path_arg(tmp),
            vcodec=encoder,
            loop=0,
            quality=60,
            compression_level=4,
            pix_fmt="yuv420p",
            an=None,
            format="webp",
        )
    else:
        split = v.split()
        palette = split[0].filter("palettegen", stats_mode="diff")
        gif = ffmpeg_python.filter([split[1], palette], "paletteuse", dither="bayer", bayer_scale=3)
        out = gif.output(ff.path_arg(tmp), loop=0, an=None, format="gif")
    try:
        ff.run(ff.compile_cmd(out, ffmpeg), _remaining(deadline))
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise MediaError(f"{src.name}: preview came out empty")
        os.replace(tmp, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return Preview(path=dst, kind=kind, note=note)
