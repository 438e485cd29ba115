"""Issue 16 follow-ups, against the simulator over real HTTP: failed clips back off (and a person can
retry them at once), a repaired cursor is notified, the preflight runs for every entry point, and a clip's
rows are written off the event loop."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import cli_env, make_settings, run_cli, run_sync, sim_config, usb_settings
from sqlalchemy import event
from sqlmodel import select
from test_hostile_server import set_cursor
from test_notify import Webhook

from archiver.config import Settings
from archiver.db import repo
from archiver.db.engine import open_database, session_scope
from archiver.db.models import Clip, ClipState
from archiver.errors import ConfigError
from archiver.maintenance import run_verify
from archiver.pipeline.runner import open_engine, sync_all
from archiver.simulator import Simulator
from archiver.util import as_utc
from archiver.worker import Worker


def clip_row(settings: Settings, media_id: int) -> Clip:
    engine = open_database(settings.database_url)
    try:
        with session_scope(engine) as s:
            row = s.exec(select(Clip).where(Clip.identity == f"cloud:{media_id}")).one()
            s.expunge(row)
            return row
    finally:
        engine.dispose()


def move_next_try(settings: Settings, media_id: int, to: datetime) -> None:
    """The clock moves by editing the row, never by sleeping."""
    engine = open_database(settings.database_url)
    try:
        with session_scope(engine) as s:
            row = s.exec(select(Clip).where(Clip.identity == f"cloud:{media_id}")).one()
            row.next_attempt_at = to
            s.add(row)
    finally:
        engine.dispose()


def clip_gets(sim: Simulator, media_id: int) -> int:
    return sim.request_count(f"/media/clip/{media_id}.mp4")


# -- back-off ---------------------------------------------------------------------------------------------
def test_retry_delay_doubles_per_failure_up_to_the_cap_with_jitter_below_it() -> None:
    first, cap = timedelta(minutes=5), timedelta(days=1)
    top = [repo.retry_delay(n, first, cap, jitter=lambda: 1.0) for n in (1, 2, 3, 4)]
    assert top == [timedelta(minutes=m) for m in (5, 10, 20, 40)]
    assert repo.retry_delay(1, first, cap, jitter=lambda: 0.0) == timedelta(minutes=4)  # 80 %
    assert repo.retry_delay(30, first, cap, jitter=lambda: 1.0) == cap
    assert repo.retry_delay(10_000, first, cap, jitter=lambda: 1.0) == cap  # no overflow
    delays = {repo.retry_delay(3, first, cap) for _ in range(20)}
    assert len(delays) > 1 and all(timedelta(minutes=16) <= d <= timedelta(minutes=20) for d in delays)


def test_a_failed_clip_backs_off_until_its_time_came(
    tmp_path: Path, sim: Simulator, camera: int, database_url: str
) -> None:
    ids = sim.add_clips(camera, 3, size=20_000)
    bad = ids[0]
    sim.quirks.forbidden_ids = {bad}
    settings = make_settings(tmp_path, sim, database={"url": database_url})
    before = datetime.now(UTC)
    first = run_sync(settings)
    assert (first.stored, first.failed, first.exit_code) == (2, 1, 1)
    row = clip_row(settings, bad)
    assert row.state == ClipState.failed and row.attempts == 1 and row.next_attempt_at is not None
    wait = as_utc(row.next_attempt_at) - before
    assert timedelta(minutes=4) - timedelta(seconds=5) <= wait <= timedelta(minutes=5, seconds=30)

    sim.quirks.forbidden_ids = set()  # the cause is gone, but its time has not come
    gets = clip_gets(sim, bad)
    second = run_sync(settings)
    assert clip_gets(sim, bad) == gets  # not fetched again
    assert (second.stored, second.failed, second.exit_code) == (0, 0, 0)
    assert any("1 failed clip(s) back off" in n and "--retry-failed" in n for n in second.notes)
    assert clip_row(settings, bad).state == ClipState.failed

    move_next_try(settings, bad, datetime.now(UTC) - timedelta(seconds=1))
    third = run_sync(settings)
    assert clip_gets(sim, bad) == gets + 1 and (third.stored, third.failed) == (1, 0)
    row = clip_row(settings, bad)
    assert row.state == ClipState.stored and row.next_attempt_at is None


def test_each_failure_backs_off_longer_up_to_the_configured_maximum(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    [bad] = sim.add_clips(camera, 1, size=20_000)
    sim.quirks.forbidden_ids = {bad}
    settings = make_settings(tmp_path, sim, sync={"retry_backoff": "10m", "retry_backoff_max": "30m"})
    waits: list[timedelta] = []
    for _ in range(4):
        start = datetime.now(UTC)
        assert run_sync(settings).failed == 1
        row = clip_row(settings, bad)
        assert row.next_attempt_at is not None
        waits.append(as_utc(row.next_attempt_at) - start)
        move_next_try(settings, bad, start - timedelta(seconds=1))  # its time came
    slack = timedelta(seconds=30)
    for wait, top in zip(waits, (10, 20, 30, 30), strict=True):
        assert timedelta(minutes=top * 0.8) - slack <= wait <= timedelta(minutes=top) + slack
    assert clip_row(settings, bad).attempts == 4


def test_sync_retry_failed_fetches_a_backing_off_clip_at_once_and_status_shows_its_next_try(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    ids = sim.add_clips(camera, 2, size=20_000)
    bad = ids[0]
    sim.quirks.forbidden_ids = {bad}
    cfg = sim_config(tmp_path, sim)
    env = cli_env(tmp_path / "data", sim)
    assert run_cli(["--config", str(cfg), "sync"], env).returncode == 1

    status = run_cli(["--config", str(cfg), "status"], env)
    assert status.returncode == 0 and f"cloud:{bad}" in status.stdout and "next try" in status.stdout

    sim.quirks.forbidden_ids = set()  # a person fixed the cause
    plain = run_cli(["--config", str(cfg), "sync"], env)
    assert plain.returncode == 0 and "back off" in plain.stdout
    gets = clip_gets(sim, bad)
    result = run_cli(["--config", str(cfg), "sync", "--retry-failed"], env)
    assert result.returncode == 0, result.stderr
    assert clip_gets(sim, bad) == gets + 1
    assert clip_row(make_settings(tmp_path / "data", sim), bad).state == ClipState.stored


def test_verify_repair_requeues_without_the_back_off(tmp_path: Path, sim: Simulator, camera: int) -> None:
    [media_id] = sim.add_clips(camera, 1, size=20_000)
    settings = make_settings(tmp_path, sim)
    assert run_sync(settings).stored == 1
    move_next_try(settings, media_id, datetime.now(UTC) + timedelta(hours=5))  # left by an earlier failure
    [lost] = settings.archive_dir.rglob(f"*{media_id}.mp4")
    lost.unlink()  # the destination lost the clip
    engine = open_engine(settings)
    try:
        assert run_verify(settings, engine, repair=True).requeued == 1
    finally:
        engine.dispose()
    row = clip_row(settings, media_id)
    assert row.state == ClipState.discovered and row.next_attempt_at is None
    assert run_sync(settings).stored == 1


# -- the cursor in the future is notified ------------------------------------------------------------------
def test_a_repaired_cursor_is_notified_once(
    tmp_path: Path, sim: Simulator, camera: int, webhook_server: Webhook
) -> None:
    sim.add_clips(camera, 2, size=10_000)
    settings = make_settings(tmp_path, sim, notify={"urls": [webhook_server.url]})
    run_sync(settings)
    set_cursor(settings, datetime(9999, 12, 31, tzinfo=UTC))
    engine = open_engine(settings)
    worker = Worker(settings, engine)
    name = settings.account_list()[0].name

    async def two_syncs() -> None:
        await worker.sync_account(name)
        await worker.sync_account(name)  # repaired: nothing more to say

    try:
        asyncio.run(two_syncs())
    finally:
        engine.dispose()
    about_cursor = [p for p in webhook_server.payloads if "cursor" in p.get("title", "")]
    assert len(about_cursor) == 1, webhook_server.payloads
    assert "9999-12-31" in about_cursor[0]["message"] and name in about_cursor[0]["title"]


def test_a_repaired_cursor_is_a_fact_of_the_report_and_counted_once_in_the_metrics(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    sim.add_clips(camera, 2, size=10_000)
    settings = make_settings(tmp_path, sim)
    assert run_sync(settings).cursor_repair is None
    future = datetime(9999, 12, 31, tzinfo=UTC)
    set_cursor(settings, future)
    report = run_sync(settings)
    assert report.cursor_repair is not None and as_utc(report.cursor_repair.found) == future
    assert report.cursor_repair.listing_from < datetime.now(UTC)
    assert report.cursor_repair.note() in report.notes  # the CLI still prints it

    set_cursor(settings, future)
    engine = open_engine(settings)
    worker = Worker(settings, engine)
    name = settings.account_list()[0].name

    async def two_syncs() -> None:
        await worker.sync_account(name)
        await worker.sync_account(name)

    try:
        asyncio.run(two_syncs())
    finally:
        engine.dispose()
    assert f'archiver_cursor_repairs_total{{account="{name}"}} 1.0' in worker.metrics.render().decode()


def test_a_note_that_only_mentions_the_cursor_sends_no_cursor_notification(
    tmp_path: Path, sim: Simulator, webhook_server: Webhook
) -> None:
    """Notes carry server text (a Sync Module's name): the notification follows the repair itself."""
    net = sim.add_network("Home")
    cam = sim.add_camera(net, "Back Door")
    sm = sim.add_sync_module(net, "the cursor was in the future")
    sim.add_local_clip(sm, cam)
    sim.quirks.malformed_manifest_entries = ["not an entry"]  # a note naming the module
    settings = usb_settings(tmp_path, sim, notify={"urls": [webhook_server.url]})
    engine = open_engine(settings)
    worker = Worker(settings, engine)
    try:
        asyncio.run(worker.sync_account(settings.account_list()[0].name))
    finally:
        engine.dispose()
    assert webhook_server.payloads == []
    assert 'archiver_cursor_repairs_total{account="default"}' not in worker.metrics.render().decode()


@pytest.fixture
def webhook_server() -> Any:
    hook = Webhook()
    hook.thread.start()
    yield hook
    hook.httpd.shutdown()
    hook.httpd.server_close()


# -- preflight in the runner ---------------------------------------------------------------------------
def test_sync_all_runs_the_preflight_before_any_download(tmp_path: Path, sim: Simulator, camera: int) -> None:
    sim.add_clips(camera, 2, size=10_000)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the staging folder should be")
    settings = make_settings(tmp_path, sim, sync={"staging_dir": str(blocked)})
    sim.reset_requests()
    engine = open_engine(settings)
    try:
        with pytest.raises(ConfigError, match=r"sync\.staging_dir"):
            asyncio.run(sync_all(settings, engine))
    finally:
        engine.dispose()
    assert sim.request_count() == 0  # not even a login


# -- database work off the event loop -------------------------------------------------------------------
def test_a_clips_rows_are_written_off_the_event_loop(tmp_path: Path, sim: Simulator, camera: int) -> None:
    sim.add_clips(camera, 6, size=10_000)
    settings = make_settings(tmp_path, sim)
    engine = open_engine(settings)
    on_loop: list[str] = []
    loop_thread = threading.get_ident()  # asyncio.run runs the loop in this thread

    @event.listens_for(engine, "before_cursor_execute")
    def _seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if threading.get_ident() == loop_thread:
            on_loop.append(" ".join(statement.split())[:80])

    try:
        [report] = asyncio.run(sync_all(settings, engine))
    finally:
        engine.dispose()
    assert report.stored == 6
    per_clip = [s for s in on_loop if "storedobject" in s.lower() or s.upper().startswith("UPDATE CLIP")]
    assert per_clip == []
