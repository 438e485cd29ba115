"""An archive for the export, video and timeline tests: a real sync of the simulator's real MP4s, clips
spread over two local days in two networks (Chicago and Berlin). Use with
``from export_fixtures import ExportArchive, export_archive  # noqa: F401``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from helpers import make_settings, run_sync

from archiver.config import Settings
from archiver.db.engine import open_engine
from archiver.simulator import SimConfig, Simulator

CHICAGO = ZoneInfo("America/Chicago")
BERLIN = ZoneInfo("Europe/Berlin")


@dataclass
class ExportArchive:
    settings: Settings
    day: date  # the local day (Chicago) with Front Door clips on both sides of it
    front_times: list[datetime]  # every Front Door clip (UTC)


def day_under_test() -> date:
    return (datetime.now(CHICAGO) - timedelta(days=2)).date()


def build(root: Path, **over: object) -> ExportArchive:
    day = day_under_test()
    with Simulator(SimConfig(two_factor=False)) as sim:
        home = sim.add_network("Home", time_zone="America/Chicago")
        cabin = sim.add_network("Cabin", time_zone="Europe/Berlin")
        front = sim.add_camera(home, "Front Door")
        back = sim.add_camera(home, "Back Yard")
        porch = sim.add_camera(cabin, "Porch")
        local = [(day, 0, 30), (day, 1, 15), (day, 2, 40), (day, 23, 50), (day + timedelta(days=1), 0, 10)]
        local.insert(0, (day - timedelta(days=1), 23, 55))
        front_times = []
        for d, h, m in local:
            at = datetime(d.year, d.month, d.day, h, m, tzinfo=CHICAGO).astimezone(UTC)
            front_times.append(at)
            sim.add_clip(front, created_at=at, size=25_000)
        for h in (3, 22):
            sim.add_clip(
                back, created_at=datetime(day.year, day.month, day.day, h, 5, tzinfo=CHICAGO), size=25_000
            )
        sim.add_clip(
            porch, created_at=datetime(day.year, day.month, day.day, 12, 0, tzinfo=BERLIN), size=25_000
        )
        settings = make_settings(root, sim, **over)
        report = run_sync(settings)
        assert report.stored == len(local) + 3, report
    open_engine(settings).dispose()
    return ExportArchive(settings, day, front_times)


@pytest.fixture(scope="module")
def export_archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExportArchive]:
    yield build(tmp_path_factory.mktemp("export"))
