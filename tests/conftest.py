"""Shared fixtures: a simulator over real HTTP (plain, and with a Sync Module's USB timings), PostgreSQL
(``pg_fixtures``), the same test on SQLite and PostgreSQL, and an environment free of ARCHIVER_* settings.
Plain helpers are in helpers.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import free_port  # noqa: F401  (test_destinations_s3.py still imports it from here)

from archiver.simulator import Faults, SimConfig, Simulator

pytest_plugins = ["pg_fixtures"]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on SQLite and on a real PostgreSQL server (see pg_fixtures)."""
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
def usb_sim() -> Iterator[Simulator]:
    """A simulator whose Sync Modules take a little time for manifests, commands and uploads."""
    faults = Faults(manifest_ready_after_s=0.1, command_complete_after_s=0.05, upload_delay_s=0.05)
    with Simulator(SimConfig(two_factor=False), faults) as s:
        yield s


@pytest.fixture
def camera(sim: Simulator) -> int:
    net = sim.add_network("Home", time_zone="America/Chicago")
    return sim.add_camera(net, "Front Door")
