# ruff: noqa: F811  (the webhook fixture imported from notify_fixtures is shadowed by test parameters)
"""Silence watch (issue 24): a camera that stops recording is reported once and cleared by its next clip;
a camera that is only rarely triggered is not reported; Sync Module offline and USB storage inactive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from helpers import make_settings, run_sync, usb_settings
from notify_fixtures import Webhook, webhook  # noqa: F401  (the fixture)
from sqlmodel import select

from archiver.config import NotifySettings, SilenceSettings
from archiver.db.engine import open_engine, session_scope
from archiver.db.models import SilenceAlert
from archiver.metrics import Metrics
from archiver.notify import Notifier
from archiver.silence import check, open_alerts, threshold
from archiver.simulator import Simulator


def ago(**kw: float) -> datetime:
    return datetime.now(UTC) - timedelta(**kw)


def test_a_camera_that_stops_recording_is_reported_once_and_its_next_clip_clears_it(
    tmp_path: Path, sim: Simulator, webhook: Webhook
) -> None:
    net = sim.add_network("Home")
    busy = sim.add_camera(net, "Driveway")  # a clip every 2 hours, then nothing for 2 days
    weekly = sim.add_camera(net, "Shed")  # once a week; its last clip 3 days ago
    for hours in range(48 + 2 * 12, 48, -2):
        sim.add_clip(busy, created_at=ago(hours=hours), size=20_000)
    for days in (24, 17, 10, 3):
        sim.add_clip(weekly, created_at=ago(days=days), size=20_000)
    settings = make_settings(tmp_path, sim, notify={"urls": [webhook.url]})
    assert run_sync(settings).stored == 16
    engine = open_engine(settings)
    notifier = Notifier(NotifySettings(urls=[webhook.url]))
    try:
        report = check(engine, settings.silence, notifier)
        assert [a.name for a in report.raised] == ["Driveway"] and report.raised[0].kind == "camera_silent"
        assert webhook.titles() == ["Driveway: camera silent"]
        assert [a.name for a in open_alerts(engine)] == ["Driveway"]
        assert 'archiver_silence_alerts{account="default",kind="camera_silent",name="Driveway"} 1.0' in (
            Metrics(engine).render().decode()
        )
        assert check(engine, settings.silence, notifier).raised == []  # raised once, not at every check
        assert webhook.titles() == ["Driveway: camera silent"]

        sim.add_clip(busy, size=20_000)  # it records again
        assert run_sync(settings).stored == 1
        report = check(engine, settings.silence, notifier)
        assert [a.name for a in report.cleared] == ["Driveway"] and report.open == []
        assert webhook.titles() == ["Driveway: camera silent", "Driveway: recording again"]
        with session_scope(engine) as s:
            assert list(s.exec(select(SilenceAlert))) == []
    finally:
        engine.dispose()


def test_a_weekly_camera_is_not_silent_on_day_3_but_a_busy_one_is_after_a_day() -> None:
    now = datetime.now(UTC)
    cfg = SilenceSettings()
    weekly = [now - timedelta(days=d) for d in (52, 45, 38, 31, 24, 17, 10, 3)]
    assert threshold(weekly, now, cfg) > timedelta(days=3)
    hourly = [now - timedelta(hours=h) for h in range(24, 24 * 14, 1)]
    assert threshold(hourly, now, cfg) == timedelta(hours=24)  # min_silence rules a busy camera
    every_six_hours = [now - timedelta(hours=h) for h in range(30, 24 * 14, 6)]
    assert threshold(every_six_hours, now, cfg) == timedelta(hours=24)
    every_day = [now - timedelta(days=d) for d in range(1, 14)]
    assert threshold(every_day, now, cfg) == timedelta(days=3)  # 3 x the usual gap


def test_an_offline_sync_module_and_usb_storage_that_stopped_are_reported_and_cleared(
    tmp_path: Path, usb_sim: Simulator
) -> None:
    net = usb_sim.add_network("Cabin")
    cam = usb_sim.add_camera(net, "Porch")
    sm = usb_sim.add_sync_module(net, "Cabin SM")
    usb_sim.add_local_clip(sm, cam)
    settings = usb_settings(tmp_path, usb_sim)
    assert run_sync(settings).stored == 1
    engine = open_engine(settings)
    cfg = SilenceSettings(min_silence="1000d")  # only the Sync Module alerts here
    try:
        assert check(engine, cfg).raised == []
        usb_sim.set_sync_module_online(sm, False)
        from archiver.db.models import SyncModule

        with session_scope(engine) as s:  # what the next homescreen read records
            row = s.exec(select(SyncModule)).one()
            row.status, row.local_storage_status = "offline", "unavailable"
            s.add(row)
        raised = check(engine, cfg).raised
        assert sorted((a.kind, a.name) for a in raised) == [
            ("sync_module_offline", "Cabin SM"),
            ("usb_inactive", "Cabin SM"),
        ]
        with session_scope(engine) as s:
            row = s.exec(select(SyncModule)).one()
            row.status, row.local_storage_status = "online", "active"
            s.add(row)
        assert len(check(engine, cfg).cleared) == 2
    finally:
        engine.dispose()
