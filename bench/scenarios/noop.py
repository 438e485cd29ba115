"""No-op syncs (4): requests, logins and wall time of syncs with nothing new, after scenario 1."""

from __future__ import annotations

from typing import Any

from harness import Bench, SimProc, archiver_cmd, archiver_env, archiver_sync, run_child, yes


def noop(b: Bench) -> None:
    print("\n[4] no-op sync", flush=True)
    if not b.s1:
        print("  (needs scenario 1)")
        return
    from archiver.config import load_settings

    sim: SimProc = b.s1["sim"]
    s1 = b.s1["settings"]
    # the no-op uses the defaults (rate limit 2/s) on the database scenario 1 filled
    settings = load_settings(
        None,
        data_dir=s1.data_dir,
        blink={"server_url": sim.url, "username": sim.info["username"], "password": sim.info["password"]},
    )
    engine = b.s1["engine"]

    def once(label: str) -> tuple[float, int, int, Any]:
        sim.cmd("reset")
        before = sim.count()
        secs, rep = archiver_sync(settings, engine)
        c = sim.count()
        print(
            f"  {label}: {secs * 1000:.0f} ms, {c['requests']} requests {c['by_kind']}, listed {rep.listed}, "
            f"new {rep.new}, logins {c['logins'] - before['logins']}",
            flush=True,
        )
        return secs, c["requests"], c["logins"] - before["logins"], rep

    _, n_a, _, rep_a = once("sync right after the backlog (re-lists clips marked watched)")
    _, n_b, _, rep_b = once("next sync, right after (still inside sync.overlap_minutes)")
    sim.cmd(f"age {b.args.age_s}")
    s_c, n_c, l_c, _ = once(f"steady state: clip times moved {b.args.age_s} s into the past")
    env = archiver_env(sim, s1.data_dir)
    sim.cmd("reset")
    p = run_child([*archiver_cmd(), "sync"], env=env)
    n_sub = sim.count()["requests"]
    print(
        f"  steady state, whole process `archiver sync`: {p.wall * 1000:.0f} ms, {n_sub} requests, "
        f"exit {p.rc}",
        flush=True,
    )
    b.row(
        "4 no-op sync, steady state (defaults)",
        f"{n_c} req, {l_c} logins, {s_c * 1000:.0f} ms in-process / {p.wall * 1000:.0f} ms whole process",
        "goal 1 req, 0 logins",
        f"{n_c} req",
        "1 request, no login",
        yes(n_c == 1 and l_c == 0 and n_sub == 1),
    )
    b.row(
        "4' no-ops right after the backlog",
        f"{n_a} req ({rep_a.listed} listed), then {n_b} req ({rep_b.listed} listed)",
        "-",
        "-",
        "(informational)",
        "-",
    )
    b.note(
        f"4: downloading marks clips watched (updated_at bumps), and every listing re-reads "
        f"sync.overlap_minutes={settings.sync.overlap_minutes:g} of the previous window, so syncs within "
        f"{settings.sync.overlap_minutes:g} min of a backlog re-list it ({n_a} and {n_b} requests); the "
        f"steady state is measured after moving the simulator's clip times {b.args.age_s} s back."
    )
    engine.dispose()
    sim.close()
