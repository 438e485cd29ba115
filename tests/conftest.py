"""Shared fixtures: a simulator over real HTTP, settings pointing at it, and helpers to run the CLI."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from archiver.config import Settings, load_settings
from archiver.pipeline.report import SyncReport
from archiver.pipeline.runner import open_engine, sync_all
from archiver.simulator import SimConfig, Simulator

pytest_plugins = ["pg_fixtures"]

USER, PASSWORD, PIN = "demo@example.com", "demo-password", "123456"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on SQLite and on a real PostgreSQL server (skipped only when none is configured)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'archiver.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("ARCHIVER_") and key != "ARCHIVER_TEST_DATABASE_URL":
            monkeypatch.delenv(key, raising=False)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(SimConfig(two_factor=False)) as s:
        yield s


@pytest.fixture
def camera(sim: Simulator) -> int:
    net = sim.add_network("Home", time_zone="America/Chicago")
    return sim.add_camera(net, "Front Door")


def make_settings(tmp_path: Path, sim: Simulator, **over: Any) -> Settings:
    blink = {
        "server_url": sim.url,
        "username": USER,
        "password": PASSWORD,
        "max_requests_per_second": 0,
        "backoff_max_s": 0.5,
    }
    blink.update(over.pop("blink", {}))
    database = over.pop("database", {"url": f"sqlite:///{tmp_path / 'archiver.db'}"})
    return load_settings(None, data_dir=tmp_path, blink=blink, database=database, **over)


def run_sync(settings: Settings) -> SyncReport:
    async def go() -> list[SyncReport]:
        return await sync_all(settings, open_engine(settings))

    return asyncio.run(go())[0]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def archive_files(root: Path, suffix: str) -> list[Path]:
    return sorted(p for p in root.rglob(f"*{suffix}") if p.is_file() and not p.name.startswith("."))


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
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    env.update(
        ARCHIVER_DATA_DIR=str(settings_dir),
        ARCHIVER_BLINK__SERVER_URL=sim.url,
        ARCHIVER_BLINK__MAX_REQUESTS_PER_SECOND="0",
        ARCHIVER_BLINK__BACKOFF_MAX_S="0.5",
    )
    env.update(extra)
    return env


def run_cli(
    args: list[str], env: dict[str, str], input: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from archiver.cli import main; main()", *args],
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
