"""Requests per USB clip, by kind, for a first sync and a no-op second sync.

    python bench/bench_local_storage.py [--clips K]

Runs the simulator on loopback with small, realistic-shaped delays (scaled down ~10x from the ~3 s
command / manifest latencies in ../shared/blink-api.md §4.2, §5) and the real sync pipeline.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

from archiver.config import load_settings
from archiver.pipeline.runner import open_engine, sync_all
from archiver.simulator import Faults, SimConfig, Simulator
from archiver.sources.usb import UsbReport

KINDS = (
    "homescreen",
    "manifest request",
    "manifest GETs",
    "upload POSTs",
    "command polls",
    "clip GETs",
    "other",
)


def kind_of(method: str, path: str) -> str:
    if path.endswith("/homescreen"):
        return "homescreen"
    if "/local_storage/manifest/request" in path:
        return "manifest request" if method == "POST" else "manifest GETs"
    if re.search(r"/local_storage/manifest/[^/]+/clip/request/", path):
        return "upload POSTs" if method == "POST" else "clip GETs"
    if re.search(r"/network/\d+/command/\d+$", path):
        return "command polls"
    return "other"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=8)
    args = ap.parse_args()
    k = args.clips
    faults = Faults(
        manifest_ready_after_s=0.35, command_complete_after_s=0.25, upload_delay_s=0.3, latency_s=0.01
    )
    with Simulator(SimConfig(two_factor=False), faults) as sim, tempfile.TemporaryDirectory() as tmp:
        net = sim.add_network("Home")
        cams = [sim.add_camera(net, name) for name in ("Front Door", "Back Yard")]
        sm = sim.add_sync_module(net, "SM2")
        for i in range(k):
            sim.add_local_clip(sm, cams[i % 2])
        settings = load_settings(
            None,
            data_dir=Path(tmp),
            blink={
                "server_url": sim.url,
                "username": sim.config.username,
                "password": sim.config.password,
                "max_requests_per_second": 0,
            },
            local_storage={"poll_interval_s": 0.1, "busy_pause_s": 0.2},
        )
        engine = open_engine(settings)
        for label in ("first sync", "no-op second sync"):
            sim.reset_requests()
            t0 = time.monotonic()
            [report] = asyncio.run(sync_all(settings, engine))
            took = time.monotonic() - t0
            counts = Counter(
                kind_of(r.method, r.path)
                for r in sim.requests
                if "/local_storage" in r.path or "/command/" in r.path or "homescreen" in r.path
            )
            usb = report.sources.get("local")
            module = usb.modules.get(sm) if isinstance(usb, UsbReport) else None
            stored = module.stored if module else 0
            print(
                f"\n{label}: {k} USB clips on the card, {stored} archived, exit {report.exit_code}, "
                f"{took:.2f} s, {len(sim.requests)} requests in all (incl. auth/listing)"
            )
            print(f"  {'kind':<18}{'requests':>9}{'per clip':>10}")
            for kind in KINDS:
                if kind == "other":
                    continue
                n = counts.get(kind, 0)
                print(f"  {kind:<18}{n:>9}{n / k:>10.2f}")
        print(
            "\nminimum the flow allows: per sync 1 manifest POST + >=1 command poll + >=1 manifest GET "
            "(+1 homescreen per discovery_interval);\n"
            "per new clip 1 upload POST + >=1 command poll + 1 clip GET. A no-op sync: 1 manifest POST, "
            ">=1 command poll, >=1 manifest GET, no uploads.\n"
            "Extra command polls / manifest GETs / clip GETs above the minimum are the wait for the module "
            "(poll_interval_s, backoff), tunable in [local_storage]."
        )


if __name__ == "__main__":
    main()
