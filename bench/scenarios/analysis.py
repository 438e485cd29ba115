"""Analysis (11, issue 24): CPU of the ``motion`` detector on a 30 s 1080p clip rendered by ffmpeg (budget
0.3 s), and a backlog's wall time with the analysis worker beside the sync and without it (the analysis
runs after each clip is stored: the archiving itself should not slow down)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from typing import Any

from harness import Bench, SimProc, archiver_login, settings_for, sim_opts, yes


def _render_1080p(b: Bench, seconds: int) -> Any:
    from archiver.media.ffmpeg import find_ffmpeg

    dst = b.tmp / "analysis-1080p.mp4"
    cmd = [
        find_ffmpeg(None),
        "-hide_banner",
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1920x1080:rate=30",
        "-t",
        str(seconds),
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "60",
        "-pix_fmt",
        "yuv420p",
        str(dst),
    ]  # fmt: skip  (a key frame every 2 s, like a camera's stream)
    subprocess.run(cmd, check=True, timeout=600)
    return dst


def _backlog(b: Bench, label: str, analysis: bool) -> tuple[float, float, int]:
    """(seconds until the sync returned, seconds until the analysis drained, clips stored)."""
    from archiver.analysis.runner import with_analysis
    from archiver.pipeline.runner import sync_all

    with SimProc(**sim_opts(b)) as sim:
        settings = settings_for(sim, b.tmp / f"archiver-analysis-{label}", rps=0)
        settings.analysis.enabled = analysis
        engine = archiver_login(settings)
        sim.cmd("reset")
        marks: dict[str, float] = {}

        async def run(factory: Any) -> Any:
            reports = await sync_all(settings, engine, reporter_factory=factory)
            marks["synced"] = time.perf_counter()
            return reports

        t0 = time.perf_counter()
        [report] = asyncio.run(with_analysis(settings, engine, run))
        done = time.perf_counter()
        engine.dispose()
    return marks["synced"] - t0, done - t0, report.stored


def analysis_cpu(b: Bench) -> None:
    from archiver.analysis.motion import MotionDetector

    seconds = b.args.analysis_s
    print(f"\n[11] analysis: motion on a {seconds} s 1080p clip; backlog with and without it", flush=True)
    clip = _render_1080p(b, seconds)
    detector = MotionDetector()
    detector.analyze(clip)  # imports and codec set-up, once per process
    cpu = []
    for _ in range(3):
        t = time.process_time()
        score = detector.analyze(clip).activity
        cpu.append(time.process_time() - t)
    best = min(cpu)
    print(
        f"  motion: {best * 1000:.0f} ms CPU (runs {[round(c * 1000) for c in cpu]}), activity {score}",
        flush=True,
    )
    b.row(
        f"11a analysis CPU per clip (motion), {seconds} s 1080p H.264",
        f"{best * 1000:.0f} ms CPU",
        "budget 300 ms",
        f"{best / 0.3:.2f}x budget",
        "< 0.3 s",
        yes(best < 0.3),
    )
    off_sync, _, off_n = _backlog(b, "off", False)
    on_sync, on_all, on_n = _backlog(b, "on", True)
    print(
        f"  backlog {b.args.clips} clips: sync {off_sync:.2f} s without analysis, {on_sync:.2f} s with it "
        f"(analysis drained at {on_all:.2f} s); stored {off_n}/{on_n}",
        flush=True,
    )
    b.row(
        f"11b backlog {b.args.clips} clips unthrottled, analysis (motion) on vs off",
        f"sync {on_sync:.2f} s (all analysed at {on_all:.2f} s)",
        f"off: {off_sync:.2f} s",
        f"{on_sync / off_sync:.2f}x",
        "no effect (<= 1.1x)",
        yes(on_sync / off_sync <= 1.1),
    )
