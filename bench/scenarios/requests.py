"""Requests per archived clip (10, issue 28): the default (the thumbnail made from the clip: one request
per clip plus the listing pages) against ``processing.thumbnail = "blink"`` (Blink's thumbnail too: two
per clip), each a fresh simulator with the same backlog, logged in outside the count, unthrottled (the
count does not depend on the pace; scenario 2 times the polite default against blinkpy's delay=1)."""

from __future__ import annotations

from typing import Any

from harness import Bench, SimProc, archiver_login, archiver_sync, settings_for, sim_opts, yes


def count_for(b: Bench, label: str, thumbnail: str) -> dict[str, Any]:
    with SimProc(**sim_opts(b)) as sim:
        settings = settings_for(
            sim, b.tmp / f"archiver-req-{label}", rps=0, processing={"thumbnail": thumbnail}
        )
        engine = archiver_login(settings)
        try:
            sim.cmd("reset")
            secs, rep = archiver_sync(settings, engine)
            c = sim.count()
        finally:
            engine.dispose()
    per_clip = c["requests"] / rep.stored if rep.stored else float("nan")
    print(
        f"  thumbnail={thumbnail}: {c['requests']} requests {c['by_kind']} for {rep.stored} clips "
        f"({per_clip:.3f} per clip), {secs:.2f} s",
        flush=True,
    )
    if rep.stored != b.args.clips or rep.failed:
        b.note(f"10 {label}: stored {rep.stored} of {b.args.clips}, {rep.failed} failed")
    return {"requests": c["requests"], "kinds": c["by_kind"], "stored": rep.stored, "per_clip": per_clip}


def requests_per_clip(b: Bench) -> None:
    print("\n[10] requests per archived clip", flush=True)
    n = b.args.clips
    default = count_for(b, "default", "generated")
    blink = count_for(b, "blink", "blink")
    b.s10 = {"default": default, "blink": blink}
    pages = default["kinds"].get("listing", 0)
    once = default["kinds"].get("homescreen", 0)  # once per sync (which Sync Modules have USB storage)
    b.row(
        f"10a requests per archived clip, default (thumbnail made from the clip), {n} clips",
        f"{default['per_clip']:.3f} ({default['requests']} req: {default['kinds'].get('clip', 0)} clips "
        f"+ {pages} listing pages + {once} homescreen)",
        f"blink: {blink['per_clip']:.3f} ({blink['requests']} req, "
        f"{blink['kinds'].get('thumbnail', 0)} thumbs)",
        f"{blink['requests'] / max(default['requests'], 1):.2f}x fewer requests",
        "clips + per-sync requests only",
        yes(
            default["requests"] == default["stored"] + pages + once and not default["kinds"].get("thumbnail")
        ),
    )
