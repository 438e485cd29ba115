"""An archive made by a real sync against the simulator (two networks, cloud and USB clips), for the web
UI tests. Use with ``from web_fixtures import web_archive  # noqa: F401``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import PASSWORD, make_settings, run_sync

from archiver.config import Settings
from archiver.db.engine import open_engine
from archiver.simulator import SimConfig, Simulator

SECRET_OUTSIDE = "TOP-SECRET-OUTSIDE-THE-ARCHIVE"


@dataclass
class WebArchive:
    settings: Settings
    sim_password: str
    outside: Path  # a file next to the archive that must never be served


def build_archive(root: Path) -> WebArchive:
    with Simulator(SimConfig(two_factor=False)) as sim:
        home = sim.add_network("Home", time_zone="America/Chicago")
        cabin = sim.add_network("Cabin", time_zone="Europe/Berlin")
        sm = sim.add_sync_module(cabin, "Cabin SM", local_storage=True)
        front = sim.add_camera(home, "Front Door")
        back = sim.add_camera(home, "Back Yard")
        porch = sim.add_camera(cabin, "Porch")
        sim.add_clips(front, 5, size=20_000)
        sim.add_clips(back, 2, size=20_000)
        sim.add_clips(porch, 2, size=20_000)
        for hours in (30, 26):
            sim.add_local_clip(sm, porch, created_at=datetime.now(UTC) - timedelta(hours=hours), size=20_000)
        settings = make_settings(
            root,
            sim,
            local_storage={"poll_interval_s": 0.05, "busy_pause_s": 0.05},
        )
        report = run_sync(settings)
        assert report.stored == 11, report
    open_engine(settings).dispose()
    outside = root / "outside-secret.txt"
    outside.write_text(SECRET_OUTSIDE)
    (root / "archive" / "link-out.txt").symlink_to(outside)
    return WebArchive(settings, PASSWORD, outside)


@pytest.fixture(scope="module")
def web_archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebArchive]:
    yield build_archive(tmp_path_factory.mktemp("web"))
