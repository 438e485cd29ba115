"""Throughput of a 100-clip backlog into each destination type, and the CPU cost of encryption.

    python bench/bench_destinations.py [--clips N] [--size-mb M]

Each run is the real sync pipeline (the simulator on loopback, one account, ``--clips`` cloud clips of
``--size-mb``) into one destination: a disk folder (the reference), an SFTP server (asyncssh, in
process), WebDAV (WsgiDAV on cheroot, in process), SMB (Samba's smbd, when installed and root), and an
encrypted disk. The servers run on this machine, so the figures are the client's cost plus a Python
server's (SFTP, WebDAV), not a NAS's network. Then encryption and decryption of a 64 MiB file:
CPU seconds per MB (process time).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from remote_fixtures import PASSWORD, USER, run_sftp, run_smb, run_webdav

from archiver.config import load_settings
from archiver.destinations.crypt import EncryptedDestination, Keys, encrypt_file, keygen
from archiver.pipeline.runner import open_engine, sync_all
from archiver.simulator import SimConfig, Simulator


def one_sync(work: Path, sim: Simulator, destination: dict[str, Any], extra: dict[str, Any]) -> float:
    settings = load_settings(
        None,
        data_dir=work / "data",
        blink={
            "server_url": sim.url,
            "username": sim.config.username,
            "password": sim.config.password,
            "max_requests_per_second": 0,
        },
        processing={"probe": False},
        destinations=[destination],
        **extra,
    )
    engine = open_engine(settings)
    started = time.perf_counter()
    try:
        [report] = asyncio.run(sync_all(settings, engine))
    finally:
        engine.dispose()
    elapsed = time.perf_counter() - started
    assert report.stored == sim_clips(sim), report
    return elapsed


def sim_clips(sim: Simulator) -> int:
    return sim.clip_count  # type: ignore[attr-defined]


@contextlib.contextmanager
def servers(base: Path) -> Iterator[dict[str, dict[str, Any]]]:
    with contextlib.ExitStack() as stack:
        sftp = stack.enter_context(run_sftp(base / "sftp"))
        (base / "webdav").mkdir()
        dav = stack.enter_context(run_webdav(base / "webdav"))
        targets: dict[str, dict[str, Any]] = {
            "disk": {"type": "disk", "path": str(base / "disk")},
            "disk, encrypted": {"type": "disk", "path": str(base / "vault"), "encrypt": True},
            "sftp": {
                "type": "sftp",
                "host": "127.0.0.1",
                "port": sftp.port,
                "username": USER,
                "password": PASSWORD,
                "known_hosts": str(sftp.extra["known_hosts"]),
                "path": "bench",
            },
            "webdav": {"type": "webdav", "url": dav.extra["url"], "username": USER, "password": PASSWORD},
        }
        if os.geteuid() == 0 and shutil.which("smbd"):
            (base / "smb").mkdir()
            smb = stack.enter_context(run_smb(base / "smb", shutil.which("smbd") or "smbd"))
            targets["smb"] = {
                "type": "smb",
                "host": "127.0.0.1",
                "port": smb.port,
                "share": "archive",
                "username": "root",
                "password": PASSWORD,
            }
        yield targets


def crypto_cost(work: Path, mib: int = 64) -> tuple[float, float]:
    src = work / "plain.bin"
    src.write_bytes(os.urandom(mib * 1024 * 1024))
    keys = Keys(os.urandom(32))
    t0 = time.process_time()
    encrypt_file(keys, src, work / "sealed.bin")
    enc = (time.process_time() - t0) / (mib * 1.048576)
    from archiver.destinations.disk import DiskDestination

    inner = DiskDestination(work, "bench")
    dest = EncryptedDestination(inner, keys.master)
    t0 = time.process_time()
    for _ in dest.open("sealed.bin"):
        pass
    dec = (time.process_time() - t0) / (mib * 1.048576)
    return enc, dec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=100)
    ap.add_argument("--size-mb", type=float, default=1.0)
    args = ap.parse_args()
    size = int(args.size_mb * 1_000_000)
    with tempfile.TemporaryDirectory(prefix="bench-dest-") as tmp:
        base = Path(tmp)
        keygen(base / "key")
        rows = []
        with servers(base) as targets:
            for label, dest in targets.items():
                with Simulator(SimConfig(two_factor=False)) as sim:
                    net = sim.add_network("Home")
                    cam = sim.add_camera(net, "Front Door")
                    sim.add_clips(cam, args.clips, size=size)
                    sim.clip_count = args.clips  # type: ignore[attr-defined]
                    work = base / f"run-{len(rows)}"
                    extra = {"encryption": {"key_file": str(base / "key")}} if dest.get("encrypt") else {}
                    elapsed = one_sync(work, sim, dest, extra)
                mb = args.clips * size / 1e6
                rows.append((label, elapsed, mb / elapsed, args.clips / elapsed))
        enc, dec = crypto_cost(base)
    print(f"{args.clips} clips of {size / 1e6:.1f} MB, one sync each (the pipeline: fetch, thumbnail, store)")
    print(f"{'destination':<18}{'seconds':>9}{'MB/s':>8}{'clips/s':>9}{'vs disk':>9}")
    disk = rows[0][1]
    for label, elapsed, mbs, cps in rows:
        print(f"{label:<18}{elapsed:>9.1f}{mbs:>8.1f}{cps:>9.1f}{elapsed / disk:>8.1f}x")
    print(f"encryption: {enc * 1000:.1f} ms CPU per MB; decryption (open): {dec * 1000:.1f} ms CPU per MB")


if __name__ == "__main__":
    main()
