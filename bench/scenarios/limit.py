"""The unknown limit (7): Blink allows fewer requests per second than the user's setting. The simulator
allows ``--limit-rps`` (sliding one-second window, 429 with Retry-After past it); the archiver is set to
``max_requests_per_second = 10`` and must find the real limit: total time against requests / limit, and
how many 429s it took. Then a second run on the same database: it starts at the learned rate."""

from __future__ import annotations

import time

from harness import Bench, SimProc, archiver_login, archiver_sync, settings_for, sim_opts, yes


def unknown_limit(b: Bench) -> None:
    limit, n = b.args.limit_rps, b.args.limit_clips
    print(
        f"\n[7] unknown server limit: {limit:g} req/s (Retry-After {b.args.retry_after:g} s), {n} clips",
        flush=True,
    )
    opts = sim_opts(b, clips=n, rate_limit=limit, retry_after=b.args.retry_after)
    with SimProc(**opts) as sim:
        settings = settings_for(sim, b.tmp / "archiver-limit", rps=10)
        engine = archiver_login(settings)
        time.sleep(1.1)  # the log-in's requests leave the server's one-second window first
        results = []
        for run in (1, 2):
            if run == 2:
                sim.cmd(f"add {n} {b.args.clip_kib * 1024}")
            sim.cmd("reset")
            secs, rep = archiver_sync(settings, engine)
            c = sim.count()
            budget = c["requests"] / limit
            per130 = c["throttled"] * 130 / max(1, c["requests"])
            results.append((secs, c, budget, per130, rep))
            print(
                f"  run {run}: {secs:.2f} s, {c['requests']} requests ({c['throttled']} answered 429) "
                f"{c['by_kind']}, stored {rep.stored}, failed {rep.failed}; requests/limit = {budget:.2f} s",
                flush=True,
            )
            if rep.stored != n or rep.failed:
                b.note(f"7: run {run} stored {rep.stored} of {n}, failed {rep.failed}: {rep.clip_errors[:2]}")
        engine.dispose()
    (s1, c1, b1, p1, _), (s2, c2, b2, _, _) = results
    b.row(
        f"7 unknown limit: server {limit:g}/s, max_requests_per_second=10, {n} clips",
        f"{s1:.2f} s, {c1['requests']} req, {c1['throttled']} x 429 ({p1:.1f} per 130 req)",
        f"requests / limit = {b1:.2f} s",
        f"{s1 / b1:.2f}x",
        "<= 1.25x, <= 4 x 429 / 130 req",
        yes(s1 / b1 <= 1.25 and p1 <= 4),
    )
    b.row(
        "7' next run, same account (learned rate)",
        f"{s2:.2f} s, {c2['requests']} req, {c2['throttled']} x 429",
        f"requests / limit = {b2:.2f} s",
        f"{s2 / b2:.2f}x",
        "(informational)",
        "-",
    )
