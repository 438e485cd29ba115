"""The sync job: any registered source's clips go the same way (filters, duplicate rule, store); the
progress total counts every source; log lines go through the progress bar's console."""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from helpers import archive_files, make_settings, usb_settings
from rich.console import Console
from sqlmodel import select

from archiver.cli.progress import RichReporter
from archiver.db import repo
from archiver.db.engine import session_scope
from archiver.db.models import Clip, ClipState
from archiver.logs import setup_logging
from archiver.pipeline.fetch import Fetched
from archiver.pipeline.report import SyncReport
from archiver.pipeline.runner import build_job, open_engine, sync_all
from archiver.pipeline.task import Staged
from archiver.simulator import Simulator
from archiver.simulator.media import asset_mp4
from archiver.sources import SOURCES
from archiver.sources.base import Emit, SourceBase, Transfer

AT = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


class FolderSource(SourceBase):
    """A third source in one class: recordings found in a "folder" (here: a list), recorded as rows
    without looking at any filter, delivered from disk."""

    name = "folder"
    recordings: ClassVar[list[tuple[str, int, str, datetime]]] = []  # name, camera id, camera, instant
    fetched: ClassVar[list[str]] = []

    def pending(self) -> list[Clip]:
        with session_scope(self.ctx.engine) as s:
            return list(repo.pending_clips(s, self.ctx.account_id, self.name))

    async def discover(self, emit: Emit) -> None:
        with session_scope(self.ctx.engine) as s:
            ids = [f"folder:{name}" for name, *_ in self.recordings]
            known = repo.clips_by_identity(s, self.ctx.account_id, ids)
            clips = []
            for (name, camera_id, camera, at), identity in zip(self.recordings, ids, strict=True):
                clip = known.get(identity) or Clip(
                    account_id=self.ctx.account_id,
                    source=self.name,
                    identity=identity,
                    blink_id=name,
                    camera_blink_id=camera_id,
                    camera_name=camera,
                    network_name="Home",
                    created_at=at,
                )
                s.add(clip)
                s.flush()
                clips.append(clip)
            self._report.listed += len(clips)
        emit(clips)

    async def fetch(self, clip: Clip, work: Path, transfer: Transfer) -> Staged:
        async with transfer():
            data = asset_mp4()
            path = work / "clip.mp4"
            path.write_bytes(data)
        self.fetched.append(clip.identity)
        return Staged(Fetched(path, len(data), hashlib.sha256(data).hexdigest(), "video/mp4"))


def test_a_third_source_is_archived_filtered_and_deduplicated_like_the_others(
    tmp_path: Path, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = sim.add_network("Home")
    front, yard = sim.add_camera(net, "Front Door"), sim.add_camera(net, "Back Yard")
    cloud_id = sim.add_clip(front, created_at=AT, size=10_000)
    monkeypatch.setattr(FolderSource, "fetched", [])
    monkeypatch.setattr(
        FolderSource,
        "recordings",
        [
            ("twin", front, "Front Door", AT),  # the cloud clip's recording
            ("own", front, "Front Door", AT + timedelta(minutes=10)),
            ("filtered", yard, "Back Yard", AT + timedelta(minutes=20)),
        ],
    )
    monkeypatch.setitem(SOURCES, FolderSource.name, FolderSource)  # the one registration line
    settings = make_settings(tmp_path, sim, sync={"cameras": ["Front Door"]})

    engine = open_engine(settings)
    [first] = asyncio.run(sync_all(settings, engine))
    [second] = asyncio.run(sync_all(settings, engine))
    assert first.exit_code == second.exit_code == 0, (first, second)
    assert FolderSource.fetched == ["folder:own"]
    assert first.sources["folder"].stored == 1 and first.sources["folder"].filtered == 1
    with session_scope(engine) as s:
        by_identity = {c.identity: c for c in s.exec(select(Clip))}
    cloud = by_identity[f"cloud:{cloud_id}"]
    assert cloud.state == ClipState.stored
    assert by_identity["folder:own"].state == ClipState.stored
    twin = by_identity["folder:twin"]
    assert twin.state == ClipState.duplicate and twin.duplicate_of == cloud.id
    assert by_identity["folder:filtered"].state == ClipState.discovered  # recorded, never fetched
    assert len(archive_files(tmp_path / "archive", ".mp4")) == 2
    with session_scope(engine) as s:
        counts = repo.state_counts(s)
    assert counts[("folder", "duplicate")] == 1 and counts[("folder", "stored")] == 1


def test_a_skipped_duplicate_is_logged_once_over_every_sync(
    tmp_path: Path, sim: Simulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One line when the clip is found to be a duplicate (not "not fetched" and "skipped" both), and
    nothing on the syncs after: a settled duplicate is never planned again."""
    front = sim.add_camera(sim.add_network("Home"), "Front Door")
    sim.add_clip(front, created_at=AT, size=10_000)
    monkeypatch.setattr(FolderSource, "fetched", [])
    monkeypatch.setattr(FolderSource, "recordings", [("twin", front, "Front Door", AT)])
    monkeypatch.setitem(SOURCES, FolderSource.name, FolderSource)
    settings = make_settings(tmp_path, sim)
    engine = open_engine(settings)
    caplog.set_level(logging.DEBUG, logger="archiver")
    for _ in range(3):
        [report] = asyncio.run(sync_all(settings, engine))
        assert report.exit_code == 0, report
    lines = [r.getMessage() for r in caplog.records if "folder:twin" in r.getMessage()]
    assert len([line for line in lines if "stored as cloud:" in line]) == 1, lines
    assert FolderSource.fetched == []


def test_progress_total_counts_usb_clips_and_log_lines_go_through_the_bar(
    tmp_path: Path, usb_sim: Simulator
) -> None:
    net = usb_sim.add_network("Home")
    cam = usb_sim.add_camera(net, "Porch")
    sm = usb_sim.add_sync_module(net, "SM2")
    usb_sim.add_clips(cam, 2, size=10_000)
    for i in range(3):
        usb_sim.add_local_clip(sm, cam, created_at=AT + timedelta(minutes=i))
    settings = usb_settings(tmp_path, usb_sim)
    plain, shown = io.StringIO(), io.StringIO()
    setup_logging("INFO", stream=plain)
    root = logging.getLogger()
    try:
        reporter = RichReporter("home", Console(file=shown, force_terminal=True, width=120))
        [report] = asyncio.run(sync_all(settings, open_engine(settings), reporter_factory=lambda _: reporter))
        logging.getLogger("archiver.test").info("after the run")
    finally:
        for h in [h for h in root.handlers if getattr(h, "_archiver", False)]:
            root.removeHandler(h)
    assert report.exit_code == 0 and report.stored == 5, report
    [task] = reporter.progress.tasks
    assert task.total == 5 and task.completed == 5
    assert "homescreen:" in shown.getvalue() and "homescreen:" not in plain.getvalue()
    assert "after the run" in plain.getvalue()  # the plain handler is back once the bar is closed


def test_a_source_that_does_not_talk_to_blink_needs_no_blink_login(
    tmp_path: Path, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job signs in only for sources that declare ``needs_blink``: a job of a folder source alone
    archives its recordings without one request to Blink (the account has never logged in)."""
    monkeypatch.setattr(FolderSource, "fetched", [])
    monkeypatch.setattr(FolderSource, "recordings", [("own", 7, "Front Door", AT)])
    settings = make_settings(tmp_path, sim)
    engine = open_engine(settings)

    async def run() -> SyncReport:
        job = build_job(settings, engine, settings.account_list()[0], sources={"folder": FolderSource})
        try:
            assert not job.needs_blink
            return await job.run()
        finally:
            await job.aclose()

    report = asyncio.run(run())
    assert report.stored == 1 and report.exit_code == 0, report
    assert FolderSource.fetched == ["folder:own"]
    assert sim.request_count() == 0
    with_cloud = build_job(settings, engine, settings.account_list()[0])  # the default registry
    assert with_cloud.needs_blink
    asyncio.run(with_cloud.aclose())
