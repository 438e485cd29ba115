"""`archiver demo` shows the product: every clip drawn with its camera's name and local time, clips
spread over several days, a second run stores nothing twice (the USB clips keep their instants), and the
closing hints name the command as it was run and the folder that was used."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from helpers import run_cli

from archiver.export import find_font, has_drawtext
from archiver.media.ffmpeg import find_ffmpeg


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}


def test_demo_twice_stores_each_clip_once_over_several_days_each_drawn(tmp_path: Path) -> None:
    folder = tmp_path / "my demo"
    first = run_cli(["demo", "--folder", str(folder), "--clips", "4"], _env(), timeout=300)
    assert first.returncode == 0, first.stderr
    archive = folder / "archive"
    clips = sorted(archive.rglob("*.mp4"))
    assert len(clips) == 3 * 4 + 2  # two USB clips on the Porch
    days = {p.parent.name for p in clips}
    assert len(days) >= 3, days  # spread over days and hours, not one minute
    assert len({p.name[:5] for p in clips}) >= 8  # varied hours and minutes
    second = run_cli(["demo", "--folder", str(folder), "--clips", "4"], _env(), timeout=300)
    assert second.returncode == 0, second.stderr
    assert "stored 0" in second.stdout
    assert sorted(archive.rglob("*.mp4")) == clips  # the USB clips were not stored again
    assert f"--folder '{folder}'" in first.stdout and "archiver status" in first.stdout
    if find_font() and has_drawtext(find_ffmpeg()):  # each clip its own picture (name and time drawn)
        thumbs = {hashlib.sha256(p.read_bytes()).hexdigest() for p in archive.rglob("*.jpg")}
        assert len(thumbs) == len(clips)
        assert all(p.stat().st_size > 10_000 for p in clips)
        assert "plain test card" not in first.stdout
