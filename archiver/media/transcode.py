"""Transcode profiles (as data) and :func:`transcode`.

Every profile writes MP4 with ``-movflags +faststart`` and copies the audio track; the output is written
to a temporary name next to ``dst``, probed, and only then renamed to ``dst``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archiver.errors import MediaError
from archiver.media import ffmpeg as ff
from archiver.media.probe import MediaInfo, probe

# x264-style preset names → the numeric speed knobs of the AV1 encoders (higher = faster).
_SVT_PRESET = {
    "ultrafast": 12,
    "superfast": 11,
    "veryfast": 10,
    "faster": 9,
    "fast": 8,
    "medium": 7,
    "slow": 5,
    "slower": 4,
    "veryslow": 2,
    "placebo": 0,
}
_AOM_CPU_USED = {
    "ultrafast": 8,
    "superfast": 8,
    "veryfast": 7,
    "faster": 6,
    "fast": 6,
    "medium": 5,
    "slow": 4,
    "slower": 3,
    "veryslow": 2,
    "placebo": 0,
}
_RAV1E_SPEED = {
    "ultrafast": 10,
    "superfast": 10,
    "veryfast": 9,
    "faster": 8,
    "fast": 7,
    "medium": 6,
    "slow": 4,
    "slower": 3,
    "veryslow": 1,
    "placebo": 0,
}


def _speed(table: dict[str, int], preset: str) -> str:
    """Map a preset name through ``table``; a number (or an unknown name) is passed on for ffmpeg to judge."""
    return str(table.get(preset.strip().lower(), preset))


def _x26x(crf: int, preset: str) -> dict[str, Any]:
    return {"crf": crf, "preset": preset}


def _svtav1(crf: int, preset: str) -> dict[str, Any]:
    return {"crf": crf, "preset": _speed(_SVT_PRESET, preset)}


def _aom(crf: int, preset: str) -> dict[str, Any]:
    return {"crf": crf, "b:v": 0, "cpu-used": _speed(_AOM_CPU_USED, preset), "row-mt": 1}


def _rav1e(crf: int, preset: str) -> dict[str, Any]:
    # rav1e's quantizer runs 0-255; scale the 0-63 CRF onto it.
    return {"qp": min(255, round(crf * 255 / 63)), "speed": _speed(_RAV1E_SPEED, preset)}


@dataclass(frozen=True)
class Profile:
    """One output flavour. ``encoders`` are candidates in order of preference (the first one the ffmpeg
    build has wins); an empty tuple means stream copy (no re-encode)."""

    name: str
    suffix: str  # appended to the clip's stem: ".h265.mp4"
    encoders: tuple[str, ...] = ()
    codec: str | None = None  # what a probe of the output must report (None: anything)
    options: dict[str, Callable[[int, str], dict[str, Any]]] = field(default_factory=dict)  # per encoder
    extra: dict[str, Any] = field(default_factory=dict)  # output options for every encoder

    def pick_encoder(self, ffmpeg: str) -> str | None:
        """The encoder to use (None for a stream copy); MediaError if the build has none of them."""
        if not self.encoders:
            return None
        have = ff.encoders(ffmpeg)
        for name in self.encoders:
            if name in have:
                return name
        raise MediaError(
            f"transcode {self.name}: this ffmpeg has none of the encoders {', '.join(self.encoders)}"
        )

    def output_kwargs(self, encoder: str | None, crf: int, preset: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"movflags": "+faststart", "f": "mp4"}
        if encoder is None:
            kwargs["c"] = "copy"
        else:
            kwargs.update({"c:v": encoder, "c:a": "copy", "pix_fmt": "yuv420p"})
            kwargs.update(self.options[encoder](crf, preset))
        kwargs.update(self.extra)
        return kwargs


PROFILES: dict[str, Profile] = {
    "remux": Profile(name="remux", suffix=".remux.mp4"),
    "h264": Profile(
        name="h264", suffix=".h264.mp4", encoders=("libx264",), codec="h264", options={"libx264": _x26x}
    ),
    "h265": Profile(
        name="h265",
        suffix=".h265.mp4",
        encoders=("libx265",),
        codec="hevc",
        options={"libx265": _x26x},
        extra={"tag:v": "hvc1", "x265-params": "log-level=error"},
    ),
    "av1": Profile(
        name="av1",
        suffix=".av1.mp4",
        encoders=("libsvtav1", "libaom-av1", "librav1e"),
        codec="av1",
        options={"libsvtav1": _svtav1, "libaom-av1": _aom, "librav1e": _rav1e},
    ),
}


def get_profile(profile: str | Profile) -> Profile:
    if isinstance(profile, Profile):
        return profile
    try:
        return PROFILES[profile]
    except KeyError:
        raise MediaError(f"unknown transcode profile {profile!r} (one of {', '.join(PROFILES)})") from None


def transcode_cmd(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    profile: str | Profile,
    crf: int,
    preset: str,
    ffmpeg: str,
) -> list[str]:
    """The ffmpeg argv :func:`transcode` runs (also used by the benchmark)."""
    import ffmpeg as ffmpeg_python  # ffmpeg-python loads with the first command line

    prof = get_profile(profile)
    encoder = prof.pick_encoder(ffmpeg)
    stream = ffmpeg_python.input(ff.path_arg(src)).output(
        ff.path_arg(dst), **prof.output_kwargs(encoder, crf, preset)
    )
    return ff.compile_cmd(stream, ffmpeg)


@dataclass(frozen=True)
class TranscodeResult:
    path: Path
    info: MediaInfo
    encoder: str | None  # None for remux
    size: int


def transcode(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    profile: str | Profile,
    crf: int = 28,
    preset: str = "medium",
    ffmpeg: str = "ffmpeg",
    timeout: float = 300,
    ffprobe: str | None = None,
) -> TranscodeResult:
    """Encode ``src`` into ``dst`` with ``profile``; ``timeout`` bounds encode + output probe together.

    Nothing is left at ``dst`` on failure. MediaError on encoder absence, ffmpeg error, timeout, or an
    output that does not probe as the expected codec."""
    import ffmpeg as ffmpeg_python  # ffmpeg-python loads with the first command line

    deadline = time.monotonic() + timeout
    prof = get_profile(profile)
    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.part.mp4")
    encoder = prof.pick_encoder(ffmpeg)
    stream = ffmpeg_python.input(ff.path_arg(src)).output(
        ff.path_arg(tmp), **prof.output_kwargs(encoder, crf, preset)
    )
    try:
        try:
            ff.run(ff.compile_cmd(stream, ffmpeg), timeout)
        except ff.FFmpegError as exc:
            what = f"transcode {prof.name}" + (f" ({encoder})" if encoder else "")
            if exc.timed_out:
                raise MediaError(f"{what} timed out after {timeout:g}s") from None
            raise MediaError(f"{what} failed: {ff.error_reason(exc.stderr)}") from None
        info = probe(tmp, ffmpeg, ffprobe, timeout=max(deadline - time.monotonic(), 0.001))
        if prof.codec and info.codec != prof.codec:
            raise MediaError(f"transcode {prof.name}: output is {info.codec}, expected {prof.codec}")
        os.replace(tmp, dst)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return TranscodeResult(path=dst, info=info, encoder=encoder, size=dst.stat().st_size)
