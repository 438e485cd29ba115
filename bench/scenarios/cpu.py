"""CPU per archived clip (8): user + system CPU of the whole process (any ffmpeg child included) for a
backlog of clips (scenario 1's network) with the default processing (probe on, the thumbnail made from
the clip) and no rate limit, against blinkpy 0.25 ``download_videos(delay=0)`` as a process of its own.
Both start logged in (tokens stored / passed in); both pay their interpreter start-up and imports.

8b, the per-clip slope: the same at a second, larger backlog; (CPU at n2 - CPU at n1) / (n2 - n1) is
what each additional clip costs once start-up is paid (and the same for wall time), for both."""

from __future__ import annotations

from pathlib import Path

from harness import (
    Bench,
    Child,
    SimProc,
    archiver_cmd,
    archiver_env,
    archiver_login,
    dir_stats,
    oauth_tokens,
    run_blinkpy_process,
    run_child,
    settings_for,
    sim_opts,
    yes,
)


def _blinkpy(b: Bench, n: int, label: str) -> tuple[Child, int]:
    with SimProc(**sim_opts(b, clips=n)) as sim:  # scenario 1's network: 50 ms per request, 4 MiB/s
        tokens = oauth_tokens(sim)
        dest = b.tmp / f"blinkpy-cpu-{label}"
        dest.mkdir()
        sim.cmd("reset")
        bp = run_blinkpy_process(sim, dest, n // 25 + 2, tokens)
        files, _ = dir_stats(dest, ".mp4")
    return bp, files


def _archiver(b: Bench, n: int, label: str) -> tuple[Child, int, int]:
    with SimProc(**sim_opts(b, clips=n)) as sim:
        data: Path = b.tmp / f"archiver-cpu-{label}"
        archiver_login(settings_for(sim, data)).dispose()
        sim.cmd("reset")
        ar = run_child(
            [*archiver_cmd(), "sync"],
            # like for like with blinkpy: the archiving alone (the analysis' CPU is scenario 11's)
            env=archiver_env(
                sim, data, ARCHIVER_BLINK__MAX_REQUESTS_PER_SECOND="0", ARCHIVER_ANALYSIS__ENABLED="false"
            ),
        )
        files, _ = dir_stats(data / "archive", ".mp4")
        requests = sim.count()["requests"]
    return ar, files, requests


def _check(b: Bench, label: str, name: str, child: Child, files: int, n: int) -> None:
    if child.rc != 0 or files != n:
        b.note(f"{label}: {name} exit {child.rc}, {files} of {n} clips: {child.stderr[-300:]}")


def cpu_per_clip(b: Bench) -> None:
    n = b.args.cpu_clips
    print(f"\n[8] CPU per clip: {n} x {b.args.clip_kib} KiB, default processing, no rate limit", flush=True)
    bp, bp_files = _blinkpy(b, n, str(n))
    ar, ar_files, req = _archiver(b, n, str(n))
    bp_per, ar_per = bp.cpu / max(1, bp_files) * 1000, ar.cpu / max(1, ar_files) * 1000
    print(
        f"  blinkpy: {bp.cpu:.2f} s CPU, {bp.wall:.2f} s, {bp_files} clips (exit {bp.rc}); archiver: "
        f"{ar.cpu:.2f} s CPU, {ar.wall:.2f} s, {ar_files} clips, {req} requests (exit {ar.rc})",
        flush=True,
    )
    _check(b, "8", "blinkpy", bp, bp_files, n)
    _check(b, "8", "archiver", ar, ar_files, n)
    ratio = ar_per / bp_per
    b.row(
        f"8 CPU for {n}x{b.args.clip_kib} KiB (start-up included), default processing, whole processes",
        f"{ar.cpu:.2f} s CPU incl. children ({ar_per:.1f} ms/clip)",
        f"blinkpy delay=0: {bp.cpu:.2f} s ({bp_per:.1f} ms/clip)",
        f"{ratio:.2f}x blinkpy",
        "<= 2x",
        yes(ratio <= 2),
    )
    n2 = b.args.slope_clips
    if n2 <= n:
        return
    print(f"\n[8b] per-clip slope: the same at {n2} clips", flush=True)
    bp2, bp2_files = _blinkpy(b, n2, str(n2))
    ar2, ar2_files, _ = _archiver(b, n2, str(n2))
    print(
        f"  blinkpy: {bp2.cpu:.2f} s CPU, {bp2.wall:.2f} s; archiver: {ar2.cpu:.2f} s CPU, {ar2.wall:.2f} s",
        flush=True,
    )
    _check(b, "8b", "blinkpy", bp2, bp2_files, n2)
    _check(b, "8b", "archiver", ar2, ar2_files, n2)
    extra = n2 - n
    ar_cpu, bp_cpu = (ar2.cpu - ar.cpu) / extra * 1000, (bp2.cpu - bp.cpu) / extra * 1000
    ar_wall, bp_wall = (ar2.wall - ar.wall) / extra * 1000, (bp2.wall - bp.wall) / extra * 1000
    if min(ar_cpu, bp_cpu, ar_wall, bp_wall) <= 0:
        b.note(f"8b: a slope at or below zero: {n} -> {n2} clips is within the noise; use larger backlogs")
    ratio = ar_cpu / bp_cpu if bp_cpu > 0 else float("inf")
    b.row(
        f"8b CPU per additional clip (slope {n} -> {n2} clips, whole processes)",
        f"{ar_cpu:.1f} ms/clip CPU, {ar_wall:.1f} ms/clip wall",
        f"blinkpy: {bp_cpu:.1f} ms/clip CPU, {bp_wall:.1f} ms/clip wall",
        f"{ratio:.2f}x blinkpy CPU, {bp_wall / ar_wall:.1f}x faster" if ar_wall > 0 else f"{ratio:.2f}x",
        "<= 1.5x CPU",
        yes(0 < ratio <= 1.5),
    )
