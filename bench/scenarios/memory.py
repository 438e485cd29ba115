"""Memory (5): peak RSS of an ``archiver sync`` process archiving one big clip vs one small clip."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from harness import (
    MIB,
    Bench,
    SimProc,
    archiver_cmd,
    archiver_env,
    archiver_login,
    dir_stats,
    settings_for,
    yes,
)


def rss_run(b: Bench, size: int) -> dict[str, Any]:
    import psutil

    with SimProc(clips=1, size=size) as sim:
        data = b.tmp / f"mem-{size}"
        settings = settings_for(sim, data)
        archiver_login(settings).dispose()
        # the size cap ([limits] max_clip_bytes, 500 MB by default) is not what this measures
        env = archiver_env(sim, data, ARCHIVER_LIMITS__MAX_CLIP_BYTES=str(2 * size))
        peak = {"self": 0, "tree": 0, "hwm": 0}
        err = (data / "stderr.txt").open("w")
        t0 = time.perf_counter()
        proc = subprocess.Popen([*archiver_cmd(), "sync"], env=env, stdout=subprocess.DEVNULL, stderr=err)
        ps = psutil.Process(proc.pid)
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                try:
                    me = ps.memory_info().rss
                    tree = me + sum(c.memory_info().rss for c in ps.children(recursive=True))
                except psutil.Error:
                    break
                peak["self"] = max(peak["self"], me)
                with contextlib.suppress(OSError, ValueError):  # the kernel's own high-water mark
                    for ln in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                        if ln.startswith("VmHWM:"):
                            peak["hwm"] = max(peak["hwm"], int(ln.split()[1]) * 1024)
                peak["tree"] = max(peak["tree"], tree)
                time.sleep(0.01)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        secs = time.perf_counter() - t0
        stop.set()
        th.join()
        err.close()
        files, nbytes = dir_stats(settings.archive_dir, ".mp4")
        # ru_maxrss of this one child (kilobytes on Linux): its own peak, or a waited-for descendant's
        out = {
            "sampled": peak["self"],
            "tree": peak["tree"],
            "maxrss": usage.ru_maxrss * 1024,
            "hwm": max(peak["hwm"], peak["self"]),
            "secs": secs,
            "ok": proc.returncode == 0 and files == 1 and nbytes == size,
            "rc": proc.returncode,
        }
        print(
            f"  {size / MIB:.0f} MiB clip: exit {proc.returncode}, {secs:.1f} s, archive {files} file(s) "
            f"{nbytes / MIB:.1f} MiB, peak RSS sampled {peak['self'] / MIB:.1f} MiB (with children "
            f"{peak['tree'] / MIB:.1f}), VmHWM {out['hwm'] / MIB:.1f} MiB, wait4 ru_maxrss (max over the "
            f"process, and the forked bench before exec) {out['maxrss'] / MIB:.1f} MiB",
            flush=True,
        )
        if not out["ok"]:
            b.note(
                f"5: the {size / MIB:.0f} MiB sync did not store the clip: "
                f"{(data / 'stderr.txt').read_text()[-500:]}"
            )
        shutil.rmtree(data, ignore_errors=True)
        return out


def memory(b: Bench) -> None:
    print("\n[5] memory", flush=True)
    big, small = b.args.mem_big_mib * MIB, 16 * MIB
    s = rss_run(b, small)
    g = rss_run(b, big)
    peak_big, peak_small = g["hwm"], s["hwm"]
    b.row(
        f"5 peak RSS (VmHWM) of the `archiver sync` process, one {b.args.mem_big_mib} MiB clip",
        f"{peak_big / MIB:.1f} MiB ({g['secs']:.1f} s); ru_maxrss {g['maxrss'] / MIB:.1f}",
        f"16 MiB clip: {peak_small / MIB:.1f} MiB; ru_maxrss {s['maxrss'] / MIB:.1f}",
        f"{peak_big / peak_small:.2f}x",
        "< 80 MiB, flat",  # issue 27
        yes(peak_big < 80 * MIB and g["ok"] and peak_big / peak_small < 1.25),
    )
    b.note(
        "5: VmHWM is the kernel's peak RSS of the archiver process itself; wait4's ru_maxrss also counts the "
        "forked bench process before its exec (Linux keeps the mark across execve), so it can exceed VmHWM."
    )
