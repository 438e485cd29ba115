"""Start-up (9): whole processes as a user starts them: ``archiver --help``, ``archiver status`` and a
no-op ``archiver sync`` on the 100,000-clip database of scenario 6 (best of a few runs each: the machine
is shared)."""

from __future__ import annotations

import sys
from pathlib import Path

from harness import Bench, SimProc, archiver_cmd, archiver_env, best_of, run_child, yes


def at_scale(b: Bench, sim: SimProc, data: Path) -> None:
    n = b.args.scale
    reps = b.args.startup_reps
    env = archiver_env(None, data)
    bare = best_of(reps, lambda: run_child([sys.executable, "-c", "pass"], env=env))
    helped = best_of(reps, lambda: run_child([*archiver_cmd(), "--help"], env=env))
    status = best_of(reps, lambda: run_child([*archiver_cmd(), "status"], env=env))
    if status.rc != 0:
        b.note(f"9: archiver status exited {status.rc}: {status.stderr[-300:]}")
    sync_env = archiver_env(sim, data)

    def noop() -> object:
        sim.cmd("reset")
        return run_child([*archiver_cmd(), "sync"], env=sync_env)

    sync = best_of(reps, noop)
    reqs = sim.count()["requests"]
    if sync.rc != 0:
        b.note(f"9: no-op archiver sync exited {sync.rc}: {sync.stderr[-300:]}")
    print(
        f"  whole processes (best of {reps}): python alone {bare.wall:.3f} s, --help {helped.wall:.3f} s, "
        f"status {status.wall:.3f} s, no-op sync {sync.wall:.3f} s ({reqs} requests, exit {sync.rc})",
        flush=True,
    )
    context = f"python alone {bare.wall:.2f} s"
    b.row(
        "9a `archiver --help`, whole process",
        f"{helped.wall:.3f} s",
        context,
        "-",
        "< 0.25 s",
        yes(helped.wall < 0.25),
    )
    b.row(
        f"9b `archiver status`, {n:,} clips, whole process",
        f"{status.wall:.3f} s",
        context,
        "-",
        "< 0.3 s",  # issue 27
        yes(status.wall < 0.3 and status.rc == 0),
    )
    b.row(
        f"9c no-op `archiver sync`, {n:,} clips, whole process",
        f"{sync.wall:.3f} s, {reqs} req",
        context,
        "-",
        "< 0.5 s",  # issue 27
        yes(sync.wall < 0.5 and sync.rc == 0),
    )
