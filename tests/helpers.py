"""Plain helpers shared by the tests (fixtures live in conftest.py and the *_fixtures.py plugins).

Import them by name: ``from helpers import make_settings, run_sync``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import httpx
from sqlalchemy.engine import Engine

from archiver.blink.api import BlinkAPI
from archiver.config import Settings, load_settings
from archiver.db import repo
from archiver.db.engine import open_database, session_scope
from archiver.db.models import Account, Clip, ClipState, ObjectKind, StoredObject
from archiver.destinations.base import Destination
from archiver.pipeline.report import SyncReport
from archiver.pipeline.runner import open_engine, sync_all
from archiver.pipeline.select import Selection
from archiver.simulator import Simulator
from archiver.simulator.settings import settings_for
from archiver.sources.base import SourceContext

USER, PASSWORD, PIN = "demo@example.com", "demo-password", "123456"  # the simulator's defaults

# USB polling fast enough for tests (the simulator's module answers in tenths of a second).
FAST_USB = {
    "poll_interval_s": 0.05,
    "busy_pause_s": 0.05,
    "command_deadline_s": 10,
    "manifest_deadline_s": 10,
    "upload_deadline_s": 20,
}


def make_settings(tmp_path: Path, sim: Simulator, **over: Any) -> Settings:
    """Settings archiving ``sim``'s account into ``tmp_path``, unthrottled, with short backoffs."""
    blink = {"max_requests_per_second": 0, "backoff_max_s": 0.5, **over.pop("blink", {})}
    return settings_for(sim, tmp_path, blink=blink, **over)


def usb_settings(tmp_path: Path, sim: Simulator, **over: Any) -> Settings:
    """:func:`make_settings` with :data:`FAST_USB` (``local_storage`` entries in ``over`` win)."""
    return make_settings(tmp_path, sim, local_storage={**FAST_USB, **over.pop("local_storage", {})}, **over)


def run_sync(settings: Settings) -> SyncReport:
    """One ``sync_all`` of the (single) account; the engine is disposed afterwards."""
    engine = open_engine(settings)
    try:
        [report] = asyncio.run(sync_all(settings, engine))
    finally:
        engine.dispose()
    return report


def source_context(tmp_path: Path, api: object = None, **account: Any) -> SourceContext:
    """What a source gets from the job, over a fresh SQLite database: ``account`` overrides the account's
    settings (e.g. ``cameras=[...]``); ``api`` stands in for Blink (a fake with the calls the source
    makes, or None when it makes none)."""
    settings = load_settings(None, data_dir=tmp_path, database={"url": f"sqlite:///{tmp_path / 'a.db'}"})
    engine = open_database(settings.database_url)
    acct = settings.account_list()[0].model_copy(update=account)
    row = repo.get_or_create_account(engine, acct.name, acct.username, "oauth")
    assert row.id is not None
    return SourceContext(row.id, acct, settings, engine, cast(BlinkAPI, api), Selection.of(acct))


SUFFIX = {ObjectKind.clip: "mp4", ObjectKind.thumbnail: "jpg"}


def seed_stored(
    engine: Engine,
    staging: Path,
    destinations: Mapping[str, Destination],
    clips: Sequence[tuple[str, datetime, ClipState]],
    kinds: Sequence[ObjectKind] = (ObjectKind.clip,),
) -> dict[int, list[str]]:
    """A "default" account with one row per (camera, recorded at, state) clip in network "Home"; for each
    of ``kinds`` a small file put into every destination and recorded as its StoredObject.
    Returns {clip id: [key per kind]}, in the order given."""
    keys: dict[int, list[str]] = {}
    staging.mkdir(parents=True, exist_ok=True)
    with session_scope(engine) as s:
        account = Account(name="default", hardware_id="hw")
        s.add(account)
        s.flush()
        for n, (camera, when, state) in enumerate(clips):
            clip = Clip(
                account_id=account.id,
                identity=f"cloud:{n}",
                blink_id=str(n),
                network_name="Home",
                camera_name=camera,
                camera_blink_id=100 + ord(camera[0]),
                created_at=when,
                state=state,
            )
            s.add(clip)
            s.flush()
            assert clip.id is not None
            keys[clip.id] = []
            for kind in kinds:
                data = f"{kind} of clip {clip.id}".encode() * 50
                src = staging / f"{clip.id}.{SUFFIX[kind]}"
                src.write_bytes(data)
                sha = hashlib.sha256(data).hexdigest()
                key = f"Home/{camera}/{when:%Y-%m-%d}/{when:%H-%M-%S}_{clip.id}.{SUFFIX[kind]}"
                keys[clip.id].append(key)
                for name, dest in destinations.items():
                    dest.put(src, key, sha256=sha, metadata={"clip-id": str(clip.id)})
                    s.add(
                        StoredObject(
                            clip_id=clip.id, destination=name, kind=kind, key=key, size=len(data), sha256=sha
                        )
                    )
    return keys


def asgi_get(app: Any, path: str, **kw: Any) -> httpx.Response:
    """One GET to an ASGI app (the web UI) in this process, no socket."""

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui") as c:
            return await c.get(path, **kw)

    return asyncio.run(go())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def archive_files(root: Path, suffix: str) -> list[Path]:
    return sorted(p for p in root.rglob(f"*{suffix}") if p.is_file() and not p.name.startswith("."))


def truncate_copy(src: Path, dst: Path, keep: float | int) -> Path:
    """Copy the first ``keep`` bytes (an int) or fraction (a float < 1) of ``src`` to ``dst``."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    return dst


def free_port() -> int:
    """A loopback port nothing listens on (for servers we start, or for 'unreachable' endpoints)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sim_config(tmp_path: Path, sim: Simulator, extra: str = "") -> Path:
    """An archiver.toml pointing at the simulator's demo account (for CLI subprocesses), plus ``extra``."""
    cfg = tmp_path / "archiver.toml"
    cfg.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f'[blink]\nserver_url = "{sim.url}"\nusername = "{sim.config.username}"\n'
        f'password = "{sim.config.password}"\nmax_requests_per_second = 0\n'
        "[processing]\nprobe = false\n" + extra
    )
    return cfg


def cli_env(settings_dir: Path, sim: Simulator, **extra: str) -> dict[str, str]:
    """The environment for an ``archiver`` subprocess against ``sim`` (no ARCHIVER_* leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    env.update(
        ARCHIVER_DATA_DIR=str(settings_dir),
        ARCHIVER_BLINK__SERVER_URL=sim.url,
        ARCHIVER_BLINK__MAX_REQUESTS_PER_SECOND="0",
        ARCHIVER_BLINK__BACKOFF_MAX_S="0.5",
    )
    env.update(extra)
    return env


CLI = [sys.executable, "-c", "from archiver.cli import main; main()"]


def run_cli(
    args: list[str], env: dict[str, str], input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, input=input, capture_output=True, text=True, timeout=timeout
    )


def make_certificates(folder: Path) -> Path:
    """A throwaway CA and a server certificate for 127.0.0.1 (openssl); returns the CA file."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=blink-archiver test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=127.0.0.1")  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "san.ext")  # fmt: skip
    return folder / "ca.pem"
