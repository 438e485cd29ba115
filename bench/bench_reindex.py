"""How long `archiver reindex` takes for a large archive, on disk and on S3 (moto's server on loopback).

    python bench/bench_reindex.py [--clips N] [--only disk|s3] [--once]

Fabricates N clips as a sync stores them (clip, thumbnail, schema-1 sidecar; small files: the cost is
per object, not per byte), then times ``reindex`` into a fresh SQLite database (every clip added) and
once more over the same database (every clip already known). moto runs in a process of its own; its
objects are written straight with boto3 (one PUT each) to keep the set-up short. Reindex itself reads
them through the Destination interface.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from archiver.db.engine import open_database
from archiver.destinations.base import Destination
from archiver.pipeline.sidecar import Place, Sidecar, SidecarFile
from archiver.reindex import reindex

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def fabricate(n: int) -> Iterator[tuple[str, bytes]]:
    """(key, bytes) of every object of ``n`` clips: clip, thumbnail, sidecar."""
    for i in range(n):
        at = T0 + timedelta(minutes=i)
        stem = f"Home/Camera {i % 4}/{at:%Y-%m-%d}/{at:%H-%M-%S}_{1_000_000 + i}"
        clip, thumb = os.urandom(2048), os.urandom(256)
        files = {
            "clip": SidecarFile(key=stem + ".mp4", size=len(clip), sha256=hashlib.sha256(clip).hexdigest()),
            "thumbnail": SidecarFile(
                key=stem + ".jpg", size=len(thumb), sha256=hashlib.sha256(thumb).hexdigest()
            ),
        }
        doc = Sidecar(
            id=str(1_000_000 + i),
            identity=f"cloud:{1_000_000 + i}",
            account="default",
            archive_key=stem + ".mp4",
            network=Place(id=1, name="Home"),
            camera=Place(id=10 + i % 4, name=f"Camera {i % 4}"),
            created_at_utc=at,
            time_zone="UTC",
            stored_at=at,
            size=len(clip),
            sha256=files["clip"].sha256,
            files=files,
        )
        yield stem + ".mp4", clip
        yield stem + ".jpg", thumb
        yield stem + ".json", doc.dumps()


PASSES = ["empty database", "every clip known"]


def timed(dest: Destination, folder: Path, n: int) -> None:
    engine = open_database(f"sqlite:///{folder / f'{dest.name}.db'}")
    for label in PASSES:
        started = time.perf_counter()
        report = reindex(engine, dest)
        took = time.perf_counter() - started
        print(
            f"{dest.name:5} {n} clips, {label:17}: {took:6.1f} s ({n / took:6.0f} clips/s); "
            f"found {report.found}, added {report.added}, known {report.known}, "
            f"problems {len(report.problems)}"
        )
    engine.dispose()


def on_disk(folder: Path, n: int) -> None:
    from archiver.destinations.disk import DiskDestination

    root = folder / "archive"
    for key, data in fabricate(n):
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    timed(DiskDestination(root), folder, n)


def _moto(port: int) -> subprocess.Popen[bytes]:
    """moto's S3 server in a process of its own (in this one it would share the GIL with reindex)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto's server did not start")


def on_s3(folder: Path, n: int) -> None:
    import boto3

    from archiver.config import S3DestinationSettings
    from archiver.destinations.s3 import S3Destination

    for key, value in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(key, value)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = _moto(port)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket="bench")
        started = time.perf_counter()

        def put(item: tuple[str, bytes]) -> None:
            key, data = item
            meta = {"sha256": hashlib.sha256(data).hexdigest()}
            client.put_object(Bucket="bench", Key="blink/" + key, Body=data, Metadata=meta)

        with ThreadPoolExecutor(16) as pool:
            for _ in pool.map(put, fabricate(n)):
                pass
        print(f"s3    set-up: {3 * n} objects written in {time.perf_counter() - started:.0f} s")
        cfg = S3DestinationSettings(
            bucket="bench", prefix="blink/", endpoint_url=endpoint, region="us-east-1"
        )
        timed(S3Destination(cfg, "s3"), folder, n)
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=10_000)
    parser.add_argument("--only", choices=["disk", "s3"])
    parser.add_argument("--once", action="store_true", help="Only the pass into an empty database.")
    args = parser.parse_args()
    if args.once:
        del PASSES[1:]
    runs: dict[str, Callable[[Path, int], None]] = {"disk": on_disk, "s3": on_s3}
    for name, run in runs.items():
        if args.only in (None, name):
            with tempfile.TemporaryDirectory(prefix=f"bench-reindex-{name}-") as tmp:
                run(Path(tmp), args.clips)


if __name__ == "__main__":
    main()
