"""Home Assistant entities as its users expect them, against a real Mosquitto broker: diagnostics, one
device per camera, an ``event`` entity fired once per stored clip with a link to the clip's page, stale
entities cleared (a camera removed from the account, an account removed from the settings, the button of
a worker a CronJob replaced), everything announced again on HA's birth message, and the one-shot mode
(expiring states, no button)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from ha_schema import parse_topic, validate, validate_event
from helpers import PASSWORD, USER, make_settings
from mqtt_fixtures import Broker, Listener, clip_events, retained
from sqlmodel import select

from archiver.config import Settings
from archiver.db.engine import session_scope
from archiver.db.models import Clip
from archiver.homeassistant.bridge import HomeAssistant
from archiver.homeassistant.oneshot import sync_and_prune_with_mqtt
from archiver.pipeline.report import Reporter, SyncReport
from archiver.pipeline.runner import open_engine, sync_and_prune
from archiver.simulator import Simulator

PUBLIC = "https://archive.example.net"
NODE = "blink_archiver_default"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "mosquitto").start()
    try:
        yield b
    finally:
        b.stop()


def configs(broker: Broker) -> dict[str, dict[str, Any]]:
    """The retained discovery configs on the broker (an empty one is no config)."""
    return {t: json.loads(b) for t, b in retained(broker, "homeassistant/#").items() if b}


def one_shot(settings: Settings) -> list[SyncReport]:
    engine = open_engine(settings)
    try:
        return asyncio.run(sync_and_prune_with_mqtt(settings, engine))
    finally:
        engine.dispose()


def as_worker(settings: Settings) -> None:
    """What ``archiver run`` announces: the bridge with a "sync now" listener, one sync, then stop."""
    engine = open_engine(settings)

    async def sync_now(account: str) -> None:
        return None

    async def go() -> None:
        ha = HomeAssistant(settings, engine, sync_now=sync_now)
        await ha.start()
        try:
            await ha.observe_sync(
                list(ha.accounts),
                lambda factory: sync_and_prune(settings, engine, reporter_factory=factory),
                lambda account: Reporter(),
            )
            await ha.link.connected.wait()
            await ha.drain(10)
        finally:
            await ha.close(offline=True)

    try:
        asyncio.run(go())
    finally:
        engine.dispose()


def test_categories_camera_devices_and_an_event_per_stored_clip_with_its_url(
    tmp_path: Path, broker: Broker, sim: Simulator
) -> None:
    net = sim.add_network("Home")
    front, back = sim.add_camera(net, "Front Door"), sim.add_camera(net, "Back Yard")
    ids = sim.add_clips(front, 3) + sim.add_clips(back, 1)
    settings = make_settings(tmp_path, sim, mqtt={"url": broker.url}, server={"public_url": PUBLIC})
    listener = Listener(broker, ["blink-archiver/#"])
    try:
        assert one_shot(settings)[0].stored == 4
        fired = lambda: listener.on(lambda m: m.topic.endswith("/event"))  # noqa: E731
        listener.wait(lambda: len(fired()) >= 4, 10, "4 events")
        time.sleep(0.3)
        found = configs(broker)
        events = fired()
        clips = {e["id"]: e for e in clip_events(listener)}
    finally:
        listener.close()

    for topic, cfg in found.items():
        component = parse_topic(topic)[0]  # type: ignore[index]
        assert validate(component, cfg) == [], (topic, validate(component, cfg))
    account = {c["name"]: c for t, c in found.items() if "/camera_" not in t}
    assert {n for n, c in account.items() if c.get("entity_category") == "diagnostic"} == {
        "Sync problem",
        "Login needed",
        "Last sync",
        "Failed clips",
        "Archive size",
        "Sync Module offline",  # the silence watch (on by default)
        "USB storage inactive",
    }
    assert all(c["device"]["configuration_url"] == PUBLIC + "/" for c in account.values())

    engine = open_engine(settings)
    with session_scope(engine) as s:
        row_of = {c.blink_id: c for c in s.exec(select(Clip)).all()}
    engine.dispose()
    for cam, name in ((front, "Front Door"), (back, "Back Yard")):
        mine = {c["name"]: c for t, c in found.items() if f"/camera_{cam}_" in t}
        assert set(mine) == {"Last clip", "Clips archived", "Last clip thumbnail", "Clip", "Silent"}
        for cfg in mine.values():
            assert cfg["device"]["name"] == name and cfg["device"]["via_device"] == NODE
            account_id = row_of[str(ids[0])].account_id
            assert cfg["device"]["configuration_url"] == f"{PUBLIC}/camera/{account_id}/{cam}"
        assert mine["Clip"]["event_types"] == ["clip"]
        assert mine["Clip"]["state_topic"] == f"blink-archiver/default/camera/{cam}/event"

    # one event per stored clip, on its camera's entity, HA-valid, the clip message plus its url
    assert sorted(m.json()["id"] for m in events) == sorted(str(i) for i in ids)
    event_config = {c["state_topic"]: c for c in found.values() if "event_types" in c}
    for m in events:
        assert not m.retain
        assert validate_event(event_config[m.topic], m.payload) == []
        body = m.json()
        clip = row_of[body["id"]]
        assert m.topic == f"blink-archiver/default/camera/{clip.camera_blink_id}/event"
        assert body.pop("event_type") == "clip"
        assert clip.archive_key and body["key"] == clip.archive_key
        assert body.pop("url") == f"{PUBLIC}/clip/key/{quote(clip.archive_key)}"  # a reindex keeps it
        assert body == clips[body["id"]], "the same attributes as the clip message"


def test_a_camera_removed_from_the_account_loses_its_entities(
    tmp_path: Path, broker: Broker, sim: Simulator
) -> None:
    net = sim.add_network("Home")
    front, back = sim.add_camera(net, "Front Door"), sim.add_camera(net, "Back Yard")
    sim.add_clips(front, 1)
    sim.add_clips(back, 1)
    settings = make_settings(
        tmp_path, sim, mqtt={"url": broker.url}, local_storage={"discovery_interval": "0s"}
    )
    one_shot(settings)
    before = configs(broker)
    assert sum(f"/camera_{back}_" in t for t in before) == 5  # with "silent" (the silence watch)

    sim.remove_camera(back)  # a new process: it only knows what the broker holds
    one_shot(settings)
    after = configs(broker)
    assert not [t for t in after if f"/camera_{back}_" in t]
    assert set(after) == {t for t in before if f"/camera_{back}_" not in t}
    for topic in before.keys() - after.keys():
        assert retained(broker, topic, settle=0.2) == {}, "cleared, not just emptied"


def test_an_account_removed_from_the_settings_loses_its_entities(
    tmp_path: Path, broker: Broker, sim: Simulator, camera: int
) -> None:
    sim.add_clips(camera, 1)
    both = [
        {"name": "alpha", "username": USER, "password": PASSWORD},
        {"name": "beta", "username": USER, "password": PASSWORD},
    ]
    one_shot(make_settings(tmp_path, sim, mqtt={"url": broker.url}, accounts=both))
    nodes = {parse_topic(t)[1] for t in configs(broker)}  # type: ignore[index]
    assert nodes == {"blink_archiver_alpha", "blink_archiver_beta"}

    one_shot(make_settings(tmp_path, sim, mqtt={"url": broker.url}, accounts=both[1:]))
    nodes = {parse_topic(t)[1] for t in configs(broker)}  # type: ignore[index]
    assert nodes == {"blink_archiver_beta"}


def test_cronjob_mode_states_expire_and_the_workers_button_goes(
    tmp_path: Path, broker: Broker, sim: Simulator, camera: int
) -> None:
    sim.add_clips(camera, 1)
    settings = make_settings(tmp_path, sim, mqtt={"url": broker.url})
    as_worker(settings)
    worker = configs(broker)
    assert [c["name"] for c in worker.values() if "command_topic" in c] == ["Sync now"]
    assert not any("expire_after" in c for c in worker.values())

    one_shot(settings)  # the CronJob took over
    cron = configs(broker)
    assert not any("command_topic" in c for c in cron.values()), "nothing listens to the button"
    states = [c for t, c in cron.items() if parse_topic(t)[0] in ("sensor", "binary_sensor")]  # type: ignore[index]
    # the account's 5 + 2 of the silence watch, the camera's 2 + "silent"
    assert len(states) == 7 + 3 and all(c["expire_after"] == 3600 for c in states)
    assert retained(broker, "blink-archiver/status")["blink-archiver/status"] == b"online"


def test_home_assistants_birth_message_gets_everything_announced_again(
    tmp_path: Path, broker: Broker, sim: Simulator, camera: int
) -> None:
    sim.add_clips(camera, 1)
    settings = make_settings(tmp_path, sim, mqtt={"url": broker.url})
    engine = open_engine(settings)
    listener = Listener(broker, ["homeassistant/#", "blink-archiver/default/state"])

    def live(prefix: str) -> list[str]:
        def mine(m: Any) -> bool:
            return m.topic.startswith(prefix) and m.topic != "homeassistant/status" and not m.retain

        return [m.topic for m in listener.on(mine)]

    async def sync_now(account: str) -> None:
        return None

    async def go() -> tuple[set[str], list[str], list[str]]:
        ha = HomeAssistant(settings, engine, sync_now=sync_now)
        await ha.start()
        try:
            await ha.observe_sync(
                ["default"], lambda f: sync_and_prune(settings, engine, reporter_factory=f), None
            )
            await ha.link.connected.wait()
            await ha.drain(10)
            await asyncio.to_thread(listener.wait, lambda: len(live("homeassistant/")) >= 10, 10, "configs")
            await asyncio.sleep(0.3)
            first = set(live("homeassistant/"))
            n_configs, n_states = len(live("homeassistant/")), len(live("blink-archiver/"))
            await asyncio.to_thread(listener.publish, "homeassistant/status", "online")
            await asyncio.to_thread(
                listener.wait, lambda: len(live("homeassistant/")) >= n_configs + len(first), 10, "again"
            )
            await asyncio.to_thread(
                listener.wait, lambda: len(live("blink-archiver/")) > n_states, 10, "the state again"
            )
            await asyncio.to_thread(listener.publish, "homeassistant/status", "offline")
            return first, live("homeassistant/")[n_configs:], live("blink-archiver/")
        finally:
            await ha.close(offline=True)

    try:
        first, again, _ = asyncio.run(go())
    finally:
        listener.close()
        engine.dispose()
    assert len(first) == 8 + 5  # with the silence watch's 2 account and 1 camera entities
    assert set(again) == first
