"""Small media files generated with the real ffmpeg (imageio-ffmpeg's binary unless one is on PATH).

Clips are made once per test session (session-scoped fixtures) so the media tests stay fast. Use the
fixtures with ``pytest_plugins = ["media_fixtures"]`` in a test module (or import them by name with
``# noqa: F401``; ruff then also flags each fixture parameter as F811). The plain helpers
(:func:`make_clip`, :func:`make_audio_only`) are ordinary imports; ``truncate_copy`` is in helpers.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import truncate_copy

from archiver.media.ffmpeg import encoders, find_ffmpeg


def ffmpeg_exe() -> str:
    return find_ffmpeg(None)


def _lavfi(exe: str, source: str) -> list[str]:
    """An ffmpeg command line reading the generated ``source`` (quiet, overwriting its output)."""
    return [exe, "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", source]


def make_clip(
    dst: Path,
    *,
    seconds: float = 2.0,
    size: str = "320x240",
    rate: int = 15,
    faststart: bool = True,
    audio: bool = False,
    ffmpeg: str | None = None,
) -> Path:
    """A ``testsrc`` clip: libx264 if the build has it, else mpeg4; optional AAC sine audio."""
    exe = ffmpeg or ffmpeg_exe()
    vcodec = ["-c:v", "libx264", "-pix_fmt", "yuv420p"] if "libx264" in encoders(exe) else ["-c:v", "mpeg4"]
    cmd = _lavfi(exe, f"testsrc=size={size}:rate={rate}")
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000"]
    cmd += ["-t", str(seconds), *vcodec]
    if audio:
        cmd += ["-c:a", "aac", "-b:a", "32k"]
    if faststart:
        cmd += ["-movflags", "+faststart"]
    cmd.append(str(dst))
    subprocess.run(cmd, check=True, timeout=60)
    return dst


def make_audio_only(dst: Path, seconds: float = 1.0) -> Path:
    cmd = [*_lavfi(ffmpeg_exe(), "sine=frequency=440:sample_rate=16000"), "-t", str(seconds), "-c:a", "aac"]
    subprocess.run([*cmd, str(dst)], check=True, timeout=60)
    return dst


@pytest.fixture(scope="session")
def ffmpeg_path() -> str:
    return ffmpeg_exe()


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def good_clip(media_dir: Path, ffmpeg_path: str) -> Path:
    """2 s, 320x240, 15 fps, faststart, with an AAC track (like a Blink clip)."""
    return make_clip(media_dir / "good.mp4", audio=True, ffmpeg=ffmpeg_path)


@pytest.fixture(scope="session")
def moov_last_clip(media_dir: Path, ffmpeg_path: str) -> Path:
    """Same picture, ``moov`` after ``mdat`` (no faststart)."""
    return make_clip(media_dir / "moov_last.mp4", faststart=False, ffmpeg=ffmpeg_path)


@pytest.fixture(scope="session")
def short_clip(media_dir: Path, ffmpeg_path: str) -> Path:
    """0.6 s clip (thumbnail falls in the middle)."""
    return make_clip(media_dir / "short.mp4", seconds=0.6, ffmpeg=ffmpeg_path)


@pytest.fixture(scope="session")
def truncated_clip(media_dir: Path, good_clip: Path) -> Path:
    """The good clip cut at 60 %: ``mdat`` runs past the end of the file."""
    return truncate_copy(good_clip, media_dir / "truncated.mp4", 0.6)


@pytest.fixture(scope="session")
def json_file(media_dir: Path) -> Path:
    """What a broken download sometimes is: an API error body."""
    p = media_dir / "error.json"
    p.write_text('{"message": "Unauthorized Access", "code": 101}\n')
    return p


@pytest.fixture(scope="session")
def audio_only(media_dir: Path) -> Path:
    return make_audio_only(media_dir / "audio.m4a")


@pytest.fixture
def clip_copy(tmp_path: Path, good_clip: Path) -> Path:
    """A per-test copy of the good clip (tests may write next to it)."""
    dst = tmp_path / "clip.mp4"
    shutil.copyfile(good_clip, dst)
    return dst
