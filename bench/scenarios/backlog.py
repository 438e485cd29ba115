"""Backlogs: unthrottled in-process (1) and as whole processes with log-in (1w), polite defaults (2), and
the ideal time of 1 from its request count, latency and bandwidth (3)."""

from __future__ import annotations

import shutil
from typing import Any

from harness import (
    KIB,
    MIB,
    Bench,
    SimProc,
    archiver_cmd,
    archiver_env,
    archiver_login,
    archiver_sync,
    dir_stats,
    oauth_tokens,
    run_blinkpy_process,
    run_child,
    settings_for,
    sim_opts,
    yes,
)
from peers import blinkpy_download


def _stop(b: Bench) -> int:
    return b.args.clips // 25 + 2  # pages 1..n/25+1: enough to see every clip


def backlog_pair(b: Bench, label: str, rps: float | None, delay: float, **sync: Any) -> dict[str, Any]:
    """blinkpy then the archiver (in-process, logged in outside the timing), each against a fresh
    simulator holding the same backlog."""
    n = b.args.clips
    out: dict[str, Any] = {}
    with SimProc(**sim_opts(b)) as sim:
        tokens = oauth_tokens(sim)
        sim.cmd("reset")
        dest = b.tmp / f"blinkpy-{label}"
        dest.mkdir()
        out["bp_s"] = blinkpy_download(sim, tokens, dest, delay=delay, stop=_stop(b))
        c = sim.count()
        out["bp_req"], out["bp_kinds"] = c["requests"], c["by_kind"]
        out["bp_files"], out["bp_bytes"] = dir_stats(dest, ".mp4")
        shutil.rmtree(dest, ignore_errors=True)
    print(
        f"  blinkpy delay={delay}: {out['bp_s']:.2f} s, {out['bp_req']} requests {out['bp_kinds']}, "
        f"{out['bp_files']} files",
        flush=True,
    )
    sim = SimProc(**sim_opts(b))
    data = b.tmp / f"archiver-{label}"
    settings = settings_for(sim, data, rps=rps, **sync)
    engine = archiver_login(settings)
    sim.cmd("reset")
    before = sim.count()
    out["ar_s"], rep = archiver_sync(settings, engine)
    c = sim.count()
    out["ar_req"], out["ar_kinds"] = c["requests"], c["by_kind"]
    out["ar_logins"] = c["logins"] - before["logins"]
    out["ar_stored"], out["ar_failed"] = rep.stored, rep.failed
    out["ar_files"], out["ar_bytes"] = dir_stats(settings.archive_dir, ".mp4")
    out["sim"], out["settings"], out["engine"] = sim, settings, engine
    print(
        f"  archiver ({label}): {out['ar_s']:.2f} s, {out['ar_req']} requests {out['ar_kinds']}, "
        f"stored {rep.stored}, failed {rep.failed}, logins during sync {out['ar_logins']}",
        flush=True,
    )
    if out["bp_files"] != n:
        b.note(f"{label}: blinkpy saved {out['bp_files']} of {n} clips")
    if rep.stored != n or rep.failed:
        b.note(
            f"{label}: archiver stored {rep.stored} of {n} clips, {rep.failed} failed: {rep.clip_errors[:3]}"
        )
    return out


def unthrottled(b: Bench) -> None:
    print("\n[1] backlog, unthrottled", flush=True)
    r = backlog_pair(b, "s1", rps=0, delay=0)
    b.s1 = r
    ratio = r["bp_s"] / r["ar_s"]
    b.row(
        f"1 backlog {b.args.clips}x{b.args.clip_kib} KiB, unthrottled, in-process "
        f"(rps=0, conc={r['settings'].sync.concurrency})",
        f"{r['ar_s']:.2f} s, {r['ar_req']} req (incl. {r['ar_kinds'].get('thumbnail', 0)} thumbs)",
        f"blinkpy delay=0: {r['bp_s']:.2f} s, {r['bp_req']} req",
        f"{ratio:.2f}x faster",
        "(in-process; see 1w)",
        "-",
    )


def whole_process(b: Bench) -> None:
    """Both as a user runs them: a fresh process that logs in, then downloads the backlog."""
    print("\n[1w] backlog, unthrottled, whole processes, log-in included", flush=True)
    n = b.args.clips
    with SimProc(**sim_opts(b)) as sim:
        dest = b.tmp / "blinkpy-1w"
        dest.mkdir()
        bp = run_blinkpy_process(sim, dest, _stop(b))
        bp_files, _ = dir_stats(dest, ".mp4")
        bp_req = sim.count()["requests"]
    print(
        f"  blinkpy process: {bp.wall:.2f} s (exit {bp.rc}), {bp_req} requests, {bp_files} files", flush=True
    )
    if bp.rc != 0 or bp_files != n:
        b.note(f"1w: blinkpy exit {bp.rc}, {bp_files} of {n} clips: {bp.stderr[-300:]}")
    with SimProc(**sim_opts(b)) as sim:
        data = b.tmp / "archiver-1w"
        data.mkdir()
        # the database schema exists (a one-time install step, like writing the config); no account yet,
        # so the timed process logs in
        from archiver.db.engine import open_database

        open_database(f"sqlite:///{data / 'archiver.db'}").dispose()
        env = archiver_env(sim, data, ARCHIVER_BLINK__MAX_REQUESTS_PER_SECOND="0")
        ar = run_child([*archiver_cmd(), "sync"], env=env)
        c = sim.count()
        ar_files, _ = dir_stats(data / "archive", ".mp4")
    print(
        f"  archiver process: {ar.wall:.2f} s (exit {ar.rc}), {c['requests']} requests {c['by_kind']}, "
        f"{ar_files} clips, logins {c['logins']}",
        flush=True,
    )
    if ar.rc != 0 or ar_files != n:
        b.note(f"1w: archiver exit {ar.rc}, {ar_files} of {n} clips: {ar.stderr[-300:]}")
    ratio = bp.wall / ar.wall
    b.row(
        f"1w backlog {n}x{b.args.clip_kib} KiB unthrottled, whole processes with log-in",
        f"`archiver sync` (rps=0): {ar.wall:.2f} s, {c['requests']} req",
        f"blinkpy start()+download_videos(delay=0): {bp.wall:.2f} s, {bp_req} req",
        f"{ratio:.2f}x faster",
        ">= 5x faster",  # issue 27
        yes(ratio >= 5),
    )


def extra_concurrency(b: Bench) -> None:
    conc = b.args.extra_concurrency
    if not conc or not b.s1:
        return
    print(f"\n[1b] backlog, unthrottled, sync.concurrency={conc}", flush=True)
    r = b.s1
    with SimProc(**sim_opts(b)) as sim:
        settings = settings_for(sim, b.tmp / "archiver-s1b", rps=0, concurrency=conc)
        engine = archiver_login(settings)
        sim.cmd("reset")
        secs, rep = archiver_sync(settings, engine)
        c = sim.count()
        engine.dispose()
    ratio = r["bp_s"] / secs
    print(f"  archiver conc={conc}: {secs:.2f} s, {c['requests']} requests, stored {rep.stored}", flush=True)
    b.row(
        f"1b same, sync.concurrency={conc} (not the default)",
        f"{secs:.2f} s, {c['requests']} req",
        f"blinkpy delay=0: {r['bp_s']:.2f} s",
        f"{ratio:.2f}x faster",
        "(context for 1)",
        "-",
    )


def ideal(b: Bench) -> None:
    print("\n[3] the limit", flush=True)
    if not b.s1:
        print("  (needs scenario 1)")
        return
    from archiver.simulator.media import thumbnail_bytes

    r = b.s1
    conc = r["settings"].sync.concurrency
    n = b.args.clips
    thumb = len(thumbnail_bytes("cloud:2139143346"))
    nbytes = n * b.args.clip_kib * KIB + n * thumb
    req = r["ar_req"]
    best = (req * b.args.latency + nbytes / b.args.bandwidth) / conc
    listing = r["ar_kinds"].get("listing", 0) + r["ar_kinds"].get("homescreen", 0)
    strict = listing * b.args.latency + ((req - listing) * b.args.latency + nbytes / b.args.bandwidth) / conc
    ratio = r["ar_s"] / best
    b.row(
        f"3 ideal of 1 at {conc} transfers: ({req} req x {b.args.latency * 1000:.0f} ms + "
        f"{nbytes / MIB:.1f} MiB / {b.args.bandwidth / MIB:.0f} MiB/s) / {conc}",
        f"{r['ar_s']:.2f} s",
        f"ideal {best:.2f} s",
        f"{ratio:.2f}x ideal",
        "(informational)",
        "-",
    )
    b.note(
        f"3: with the {listing} listing/homescreen requests counted as sequential (they are: each page "
        f"needs the previous one) the ideal at {conc} transfers is {strict:.2f} s and the archiver is at "
        f"{r['ar_s'] / strict:.2f}x; more transfers (the link allows them) beat this 'ideal'"
    )


def polite(b: Bench) -> None:
    print("\n[2] backlog, polite (defaults)", flush=True)
    r = backlog_pair(b, "s2", rps=None, delay=1)
    rate = r["settings"].blink.max_requests_per_second
    budget = r["ar_req"] / rate
    mult = r["ar_s"] / budget
    b.row(
        f"2a backlog polite: archiver defaults (rate {rate:g}/s, conc {r['settings'].sync.concurrency})",
        f"{r['ar_s']:.2f} s, {r['ar_req']} req",
        f"req/rate = {budget:.2f} s",
        f"{mult:.3f}x budget",
        "<= 1.1x",
        yes(mult <= 1.1),
    )
    vs = r["bp_s"] / r["ar_s"]
    per_clip = r["ar_req"] / max(r["ar_stored"], 1)
    b.row(
        "2b backlog polite vs blinkpy delay=1 (issue 28: one request per clip)",
        f"{r['ar_s']:.2f} s ({r['ar_req']} req, {per_clip:.2f} per clip, "
        f"{r['ar_stored'] / r['ar_s']:.2f} clips/s)",
        f"blinkpy: {r['bp_s']:.2f} s ({r['bp_req']} req)",
        f"{vs:.2f}x faster",
        "about 2x (>= 1.8x)",
        yes(vs >= 1.8),
    )
    r["engine"].dispose()
    r["sim"].close()
