"""What is in each clip and which camera went quiet, in Home Assistant (issue 24), against a real Mosquitto
broker: the clip event (the account's ``clip`` message and the camera's ``event`` entity) carries the
clip's ``activity`` and ``tags`` once its analysis finished, or goes out after a bounded wait without
them; "<camera> last person" when a tag detector is on; "<camera> silent" from the silence watch."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from ha_schema import parse_topic, validate, validate_event
from helpers import make_settings
from mqtt_fixtures import Broker, Listener, clip_events, retained
from sqlmodel import select

from archiver.analysis import DETECTORS, Detection, Tag
from archiver.analysis.runner import sync_and_prune_analysed
from archiver.config import Settings
from archiver.db.engine import session_scope
from archiver.db.models import ClipTag
from archiver.homeassistant.oneshot import sync_and_prune_with_mqtt
from archiver.pipeline.report import SyncReport
from archiver.pipeline.runner import open_engine
from archiver.silence import check
from archiver.simulator import Simulator

NODE = "blink_archiver_default"


class SlowTagger:
    """A detector registered as ``person`` (the real one needs OpenCV and a photograph): every clip has
    a person at 1.5 s, after ``delay`` seconds of "work"."""

    name: ClassVar[str] = "person"
    version: ClassVar[str] = "t1"
    delay = 0.0

    def analyze(self, path: Path) -> Detection:
        time.sleep(self.delay)
        return Detection(tags=[Tag(label="person", confidence=0.875, at_s=1.5)])


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "mosquitto").start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def tagger(monkeypatch: pytest.MonkeyPatch) -> type[SlowTagger]:
    monkeypatch.setitem(DETECTORS, "person", lambda settings: SlowTagger())
    monkeypatch.setattr(SlowTagger, "delay", 0.0)
    return SlowTagger


def configs(broker: Broker) -> dict[str, dict[str, Any]]:
    return {t: json.loads(b) for t, b in retained(broker, "homeassistant/#").items() if b}


def one_shot(settings: Settings, after: Callable[[], bool] | None = None) -> list[SyncReport]:
    """``archiver sync``: the analysis beside the sync, Home Assistant, then ``after`` (silence)."""
    engine = open_engine(settings)
    try:
        return asyncio.run(
            sync_and_prune_with_mqtt(settings, engine, sync=sync_and_prune_analysed, after=after)
        )
    finally:
        engine.dispose()


def test_the_clip_event_carries_activity_and_tags_once_the_analysis_finished(
    tmp_path: Path, broker: Broker, sim: Simulator, tagger: type[SlowTagger]
) -> None:
    tagger.delay = 0.3  # the event waits for it (the wait is 5 s by default)
    net = sim.add_network("Home")
    cam = sim.add_camera(net, "Front Door")
    sim.add_clips(cam, 2, size=20_000)
    analysis = {"detectors": ["motion", "person"]}
    settings = make_settings(tmp_path, sim, mqtt={"url": broker.url}, analysis=analysis)
    listener = Listener(broker, ["blink-archiver/#"])
    try:
        assert one_shot(settings)[0].stored == 2
        fired = lambda: listener.on(lambda m: m.topic.endswith("/event"))  # noqa: E731
        listener.wait(lambda: len(fired()) >= 2 and len(clip_events(listener)) >= 2, 10, "2 events")
        events = [m.json() for m in fired()]
        clips = clip_events(listener)
        found = configs(broker)
        state = json.loads(
            retained(broker, f"blink-archiver/default/camera/{cam}/state")[
                f"blink-archiver/default/camera/{cam}/state"
            ]
        )
    finally:
        listener.close()

    for payload in [*clips, *events]:
        assert payload["analyzed"] is True
        assert isinstance(payload["activity"], float) and 0.0 <= payload["activity"] <= 1.0
        assert payload["tags"] == [{"label": "person", "confidence": 0.875, "at_s": 1.5}]
        assert payload["labels"] == ["person"]
    print("clip event:", json.dumps(events[0], indent=1))

    # "<camera> last person": a timestamp sensor, valid for Home Assistant, = the newest clip's time
    person = found[f"homeassistant/sensor/{NODE}/camera_{cam}_last_person/config"]
    assert validate("sensor", person) == [] and person["device_class"] == "timestamp"
    assert person["default_entity_id"] == "sensor.blink_archiver_default_front_door_last_person"
    assert state["last_person"] == max(e["recorded_at"] for e in events)
    assert state["silent"] is False
    event_cfg = found[f"homeassistant/event/{NODE}/camera_{cam}_clip/config"]
    assert validate_event(event_cfg, json.dumps(events[0]).encode()) == []


def test_without_the_analysis_in_time_the_event_goes_out_after_a_bounded_wait(
    tmp_path: Path, broker: Broker, sim: Simulator, tagger: type[SlowTagger]
) -> None:
    tagger.delay = 1.0  # far longer than the wait
    net = sim.add_network("Home")
    cam = sim.add_camera(net, "Garden")
    sim.add_clips(cam, 1, size=20_000)
    analysis = {"detectors": ["person"]}
    mqtt = {"url": broker.url, "analysis_wait": "0.2s"}
    settings = make_settings(tmp_path, sim, mqtt=mqtt, analysis=analysis)
    listener = Listener(broker, ["blink-archiver/#"])
    try:
        one_shot(settings)
        listener.wait(lambda: bool(clip_events(listener)), 10, "the clip event")
        [event] = clip_events(listener)
    finally:
        listener.close()
    # it went out without the results, yet the analysis did finish (after it): the wait was bounded
    assert event["analyzed"] is False and event["activity"] is None and event["tags"] == []
    engine = open_engine(settings)
    try:
        with session_scope(engine) as s:
            assert [t.label for t in s.exec(select(ClipTag))] == ["person"]
    finally:
        engine.dispose()


def test_a_camera_that_went_quiet_is_a_problem_in_home_assistant_until_its_next_clip(
    tmp_path: Path, broker: Broker, sim: Simulator
) -> None:
    net = sim.add_network("Home")
    busy = sim.add_camera(net, "Driveway")  # a clip every 2 hours, then nothing for 2 days
    now = datetime.now(UTC)
    for hours in range(48 + 2 * 8, 48, -2):
        sim.add_clip(busy, created_at=now - timedelta(hours=hours), size=20_000)
    settings = make_settings(tmp_path, sim, mqtt={"url": broker.url}, analysis={"enabled": False})
    topic = f"blink-archiver/default/camera/{busy}/state"

    def silence() -> bool:
        engine = open_engine(settings)
        try:
            report = check(engine, settings.silence)
        finally:
            engine.dispose()
        return bool(report.raised or report.cleared)

    assert one_shot(settings, after=silence)[0].stored == 8
    found = configs(broker)
    state = json.loads(retained(broker, topic)[topic])
    cfg = found[f"homeassistant/binary_sensor/{NODE}/camera_{busy}_silent/config"]
    assert validate("binary_sensor", cfg) == [] and cfg["device_class"] == "problem"
    assert cfg["default_entity_id"] == "binary_sensor.blink_archiver_default_driveway_silent"
    assert "last_person" not in json.dumps([c["name"] for c in found.values()]).lower()  # no tag detector
    for obj in ("sync_module_offline", "usb_inactive"):
        account_cfg = found[f"homeassistant/binary_sensor/{NODE}/{obj}/config"]
        assert validate("binary_sensor", account_cfg) == []
    for t, c in found.items():
        component = parse_topic(t)[0]  # type: ignore[index]
        assert validate(component, c) == [], (t, validate(component, c))
    assert state["silent"] is True and "no clip for" in state["details"]["silent_detail"]

    sim.add_clip(busy, size=20_000)  # it records again: the next sync clears it
    assert one_shot(settings, after=silence)[0].stored == 1
    assert json.loads(retained(broker, topic)[topic])["silent"] is False


def test_the_onnx_detectors_tags_reach_the_event_through_the_real_pipeline(
    tmp_path: Path, broker: Broker, sim: Simulator
) -> None:
    from test_analysis import onnx_settings  # the tiny YOLO model built with onnx's helper API

    net = sim.add_network("Home")
    cam = sim.add_camera(net, "Porch")
    sim.add_clips(cam, 1, size=20_000)
    analysis = {"detectors": ["motion", "onnx"], "onnx": onnx_settings(tmp_path)}
    settings = make_settings(tmp_path, sim, mqtt={"url": broker.url}, analysis=analysis)
    listener = Listener(broker, ["blink-archiver/#"])
    try:
        assert one_shot(settings)[0].stored == 1
        listener.wait(lambda: bool(clip_events(listener)), 10, "the clip event")
        [event] = clip_events(listener)
        found = configs(broker)
    finally:
        listener.close()
    assert event["analyzed"] is True and event["activity"] is not None
    assert event["labels"] == ["car", "person"]
    assert {(t["label"], t["confidence"]) for t in event["tags"]} == {
        ("person", 0.9),
        ("person", 0.7),
        ("car", 0.85),
    }
    assert f"homeassistant/sensor/{NODE}/camera_{cam}_last_person/config" in found  # onnx keeps "person"


def test_the_worker_raises_silent_once_with_one_notification_and_home_assistant_sees_it(
    tmp_path: Path, broker: Broker, sim: Simulator
) -> None:
    from test_silence import Webhook

    from archiver.worker import Worker

    hook = Webhook()
    hook.thread.start()
    net = sim.add_network("Home")
    busy = sim.add_camera(net, "Driveway")
    now = datetime.now(UTC)
    for hours in range(48 + 2 * 8, 48, -2):
        sim.add_clip(busy, created_at=now - timedelta(hours=hours), size=20_000)
    settings = make_settings(
        tmp_path,
        sim,
        mqtt={"url": broker.url},
        notify={"urls": [hook.url]},
        analysis={"enabled": False},
        schedule={"interval": "1h"},
    )
    topic = f"blink-archiver/default/camera/{busy}/state"
    listener = Listener(broker, [topic])
    engine = open_engine(settings)

    def silent() -> bool:
        states = [m.json() for m in listener.topic(topic)]
        return bool(states) and states[-1]["silent"] is True

    async def scenario() -> None:
        worker = Worker(settings, engine)
        run = asyncio.create_task(worker.run())
        deadline = time.monotonic() + 30
        while not (silent() and hook.titles()) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        worker.request_stop()
        await asyncio.wait_for(run, 20)

    try:
        asyncio.run(scenario())
        assert silent(), [m.json() for m in listener.topic(topic)]
        assert [t for t in hook.titles() if "silent" in t] == ["Driveway: camera silent"]
    finally:
        listener.close()
        engine.dispose()
        hook.httpd.shutdown()
        hook.httpd.server_close()
