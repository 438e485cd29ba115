"""The blink-archiver benchmark: one command, one table.

    pip install -e '.[bench]'          # blinkpy 0.25.x (the peer) and psutil
    python bench/run.py                # everything, about 8 minutes on a 2-core machine
    python bench/run.py --quick        # smaller sizes, about 2 minutes
    python bench/run.py --only 7,8,9   # pick scenarios (3 and 4 need 1; 9 runs inside 6)

Layout: ``harness.py`` (simulator process, child processes measured with wait4, the table), ``peers.py``
(blinkpy), ``scenarios/*`` (one module per scenario), ``simproc.py`` (the simulator as a process, with a
per-request latency, a per-connection bandwidth cap and an optional server rate limit).

1.  Backlog, unthrottled, in-process: 100 cloud clips of 512 KiB (+ thumbnails), 50 ms per request,
    4 MiB/s per connection; ``sync_all`` with ``max_requests_per_second = 0`` against blinkpy 0.25
    ``download_videos(delay=0)``, both logged in beforehand.
1w. The same as whole processes, log-in included: ``archiver sync`` in a fresh data folder (the schema
    created beforehand, no account yet) against a process running blinkpy's ``Blink.start()`` +
    ``download_videos(delay=0)``. Goal: >= 5x faster.
1b. Scenario 1 with a higher ``sync.concurrency`` (context).
2.  Backlog, polite: the archiver's defaults against blinkpy's delay=1, and requests per archived clip.
3.  The ideal time of scenario 1 from its requests, latency and bandwidth at the starting transfer count.
4.  No-op sync: requests, logins and wall time of syncs with nothing new (after the backlog of 1).
5.  Memory: peak RSS of an ``archiver sync`` process archiving one 512 MiB clip vs one 16 MiB clip.
6.  Scale: 100,000 stored clips (inserted through the models into a fresh SQLite database): no-op sync and
    ``archiver status`` in-process, a retention pass (dry run and a real prune of ~10 %).
7.  Unknown server limit: the server allows 4 requests/s (Retry-After 2 s), the user set 10; time against
    requests / 4 and the number of 429s; then a second run that starts at the learned rate.
8.  CPU per clip: 100 x 512 KiB with the default processing, whole processes, vs blinkpy.
8b. Per-clip slope: the same at 400 clips; (CPU at 400 - CPU at 100) / 300 for both, and the wall time's
    slope: what each additional clip costs once start-up is paid (issue 27: <= 1.5x blinkpy's CPU).
9.  Start-up, whole processes: ``--help``, ``status`` and a no-op ``sync`` at 100,000 clips (inside 6).
10. Requests per archived clip: the default (thumbnail made from the clip) against ``thumbnail = "blink"``.
11. Analysis: CPU of the ``motion`` detector on a 30 s 1080p clip (budget 0.3 s), and a backlog's wall
    time with the analysis worker beside the sync and without it (no effect expected).

All figures are from one run on a shared machine: compare the ratios, not the absolute seconds.

The whole-process scenarios run the first ``archiver`` on PATH. In a ``.[test]`` venv, httpcore imports
trio (selenium's dependency) whenever it is installed: ~0.1-0.25 s a process that a user's install does
not pay. To measure what a user runs, put a venv with only ``pip install -e .`` first on PATH:
``PATH=/tmp/uvenv/bin:$PATH python bench/run.py --only 8,9``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import MIB, Bench, archiver_cmd, print_table
from scenarios import analysis, backlog, cpu, limit, memory, noop, requests, scale


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (about two minutes)")
    ap.add_argument(
        "--only", default="1,1w,2,3,4,5,6,7,8,10,11", help="comma-separated scenarios (default: all)"
    )
    ap.add_argument("--clips", type=int, help="backlog clips (default 100, quick 25)")
    ap.add_argument("--clip-kib", type=int, default=512)
    ap.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    ap.add_argument("--bandwidth", type=float, default=4 * MIB, help="bytes/s per connection")
    ap.add_argument("--extra-concurrency", type=int, default=None, help="scenario 1b (default 8; quick: off)")
    ap.add_argument("--mem-big-mib", type=int, help="big clip of scenario 5 (default 512, quick 128)")
    ap.add_argument("--scale", type=int, help="clips in scenario 6 (default 100000, quick 20000)")
    ap.add_argument("--scale-days", type=float, default=100.0, help="the scale clips span this many days")
    ap.add_argument("--age-s", type=int, default=3600, help="scenario 4: how far to move clips into the past")
    ap.add_argument("--limit-rps", type=float, default=4.0, help="scenario 7: the server's limit")
    ap.add_argument("--retry-after", type=float, default=2.0, help="scenario 7: its Retry-After")
    ap.add_argument("--limit-clips", type=int, help="scenario 7 clips per run (default 60, quick 20)")
    ap.add_argument("--cpu-clips", type=int, help="scenario 8 clips (default 100, quick 40)")
    ap.add_argument(
        "--slope-clips", type=int, help="scenario 8b: the second backlog (default 400, quick 120; 0: off)"
    )
    ap.add_argument(
        "--analysis-s", type=int, help="scenario 11: the 1080p clip's length (default 30, quick 10)"
    )
    ap.add_argument("--startup-reps", type=int, default=3, help="scenario 9: best of this many runs")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    args.clips = args.clips or (25 if args.quick else 100)
    args.mem_big_mib = args.mem_big_mib or (128 if args.quick else 512)
    args.scale = args.scale or (20_000 if args.quick else 100_000)
    args.limit_clips = args.limit_clips or (20 if args.quick else 60)
    args.cpu_clips = args.cpu_clips or (40 if args.quick else 100)
    if args.slope_clips is None:
        args.slope_clips = 120 if args.quick else 400
    args.analysis_s = args.analysis_s or (10 if args.quick else 30)
    if args.extra_concurrency is None:
        args.extra_concurrency = 0 if args.quick else 8
    return args


def warm_bytecode() -> None:
    """Compile the archiver's modules once, as pip does on install: with PYTHONDONTWRITEBYTECODE set (or
    a fresh checkout), every whole process would otherwise compile each edited module again."""
    import compileall

    import archiver

    compileall.compile_dir(Path(archiver.__file__).parent, quiet=2)


def main() -> int:
    args = parse_args()
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    if only & {"3", "4"}:
        only.add("1")
    if "9" in only:
        only.add("6")

    import blinkpy  # noqa: F401  (fail early: pip install -e '.[bench]')
    import psutil  # noqa: F401

    started = time.perf_counter()
    warm_bytecode()
    tmp = Path(tempfile.mkdtemp(prefix="archiver-bench-"))
    b = Bench(args, tmp)
    load = os.getloadavg()[0]
    print(
        f"blink-archiver bench: `{' '.join(archiver_cmd())}` (whole processes), "
        f"{args.clips} clips x {args.clip_kib} KiB, "
        f"{args.latency * 1000:.0f} ms/request, "
        f"{args.bandwidth / MIB:.1f} MiB/s per connection; {os.cpu_count()} CPUs, load {load:.1f}; tmp {tmp}",
        flush=True,
    )
    steps = (
        ("8", cpu.cpu_per_clip),
        ("7", limit.unknown_limit),
        ("1", backlog.unthrottled),
        ("1", backlog.extra_concurrency),
        ("3", backlog.ideal),
        ("4", noop.noop),
        ("1w", backlog.whole_process),
        ("10", requests.requests_per_clip),
        ("2", backlog.polite),
        ("5", memory.memory),
        ("6", scale.scale),
        ("11", analysis.analysis_cpu),
    )
    try:
        for key, fn in steps:
            if key in only:
                fn(b)
    finally:
        if b.s1.get("sim"):
            b.s1["sim"].close()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print_table(b)
    print(
        f"\ntotal bench time {time.perf_counter() - started:.0f} s; load average at the start {load:.1f}, at "
        f"the end {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs); ratios are from this one run."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
