"""archiver.media with the real ffmpeg (imageio-ffmpeg's binary): probe, thumbnails, transcodes, pool."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
from helpers import truncate_copy

import archiver.media.probe as probe_mod
from archiver.config import ProcessingSettings
from archiver.errors import MediaError
from archiver.media import ffmpeg as ff
from archiver.media.probe import (
    MediaInfo,
    looks_like_jpeg,
    looks_like_mp4,
    mp4_structure_problem,
    parse_ffprobe_json,
    probe,
)
from archiver.media.processor import MediaProcessor
from archiver.media.thumbnail import make_preview, make_thumbnail, thumbnail_time
from archiver.media.transcode import PROFILES, transcode, transcode_cmd
from archiver.simulator.media import ClipBody, asset_jpeg

# The session-scoped clip fixtures (good_clip, truncated_clip, json_file ...). Registered as a plugin rather
# than imported by name so that fixture parameters do not trip ruff's F811 (redefinition of an import).
# (Nothing else is imported from it: importing before registration would defeat pytest's assert rewriting.)
pytest_plugins = ["media_fixtures"]


def _exe(path: Path, body: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for a reaper that may never come in a container)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat_line.rsplit(")", 1)[1].split()[0] != "Z"


def _top_boxes(path: Path) -> list[bytes]:
    data, pos, out = path.read_bytes(), 0, []
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        out.append(data[pos + 4 : pos + 8])
        pos += size if size else len(data)
    return out


# ------------------------------------------------------------------------------------------ find/run


def test_find_ffmpeg_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configured = _exe(tmp_path / "my-ffmpeg")
    on_path = _exe((tmp_path / "bin").mkdir() or tmp_path / "bin" / "ffmpeg")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    # 1. configured path wins over PATH
    assert ff.find_ffmpeg(str(configured)) == str(configured.resolve())
    # 2. PATH wins over imageio-ffmpeg
    assert ff.find_ffmpeg(None) == str(on_path)
    # 3. imageio-ffmpeg's binary
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    import imageio_ffmpeg

    assert ff.find_ffmpeg(None) == imageio_ffmpeg.get_ffmpeg_exe()
    # 4. nothing at all
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: (_ for _ in ()).throw(RuntimeError("x")))
    with pytest.raises(MediaError, match=r"no ffmpeg found: set processing\.ffmpeg"):
        ff.find_ffmpeg(None)


def test_find_ffmpeg_bogus_configured_path(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="does not exist or is not executable"):
        ff.find_ffmpeg(str(tmp_path / "nope" / "ffmpeg"))
    not_exec = tmp_path / "ffmpeg"
    not_exec.write_text("")
    with pytest.raises(MediaError):
        ff.find_ffmpeg(str(not_exec))


def test_find_ffprobe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    exe = _exe(tmp_path / "ffmpeg-linux64")
    assert ff.find_ffprobe(str(exe)) is None  # imageio-ffmpeg's case: no ffprobe anywhere
    sibling = _exe(tmp_path / "ffprobe-linux64")
    assert ff.find_ffprobe(str(exe)) == str(sibling)


def test_encoders(ffmpeg_path: str) -> None:
    have = ff.encoders(ffmpeg_path)
    assert "mjpeg" in have and ({"libx264", "mpeg4"} & have)
    assert ff.encoders(ffmpeg_path) is have  # cached


def test_run_error_and_timeout_kill_the_process_group(tmp_path: Path) -> None:
    # the first real error line, not ffmpeg's generic last line
    with pytest.raises(ff.FFmpegError, match=r"sh failed: real problem$") as ei:
        ff.run(["sh", "-c", "echo real problem >&2; echo 'Conversion failed!' >&2; exit 3"], timeout=5)
    assert ei.value.returncode == 3
    pidfile = tmp_path / "child.pid"
    t0 = time.monotonic()
    with pytest.raises(ff.FFmpegError, match=r"timed out after 0\.3s") as ei:
        ff.run(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"], timeout=0.3)
    assert ei.value.timed_out and time.monotonic() - t0 < 5
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(child)  # the grandchild died with the group
    with pytest.raises(ff.FFmpegError, match="cannot run"):
        ff.run([str(tmp_path / "missing")], timeout=1)


# ------------------------------------------------------------------------------------------ probe


def test_sniffers() -> None:
    assert looks_like_mp4(ClipBody("cloud:1", 20_000).read()[:16])
    assert not looks_like_mp4(b'{"message": "x"}')
    assert not looks_like_mp4(b"\x00\x00")
    assert looks_like_jpeg(asset_jpeg()[:4])
    assert not looks_like_jpeg(b"\x00\x00\x00\x18ftypmp42")


@pytest.mark.parametrize("in_process", [True, False], ids=["pyav", "ffmpeg"])
def test_probe_good_clip(good_clip: Path, moov_last_clip: Path, ffmpeg_path: str, in_process: bool) -> None:
    for clip in (good_clip, moov_last_clip):
        info = probe(clip, ffmpeg_path, in_process=in_process)
        assert info.duration == pytest.approx(2.0, abs=0.1)
        assert (info.width, info.height) == (320, 240)
        assert info.codec in ("h264", "mpeg4")
        assert "mp4" in info.format
    full = probe(good_clip, ffmpeg_path, decode="full", in_process=in_process)
    assert full == probe(good_clip, ffmpeg_path, decode="none", in_process=in_process) == info


@pytest.mark.parametrize("in_process", [True, False], ids=["pyav", "ffmpeg"])
def test_probe_accepts_simulator_clip(tmp_path: Path, ffmpeg_path: str, in_process: bool) -> None:
    """Simulator clips are the asset MP4 plus a trailing ``free`` box: valid, and must stay so."""
    p = tmp_path / "sim.mp4"
    p.write_bytes(ClipBody("cloud:42", 300_000).read())
    info = probe(p, ffmpeg_path, in_process=in_process)
    assert (info.width, info.height, info.codec) == (160, 90, "h264")


@pytest.mark.parametrize("in_process", [True, False], ids=["pyav", "ffmpeg"])
@pytest.mark.parametrize("keep", [0.98, 0.6, 0.3, 0.05, 40])
def test_probe_rejects_truncated(
    good_clip: Path,
    moov_last_clip: Path,
    tmp_path: Path,
    ffmpeg_path: str,
    keep: float | int,
    in_process: bool,
) -> None:
    for clip in (good_clip, moov_last_clip):
        cut = truncate_copy(clip, tmp_path / f"cut-{clip.name}", keep)
        with pytest.raises(MediaError, match=r"truncated|moov|not a media file") as ei:
            probe(cut, ffmpeg_path, in_process=in_process)
        assert "\n" not in str(ei.value)


@pytest.mark.parametrize("in_process", [True, False], ids=["pyav", "ffmpeg"])
def test_decode_check_alone_rejects_truncated_mdat(
    truncated_clip: Path, ffmpeg_path: str, monkeypatch: pytest.MonkeyPatch, in_process: bool
) -> None:
    """Even without the box walk, the decode pass rejects a cut mdat (ffmpeg: exit 0 without -xerror)."""
    monkeypatch.setattr(probe_mod, "mp4_structure_problem", lambda p: None)
    with pytest.raises(MediaError, match="decode failed"):
        probe(truncated_clip, ffmpeg_path, in_process=in_process)
    with pytest.raises(MediaError, match="decode failed"):
        probe(truncated_clip, ffmpeg_path, decode="full", in_process=in_process)


@pytest.mark.parametrize("in_process", [True, False], ids=["pyav", "ffmpeg"])
def test_probe_rejects_non_video(
    json_file: Path, audio_only: Path, tmp_path: Path, ffmpeg_path: str, in_process: bool
) -> None:
    with pytest.raises(MediaError, match=r"error\.json: not a media file"):
        probe(json_file, ffmpeg_path, in_process=in_process)
    with pytest.raises(MediaError, match="no video stream"):
        probe(audio_only, ffmpeg_path, in_process=in_process)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty file"):
        probe(empty, ffmpeg_path, in_process=in_process)
    with pytest.raises(MediaError, match="cannot read"):
        probe(tmp_path / "missing.mp4", ffmpeg_path, in_process=in_process)


def test_mp4_structure_problem(good_clip: Path, tmp_path: Path) -> None:
    assert mp4_structure_problem(good_clip) is None
    cut = truncate_copy(good_clip, tmp_path / "c.mp4", len(good_clip.read_bytes()) - 1)
    assert "mdat box is missing 1 bytes" in (mp4_structure_problem(cut) or "")
    padded = tmp_path / "padded.mp4"
    padded.write_bytes(good_clip.read_bytes() + b"\0" * 100)  # trailing junk after complete boxes: fine
    assert mp4_structure_problem(padded) is None
    assert "no moov" in (mp4_structure_problem(truncate_copy(good_clip, tmp_path / "f.mp4", 32)) or "")


def test_parse_ffprobe_json() -> None:
    data = {
        "streams": [
            {"codec_type": "audio", "codec_name": "aac"},
            {"codec_type": "video", "codec_name": "h264", "width": 1920, "height": 1080},
        ],
        "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "30.016"},
    }
    assert parse_ffprobe_json(data) == MediaInfo(30.016, 1920, 1080, "h264", "mov,mp4,m4a,3gp,3g2,mj2")
    with pytest.raises(MediaError, match="no video stream"):
        parse_ffprobe_json({"streams": [{"codec_type": "audio"}], "format": {}})


def test_probe_via_ffprobe_path(good_clip: Path, tmp_path: Path, ffmpeg_path: str) -> None:
    """The ffprobe branch, with a stand-in ffprobe that prints canned JSON (none ships here)."""
    fake = _exe(
        tmp_path / "ffprobe",
        "#!/bin/sh\ncat <<'EOF'\n"
        '{"streams": [{"codec_type": "video", "codec_name": "h264", "width": 320, "height": 240}],'
        ' "format": {"format_name": "mov,mp4", "duration": "2.000"}}\nEOF\n',
    )
    info = probe(good_clip, ffmpeg_path, ffprobe=str(fake), in_process=False)
    assert info == MediaInfo(2.0, 320, 240, "h264", "mov,mp4")


# ------------------------------------------------------------------------------------------ transcode


@pytest.mark.parametrize("profile", ["remux", "h264", "h265", "av1"])
def test_transcode_profiles(profile: str, good_clip: Path, tmp_path: Path, ffmpeg_path: str) -> None:
    prof = PROFILES[profile]
    have = ff.encoders(ffmpeg_path)
    if prof.encoders and not set(prof.encoders) & have:
        if profile in ("remux", "h264"):
            pytest.fail(f"{profile} encoder missing from the bundled ffmpeg")
        pytest.skip(f"ffmpeg has none of {prof.encoders}")
    preset = "ultrafast" if profile != "h265" else "fast"
    dst = tmp_path / f"out{prof.suffix}"
    res = transcode(good_clip, dst, profile, crf=30, preset=preset, ffmpeg=ffmpeg_path, timeout=60)
    assert res.path == dst and dst.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left behind
    info = probe(dst, ffmpeg_path, decode="full")  # playable end to end
    assert (info.width, info.height) == (320, 240)
    assert info.duration == pytest.approx(2.0, abs=0.15)
    assert info.codec == (prof.codec or probe(good_clip, ffmpeg_path).codec)
    boxes = _top_boxes(dst)
    assert boxes.index(b"moov") < boxes.index(b"mdat")  # faststart
    if profile == "h265":
        assert dst.stat().st_size <= good_clip.stat().st_size
        assert b"hvc1" in dst.read_bytes()[:4096]
    if profile == "remux":
        assert res.encoder is None


def test_transcode_failures_leave_nothing(good_clip: Path, tmp_path: Path, ffmpeg_path: str) -> None:
    dst = tmp_path / "x.h264.mp4"
    with pytest.raises(MediaError, match="invalid preset 'bogus'"):
        transcode(good_clip, dst, "h264", crf=28, preset="bogus", ffmpeg=ffmpeg_path)
    with pytest.raises(MediaError, match="timed out"):
        transcode(good_clip, dst, "h264", crf=28, preset="medium", ffmpeg=ffmpeg_path, timeout=0.01)
    with pytest.raises(MediaError, match="unknown transcode profile"):
        transcode(good_clip, dst, "vp9", ffmpeg=ffmpeg_path)
    assert list(tmp_path.iterdir()) == []


def test_av1_without_encoder_is_a_clear_error(
    good_clip: Path, tmp_path: Path, ffmpeg_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ff, "encoders", lambda exe: frozenset({"libx264"}))
    with pytest.raises(MediaError, match="none of the encoders libsvtav1, libaom-av1, librav1e"):
        transcode_cmd(good_clip, tmp_path / "o.mp4", "av1", 30, "medium", ffmpeg_path)


# ------------------------------------------------------------------------------------------ thumbnails


def test_thumbnail_time() -> None:
    assert thumbnail_time(30.0) == 1.0
    assert thumbnail_time(1.0) == 0.5
    assert thumbnail_time(5.0, at_s=60) == pytest.approx(4.9)
    assert thumbnail_time(5.0, at_s=-3) == 0.0


@pytest.mark.parametrize("in_process", [True, False], ids=["pyav", "ffmpeg"])
def test_thumbnail_is_jpeg(
    in_process: bool, good_clip: Path, short_clip: Path, tmp_path: Path, ffmpeg_path: str
) -> None:
    jpg = make_thumbnail(good_clip, tmp_path / "t.jpg", ffmpeg_path, timeout=30, in_process=in_process)
    assert jpg.read_bytes()[:2] == b"\xff\xd8"
    info = probe(jpg, ffmpeg_path)
    assert (info.codec, info.width, info.height) == ("mjpeg", 320, 240)  # never upscaled
    small = make_thumbnail(
        short_clip, tmp_path / "s.jpg", ffmpeg_path, width=160, at_s=99, timeout=30, in_process=in_process
    )
    info = probe(small, ffmpeg_path)
    assert (info.width, info.height) == (160, 120)
    assert not list(tmp_path.glob(".*part*"))


def test_an_in_process_thumbnail_shows_the_frame_at_its_moment(
    tmp_path: Path, ffmpeg_path: str
) -> None:
    """The still is the frame at 1 s (the key frame before it is decoded first), not the first frame:
    a clip black for 1 s, then white, gives a white thumbnail."""
    av = pytest.importorskip("av")
    clip = tmp_path / "black-then-white.mp4"
    subprocess.run(
        [ffmpeg_path, "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=black:s=320x240:r=10:d=1",
         "-f", "lavfi", "-i", "color=c=white:s=320x240:r=10:d=1", "-filter_complex", "[0][1]concat=n=2",
         "-c:v", "mpeg4", "-g", "100", str(clip)],
        check=True, timeout=60,
    )  # fmt: skip
    jpg = make_thumbnail(clip, tmp_path / "t.jpg", None, in_process=True)
    with av.open(str(jpg)) as c:
        luma = bytes(next(c.decode(video=0)).reformat(format="gray").planes[0])
    assert sum(luma) / len(luma) > 200  # white: from 1 s in, though the only key frame is black (at 0)


def test_a_thumbnail_without_pyav_or_ffmpeg_is_one_line(
    good_clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(probe_mod, "pyav", lambda: None)
    with pytest.raises(MediaError, match=r"^no ffmpeg to make a thumbnail with"):
        make_thumbnail(good_clip, tmp_path / "t.jpg", None)


@pytest.mark.parametrize("kind", ["webp", "gif"])
def test_preview(kind: str, good_clip: Path, tmp_path: Path, ffmpeg_path: str) -> None:
    res = make_preview(good_clip, tmp_path / f"p.{kind}", ffmpeg_path, kind=kind, timeout=30)  # type: ignore[arg-type]
    data = res.path.read_bytes()
    if kind == "webp":
        assert data[:4] == b"RIFF" and data[8:12] == b"WEBP" and b"ANIM" in data[:64]
    else:
        assert data[:6] in (b"GIF89a", b"GIF87a")
    assert res.kind == kind and res.note is None


def test_preview_falls_back_to_gif(
    good_clip: Path, tmp_path: Path, ffmpeg_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ff.encoders(ffmpeg_path)
    monkeypatch.setattr(ff, "encoders", lambda exe: real - {"libwebp", "libwebp_anim"})
    res = make_preview(good_clip, tmp_path / "p.webp", ffmpeg_path, kind="webp", timeout=30)
    assert res.kind == "gif" and res.path.suffix == ".gif" and "GIF" in (res.note or "")
    assert res.path.read_bytes()[:3] == b"GIF"


# ------------------------------------------------------------------------------------------ processor


def _process(settings: ProcessingSettings, clip: Path, workdir: Path, has_blink: bool = True, **kw):
    with MediaProcessor(settings, **kw) as proc:
        return asyncio.run(proc.process(clip, workdir, has_blink))


class RunSpy:
    """Wraps ff.run: records (start, end, argv) of every ffmpeg run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, delay: float = 0.0) -> None:
        self.real = ff.run
        self.calls: list[tuple[float, float, list[str]]] = []
        self.delay = delay
        self.lock = threading.Lock()
        monkeypatch.setattr(ff, "run", self)

    def __call__(self, cmd, timeout):
        t0 = time.monotonic()
        try:
            time.sleep(self.delay)
            return self.real(cmd, timeout)
        finally:
            with self.lock:
                self.calls.append((t0, time.monotonic(), list(cmd)))

    def max_concurrency(self) -> int:
        events = sorted(
            [(s, 1) for s, _, _ in self.calls] + [(e, -1) for _, e, _ in self.calls],
            key=lambda x: (x[0], x[1]),
        )
        cur = best = 0
        for _, d in events:
            cur += d
            best = max(best, cur)
        return best


def test_processor_probe_only(clip_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = RunSpy(monkeypatch)
    res = _process(ProcessingSettings(thumbnail="blink"), clip_copy, tmp_path / "work")
    assert spy.calls == []  # the probe runs in this process: no ffmpeg started
    assert res.info and res.info.width == 320
    assert res.derived == [] and res.keep_original and res.warnings == []
    assert not (tmp_path / "work").exists()


@pytest.fixture
def no_system_ffmpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without Debian's ffmpeg/ffprobe (PATH loses the folders that hold them): imageio-ffmpeg's
    binary, no ffprobe. The suite passes with and without them installed."""
    folders = os.environ.get("PATH", "").split(os.pathsep)
    keep = [d for d in folders if d and not any(Path(d, exe).exists() for exe in ("ffmpeg", "ffprobe"))]
    monkeypatch.setenv("PATH", os.pathsep.join(keep))
    assert shutil.which("ffmpeg") is None and shutil.which("ffprobe") is None


def test_processor_probe_without_pyav_runs_ffmpeg(
    clip_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_system_ffmpeg: None
) -> None:
    """Without PyAV and without an ffprobe (imageio-ffmpeg's case) one ffmpeg run reads the metadata
    and checks the decode."""
    monkeypatch.setattr(probe_mod, "pyav", lambda: None)
    spy = RunSpy(monkeypatch)
    res = _process(ProcessingSettings(thumbnail="blink"), clip_copy, tmp_path / "work")
    # the header from ffprobe when there is one (Debian's ffmpeg), else from ffmpeg; then the decode check
    *header, decode = [argv for _, _, argv in spy.calls]
    assert "-xerror" in decode and len(header) <= 1
    assert all(Path(argv[0]).name.startswith("ffprobe") for argv in header)
    assert res.info and res.info.width == 320


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="no system ffprobe (Debian's ffmpeg) installed")
def test_processor_probe_without_pyav_uses_a_system_ffprobe(
    clip_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With Debian's ffmpeg installed: ffprobe reads the metadata, ffmpeg checks the decode."""
    monkeypatch.setattr(probe_mod, "pyav", lambda: None)
    spy = RunSpy(monkeypatch)
    res = _process(ProcessingSettings(thumbnail="blink"), clip_copy, tmp_path / "work")
    assert [Path(argv[0]).name for _, _, argv in spy.calls] == ["ffprobe", "ffmpeg"]
    assert "-xerror" in spy.calls[1][2]
    assert res.info and res.info.width == 320


def test_processor_everything(clip_copy: Path, tmp_path: Path) -> None:
    s = ProcessingSettings(
        transcode="h265", preset="ultrafast", keep_original=False, thumbnail="both", preview="webp"
    )
    res = _process(s, clip_copy, tmp_path / "work")
    assert res.warnings == []
    assert [(d.kind, d.suffix) for d in res.derived] == [
        ("thumbnail", ".jpg"),
        ("transcode", ".h265.mp4"),
        ("preview", ".webp"),
    ]
    assert [d.path.name for d in res.derived] == ["clip.jpg", "clip.h265.mp4", "clip.webp"]
    assert all(d.path.exists() for d in res.derived)
    assert res.keep_original is False  # transcode succeeded: the pipeline stores only the transcode
    assert res.model_dump()["info"]["duration"] == pytest.approx(2.0, abs=0.1)


def test_processor_generates_thumbnail_without_blink_one(clip_copy: Path, tmp_path: Path) -> None:
    res = _process(ProcessingSettings(thumbnail="blink"), clip_copy, tmp_path / "w", has_blink=False)
    assert [d.kind for d in res.derived] == ["thumbnail"]
    assert res.derived[0].path.read_bytes()[:2] == b"\xff\xd8"


def test_processor_without_probe_still_thumbnails_and_previews(clip_copy: Path, tmp_path: Path) -> None:
    s = ProcessingSettings(probe=False, thumbnail="generated", preview="gif")
    res = _process(s, clip_copy, tmp_path / "w")
    assert res.info is None and res.warnings == []
    assert [(d.kind, d.suffix) for d in res.derived] == [("thumbnail", ".jpg"), ("preview", ".gif")]


def test_processor_probe_failure_raises(truncated_clip: Path, json_file: Path, tmp_path: Path) -> None:
    for bad in (truncated_clip, json_file):
        with pytest.raises(MediaError):
            _process(ProcessingSettings(transcode="h264"), bad, tmp_path / "w")


def test_processor_failed_transcode_is_a_warning(clip_copy: Path, tmp_path: Path) -> None:
    res = _process(
        ProcessingSettings(transcode="h264", preset="bogus", keep_original=False, thumbnail="blink"),
        clip_copy,
        tmp_path / "w",
    )
    assert res.keep_original is True and res.derived == []
    assert len(res.warnings) == 1 and "invalid preset 'bogus'" in res.warnings[0]
    assert res.warnings[0].startswith("transcode")


def test_processor_timed_out_transcode_is_a_warning(clip_copy: Path, tmp_path: Path) -> None:
    s = ProcessingSettings(
        transcode="h264", keep_original=False, probe=False, timeout_s=0.01, thumbnail="blink"
    )
    res = _process(s, clip_copy, tmp_path / "w")
    assert res.info is None and res.keep_original is True and res.derived == []
    assert len(res.warnings) == 1 and "timed out after 0.01s" in res.warnings[0]
    assert list((tmp_path / "w").iterdir()) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_processor_pool_bounds_concurrency(
    workers: int, good_clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clips = [shutil.copyfile(good_clip, tmp_path / f"c{i}.mp4") for i in range(3)]
    spy = RunSpy(monkeypatch, delay=0.03)
    s = ProcessingSettings(transcode="remux", thumbnail="generated", workers=workers)

    async def main():
        proc = MediaProcessor(s)
        return await asyncio.gather(*(proc.process(Path(c), tmp_path / "w", True) for c in clips))

    results = asyncio.run(main())
    assert all(len(r.derived) == 2 and not r.warnings for r in results)
    assert len(spy.calls) == 3  # per clip: the remux (probes and thumbnails run in this process)
    assert spy.max_concurrency() == workers


def test_cancel_kills_ffmpeg(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    proc = MediaProcessor(ProcessingSettings(workers=1))

    async def main():
        task = asyncio.create_task(proc.job(ff.run, ["sh", "-c", f"echo $$ > {pidfile}; exec sleep 30"], 60))
        for _ in range(100):
            await asyncio.sleep(0.02)
            if pidfile.exists() and pidfile.read_text().strip():
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    t0 = time.monotonic()
    asyncio.run(main())
    pid = int(pidfile.read_text())
    while _alive(pid) and time.monotonic() - t0 < 10:  # SIGKILL is delivered asynchronously
        time.sleep(0.02)
    assert not _alive(pid)
    assert time.monotonic() - t0 < 10  # not the 30 s of the sleep
    proc.close()
