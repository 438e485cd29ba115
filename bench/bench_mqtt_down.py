"""Does a Home Assistant broker that is down slow a one-shot ``archiver sync``?

Archives a small account from the simulator once, then times no-op syncs as ``archiver sync`` runs
them (``sync_and_prune_with_mqtt``: in-process, so that the start-up of a whole process, which varies
by seconds on a busy machine, does not hide the difference; ``--processes`` times whole processes),
alternating (after one warm-up each), with:

  none       no ``[mqtt]``
  refused    ``[mqtt] url`` at a closed loopback port (the broker is down)
  blackhole  ``[mqtt] url`` at an address that never answers (a broker host that is off)
  up         a real Mosquitto (when ``mosquitto`` is installed)

and prints each median and its ratio to ``none`` (goal: refused and blackhole within 10 %).

    python bench/bench_mqtt_down.py [--reps 7] [--clips 20] [--processes]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from archiver.homeassistant.oneshot import sync_and_prune_with_mqtt
from archiver.pipeline.runner import open_engine
from archiver.simulator import SimConfig, Simulator
from archiver.simulator.settings import settings_for

CLI = [sys.executable, "-c", "from archiver.cli import main; main()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def env_for(data: Path, sim: Simulator, mqtt_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    env.update(
        ARCHIVER_DATA_DIR=str(data),
        ARCHIVER_BLINK__SERVER_URL=sim.url,
        ARCHIVER_BLINK__USERNAME=sim.config.username,
        ARCHIVER_BLINK__PASSWORD=sim.config.password,
        ARCHIVER_BLINK__MAX_REQUESTS_PER_SECOND="0",
    )
    if mqtt_url:
        env["ARCHIVER_MQTT__URL"] = mqtt_url
    return env


def timed_in_process(data: Path, sim: Simulator, mqtt_url: str | None) -> float:
    settings = settings_for(sim, data, blink={"max_requests_per_second": 0}, mqtt={"url": mqtt_url})
    engine = open_engine(settings)
    try:
        started = time.perf_counter()
        reports = asyncio.run(sync_and_prune_with_mqtt(settings, engine))
        took = time.perf_counter() - started
    finally:
        engine.dispose()
    if not reports[0].ok:
        raise SystemExit(f"the sync failed: {reports[0]}")
    return took


def timed_sync(env: dict[str, str]) -> float:
    started = time.perf_counter()
    out = subprocess.run([*CLI, "sync"], env=env, capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"archiver sync failed ({out.returncode}): {out.stderr[-500:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--processes", action="store_true", help="time whole `archiver sync` processes")
    args = ap.parse_args()

    def timed(data: Path, sim: Simulator, url: str | None) -> float:
        if args.processes:
            return timed_sync(env_for(data, sim, url))
        return timed_in_process(data, sim, url)

    with tempfile.TemporaryDirectory() as tmp, Simulator(SimConfig(two_factor=False)) as sim:
        data = Path(tmp) / "data"
        cam = sim.add_camera(sim.add_network("Home"), "Front Door")
        sim.add_clips(cam, args.clips)
        modes: dict[str, str | None] = {
            "none": None,
            "refused": f"mqtt://127.0.0.1:{free_port()}",
            "blackhole": "mqtt://10.255.255.1:1883",
        }
        broker: subprocess.Popen[bytes] | None = None
        if mosquitto := shutil.which("mosquitto") or shutil.which("/usr/sbin/mosquitto"):
            port = free_port()
            conf = Path(tmp) / "mosquitto.conf"
            conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
            broker = subprocess.Popen([mosquitto, "-c", str(conf)], stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            modes["up"] = f"mqtt://127.0.0.1:{port}"
        try:
            timed_sync(env_for(data, sim, None))  # archive everything: every timed run is a no-op
            times: dict[str, list[float]] = {m: [] for m in modes}
            for url in modes.values():
                timed(data, sim, url)  # warm-up
            for _ in range(args.reps):
                for m, url in modes.items():
                    times[m].append(timed(data, sim, url))
        finally:
            if broker is not None:
                broker.terminate()
                broker.wait(10)
        base = statistics.median(times["none"])
        what = "whole `archiver sync` processes" if args.processes else "in-process syncs"
        print(f"no-op {what}, {args.clips} clips archived, median of {args.reps}:")
        for m, ts in times.items():
            med = statistics.median(ts)
            print(f"  {m:10s} {med:6.2f} s  x{med / base:4.2f}  ({', '.join(f'{t:.2f}' for t in ts)})")


if __name__ == "__main__":
    main()
