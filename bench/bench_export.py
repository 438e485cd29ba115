"""Export throughput: `archiver export --out` (zip with SHA256SUMS) of one camera's clips, read from a disk
destination and from S3 (moto's server on loopback), in MB/s.

    python bench/bench_export.py [--clips 8] [--mb 25]

The archive is made by a real sync of the simulator's clips (probe off: the bytes are what count here).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlmodel import Session

from archiver.db.engine import open_engine
from archiver.destinations import build_destinations
from archiver.export import Selection, plan, write_zip
from archiver.pipeline.runner import sync_all
from archiver.simulator import SimConfig, Simulator
from archiver.simulator.settings import settings_for


def measure(label: str, folder: Path, clips: int, mb: int, **over: Any) -> None:
    with Simulator(SimConfig(two_factor=False)) as sim:
        cam = sim.add_camera(sim.add_network("Home", time_zone="America/Chicago"), "Front Door")
        sim.add_clips(cam, clips, size=mb * 1_000_000)
        s = settings_for(
            sim, folder, blink={"max_requests_per_second": 0}, processing={"probe": False}, **over
        )
        engine = open_engine(s)
        [report] = asyncio.run(sync_all(s, engine))
        assert report.stored == clips, report
    [dest] = build_destinations(s)
    with Session(engine) as session:
        chosen = plan(session, Selection(cameras=["Front Door"]), dest.name)
    with (folder / "out.zip").open("wb") as f:
        began = time.perf_counter()
        result = write_zip(chosen, dest, f)
        took = time.perf_counter() - began
    assert not result.problems, result.problems
    print(f"{label:28} {result.bytes / 1e6:8.0f} MB {took:7.2f} s {result.bytes / 1e6 / took:8.1f} MB/s")
    engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--mb", type=int, default=25, help="size of each clip")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measure("zip from disk", Path(tmp), args.clips, args.mb)
    import boto3
    from moto.server import ThreadedMotoServer

    for key, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(key, value)
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket="bench-export"
        )
        s3 = {"type": "s3", "name": "s3", "bucket": "bench-export", "endpoint_url": endpoint}
        with tempfile.TemporaryDirectory() as tmp:
            measure("zip from S3 (moto, loopback)", Path(tmp), args.clips, args.mb, destinations=[s3])
    finally:
        server.stop()


if __name__ == "__main__":
    main()
