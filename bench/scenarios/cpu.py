"""CPU per archived clip (8): user + system CPU of the whole process (any ffmpeg child included) for a
backlog of clips (scenario 1's network) with the default processing (probe on) and no rate limit,
against blinkpy 0.25 ``download_videos(delay=0)`` as a process of its own. Both start logged in
(tokens stored / passed in); both pay their interpreter start-up and imports."""

from __future__ import annotations

from harness import (
    Bench,
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


def cpu_per_clip(b: Bench) -> None:
    n = b.args.cpu_clips
    print(f"\n[8] CPU per clip: {n} x {b.args.clip_kib} KiB, default processing, no rate limit", flush=True)
    opts = sim_opts(b, clips=n)  # the network of scenario 1: 50 ms per request, 4 MiB/s per connection
    with SimProc(**opts) as sim:
        tokens = oauth_tokens(sim)
        dest = b.tmp / "blinkpy-cpu"
        dest.mkdir()
        sim.cmd("reset")
        bp = run_blinkpy_process(sim, dest, n // 25 + 2, tokens)
        bp_files, _ = dir_stats(dest, ".mp4")
    with SimProc(**opts) as sim:
        data = b.tmp / "archiver-cpu"
        archiver_login(settings_for(sim, data)).dispose()
        sim.cmd("reset")
        ar = run_child(
            [*archiver_cmd(), "sync"],
            # like for like with blinkpy: the archiving alone (the analysis' CPU is scenario 11's)
            env=archiver_env(
                sim, data, ARCHIVER_BLINK__MAX_REQUESTS_PER_SECOND="0", ARCHIVER_ANALYSIS__ENABLED="false"
            ),
        )
        ar_files, _ = dir_stats(data / "archive", ".mp4")
        c = sim.count()
    bp_per, ar_per = bp.cpu / max(1, bp_files) * 1000, ar.cpu / max(1, ar_files) * 1000
    print(
        f"  blinkpy: {bp.cpu:.2f} s CPU, {bp.wall:.2f} s, {bp_files} clips (exit {bp.rc}); archiver: "
        f"{ar.cpu:.2f} s CPU, {ar.wall:.2f} s, {ar_files} clips, {c['requests']} requests (exit {ar.rc})",
        flush=True,
    )
    for name, child, files in (("blinkpy", bp, bp_files), ("archiver", ar, ar_files)):
        if child.rc != 0 or files != n:
            b.note(f"8: {name} exit {child.rc}, {files} of {n} clips: {child.stderr[-300:]}")
    ratio = ar_per / bp_per
    b.row(
        f"8 CPU per clip, {n}x{b.args.clip_kib} KiB, default processing (probe on), whole processes",
        f"{ar_per:.1f} ms/clip ({ar.cpu:.2f} s CPU incl. children)",
        f"blinkpy delay=0: {bp_per:.1f} ms/clip ({bp.cpu:.2f} s)",
        f"{ratio:.2f}x blinkpy",
        "<= 3x (goal 2x)",
        yes(ratio <= 3) + (" (2x too)" if ratio <= 2 else ""),
    )
