"""Serve a benchmark Blink simulator in its own process, controlled over stdin/stdout.

Running the simulator in a separate process keeps its request threads from competing for the bench
process's GIL (blinkpy and the in-process archiver run there).

    python bench/simproc.py --latency 0.05 --bandwidth 4194304 --clips 100 --size 524288

Prints one JSON line ``{"url": ..., "account_id": ..., "username": ..., "password": ..., "tier": ...}``,
then answers one JSON line per command read from stdin:

    count            {"requests": n, "logins": n, "refreshes": n, "by_kind": {...}, "throttled": n}
    reset            clears the request log
    add N SIZE       adds N clips of SIZE bytes to the first camera
    age SECONDS      moves every clip's created_at/updated_at SECONDS into the past ("time passes")
    quit             stops the server and exits (EOF on stdin does the same)
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta

from archiver.simulator import Faults, SimConfig, Simulator


def _kind(path: str) -> str:
    if "/media/changed" in path:
        return "listing"
    if "/media/clip/" in path:
        return "clip"
    if "/media/thumb/" in path:
        return "thumbnail"
    if "/homescreen" in path:
        return "homescreen"
    if path.startswith("/oauth/") or "tier_info" in path:
        return "auth"
    return "other"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--bandwidth", type=float, default=0.0, help="bytes/s per connection (0 = no cap)")
    ap.add_argument("--clips", type=int, default=0)
    ap.add_argument("--size", type=int, default=512 * 1024)
    ap.add_argument("--cameras", type=int, default=1)
    ap.add_argument("--rate-limit", type=float, default=0.0, help="server limit, requests/s (0 = none)")
    ap.add_argument("--retry-after", type=float, default=1.0, help="Retry-After of its 429 answers, s")
    ap.add_argument("--age", type=float, default=0.0, help="seconds to move the initial clips into the past")
    args = ap.parse_args()

    config = SimConfig(two_factor=False)
    faults = Faults(
        latency_s=args.latency,
        bandwidth_bps=args.bandwidth,
        rate_limit_rps=args.rate_limit,
        retry_after_s=args.retry_after,
    )
    sim = Simulator(config, faults)
    net = sim.add_network("Home", time_zone="America/Chicago")
    cams = [sim.add_camera(net, f"Camera {i + 1}") for i in range(max(1, args.cameras))]
    if args.clips:
        per = [args.clips // len(cams) + (1 if i < args.clips % len(cams) else 0) for i in range(len(cams))]
        for cam, n in zip(cams, per, strict=True):
            if n:
                sim.add_clips(cam, n, size=args.size)

    def age(seconds: float) -> None:
        with sim.state.lock:
            for clip in sim.state.clips.values():
                clip.created_at -= timedelta(seconds=seconds)
                clip.updated_at -= timedelta(seconds=seconds)

    if args.age:
        age(args.age)
    sim.start()
    print(
        json.dumps(
            {
                "url": sim.url,
                "account_id": config.account_id,
                "username": config.username,
                "password": config.password,
                "tier": config.tier,
                "network_id": net,
                "camera_ids": cams,
            }
        ),
        flush=True,
    )
    try:
        for line in sys.stdin:
            cmd = line.split()
            if not cmd:
                continue
            out: dict = {"ok": True}
            if cmd[0] == "count":
                with sim._records_lock:
                    records = list(sim.requests)
                by_kind: dict[str, int] = {}
                for r in records:
                    k = _kind(r.path)
                    by_kind[k] = by_kind.get(k, 0) + 1
                out = {
                    "requests": len(records),
                    "logins": sim.login_count,
                    "refreshes": sim.refresh_count,
                    "by_kind": by_kind,
                    "throttled": sum(1 for r in records if r.status == 429),
                }
            elif cmd[0] == "reset":
                sim.reset_requests()
            elif cmd[0] == "add":
                sim.add_clips(cams[0], int(cmd[1]), size=int(cmd[2]))
            elif cmd[0] == "age":
                age(float(cmd[1]))
            elif cmd[0] == "quit":
                break
            else:
                out = {"ok": False, "error": f"unknown command {cmd[0]!r}"}
            print(json.dumps(out), flush=True)
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
