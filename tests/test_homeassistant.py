"""Home Assistant over MQTT against a real Mosquitto broker: discovery configs HA accepts, one event per
archived clip, states after a sync, a broker that is down or restarts never costs a clip."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import PASSWORD, USER, cli_env, free_port, make_settings, run_cli, sim_config
from ha_schema import parse_topic, validate
from mqtt_fixtures import Broker, Listener, retained
from s3_fixtures import moto_server, s3_bucket  # noqa: F401
from sqlmodel import select

from archiver.config import AccountSettings, load_settings
from archiver.db.engine import make_engine, session_scope
from archiver.db.lease import release, try_acquire
from archiver.db.models import Account, Clip, ClipState
from archiver.errors import AuthError, ConfigError, TwoFactorRequired
from archiver.homeassistant.bridge import SYNC_NOW_DEBOUNCE_S
from archiver.homeassistant.discovery import (
    CameraInfo,
    Topics,
    account_entities,
    camera_entities,
    publications,
)
from archiver.homeassistant.oneshot import sync_all_with_mqtt
from archiver.homeassistant.state import CameraState, camera_state_after, login_needed_reason
from archiver.pipeline.runner import open_engine
from archiver.simulator import SimConfig, Simulator

TOPICS = Topics(discovery_prefix="homeassistant", base="blink-archiver")


def all_configs(account: str = "default", cameras: list[CameraInfo] | None = None) -> dict[str, dict]:
    cams = cameras if cameras is not None else [CameraInfo(id=7, name="Front Door", network="Home")]
    entities = account_entities(TOPICS, account)
    for cam in cams:
        entities += camera_entities(TOPICS, account, cam)
    return {p.topic: json.loads(p.payload) for p in publications(TOPICS, account, entities)}


# -- discovery (pure) ---------------------------------------------------------------------------------
def test_discovery_configs_pass_home_assistants_schema() -> None:
    configs = all_configs()
    assert len(configs) == 6 + 3
    kinds: dict[str, int] = {}
    for topic, cfg in configs.items():
        parsed = parse_topic(topic)
        assert parsed is not None, topic
        component, node, _obj = parsed
        assert node == "blink_archiver_default"
        assert validate(component, cfg) == [], (topic, validate(component, cfg))
        assert cfg["availability_topic"] == "blink-archiver/status"
        assert cfg["device"]["identifiers"] == ["blink_archiver_default"]
        kinds[component] = kinds.get(component, 0) + 1
    assert kinds == {"sensor": 5, "binary_sensor": 2, "image": 1, "button": 1}
    camera_configs = [c for t, c in configs.items() if "/camera_7_" in t]
    assert len(camera_configs) == 3 and all(c["name"].startswith("Front Door ") for c in camera_configs)
    problems = {c["name"]: c.get("device_class") for c in configs.values() if "problem" in str(c)}
    assert problems == {"Sync problem": "problem", "Login needed": "problem"}
    assert {c["name"] for c in configs.values() if c.get("device_class") == "timestamp"} == {
        "Last sync",
        "Front Door last clip",
    }
    button = next(c for c in configs.values() if "command_topic" in c)
    assert button["command_topic"] == "blink-archiver/default/sync_now" and button["payload_press"] == "PRESS"
    image = next(c for c in configs.values() if "image_topic" in c)
    assert image["content_type"] == "image/jpeg" and "url_topic" not in image


@pytest.mark.parametrize(
    ("component", "config", "problem"),
    [
        ("sensor", {"state_topic": "a/b", "stat_topic": "a/c"}, "unknown key 'stat_topic'"),
        ("sensor", {"value_template": "{{ x }}"}, "missing required key 'state_topic'"),
        ("sensor", {"state_topic": "a", "device_class": "timestamp", "unit_of_measurement": "s"}, "no unit"),
        ("sensor", {"state_topic": "a", "device_class": "data_size", "unit_of_measurement": "bytes"}, "unit"),
        ("binary_sensor", {"state_topic": "a", "device_class": "trouble"}, "bad value for 'device_class'"),
        ("image", {"image_topic": "a", "url_topic": "b"}, "exactly one"),
        ("image", {"url_topic": "b", "content_type": "image/jpeg"}, "content_type"),
        ("button", {"name": "x"}, "missing required key 'command_topic'"),
        ("button", {"command_topic": "a/+/b"}, "bad value for 'command_topic'"),
        ("sensor", {"state_topic": "a", "device": {"name": "x"}, "unique_id": "u"}, "identifiers"),
        (
            "sensor",
            {"state_topic": "a", "availability_topic": "s", "availability": [{"topic": "s"}]},
            "exclusive",
        ),
        ("sensor", {"state_topic": "a", "origin": {"sw_version": "1"}}, "origin: missing name"),
        ("sensor", {"state_topic": "a", "default_entity_id": "image.x"}, "domain"),
    ],
)
def test_the_schema_helper_rejects_configs_home_assistant_would_refuse(
    component: str, config: dict, problem: str
) -> None:
    errors = validate(component, config)
    assert any(problem in e for e in errors), errors


def test_unique_ids_are_stable_and_distinct_across_accounts_archivers_and_renames() -> None:
    def uids(topics: Topics, account: str, name: str = "Front Door") -> list[str]:
        ents = account_entities(topics, account) + camera_entities(
            topics, account, CameraInfo(id=7, name=name)
        )
        return [cfg.unique_id for _, cfg in ents]

    first = uids(TOPICS, "default")
    assert first == uids(TOPICS, "default")  # the same on every start
    assert first == uids(TOPICS, "default", name="Porch")  # a renamed camera keeps its entities
    assert len(set(first)) == len(first)
    assert not set(first) & set(uids(TOPICS, "cabin"))
    other = Topics(discovery_prefix="homeassistant", base="blink-archiver-2")
    assert not set(first) & set(uids(other, "default"))


# -- settings and the login signal --------------------------------------------------------------------
def test_mqtt_settings_come_from_the_environment_and_bad_urls_are_one_line_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert not load_settings(None).mqtt.enabled
    monkeypatch.setenv("ARCHIVER_MQTT__URL", "mqtts://broker.lan:8883")
    monkeypatch.setenv("ARCHIVER_MQTT__USERNAME", "ha")
    monkeypatch.setenv("ARCHIVER_MQTT__PASSWORD", "s3cret-pw")
    s = load_settings(None)
    assert s.mqtt.enabled and s.mqtt.url == "mqtts://broker.lan:8883"
    assert s.mqtt.password is not None and "s3cret-pw" not in repr(s.mqtt)
    assert (s.mqtt.discovery_prefix, s.mqtt.base_topic) == ("homeassistant", "blink-archiver")
    for bad in ("http://broker:1883", "mqtt://", "mqtt://host:99999"):
        monkeypatch.setenv("ARCHIVER_MQTT__URL", bad)
        with pytest.raises(ConfigError, match=r"^invalid setting mqtt\.url"):
            load_settings(None)
    monkeypatch.setenv("ARCHIVER_MQTT__URL", "mqtts://b")
    monkeypatch.setenv("ARCHIVER_MQTT__CA_FILE", "/nonexistent/ca.pem")
    with pytest.raises(ConfigError, match=r"^invalid setting mqtt\.ca_file"):
        load_settings(None)
    monkeypatch.delenv("ARCHIVER_MQTT__CA_FILE")
    monkeypatch.setenv("ARCHIVER_MQTT__BASE_TOPIC", "blink/#")
    with pytest.raises(ConfigError, match=r"mqtt\.base_topic"):
        load_settings(None)


@pytest.mark.parametrize(
    ("password", "token", "error", "needed"),
    [
        (None, "tok", TwoFactorRequired(), True),
        ("pw", "tok", AuthError("session expired: run `archiver login`"), True),
        ("pw", "tok", AuthError("wrong password"), False),
        (None, None, None, True),  # never logged in and no password to log in with
        ("pw", None, None, False),  # the archiver logs in by itself
        (None, "tok", None, False),
    ],
)
def test_login_needed_reason(
    password: str | None, token: str | None, error: Exception | None, needed: bool
) -> None:
    acct = AccountSettings(name="home", password=password)
    row = Account(name="home", hardware_id="h", access_token=token)
    reason = login_needed_reason(acct, row, error)
    assert (reason is not None) == needed
    if reason and password:
        assert password not in reason


def test_a_stored_clip_moves_the_camera_state_without_a_query() -> None:
    cam = CameraInfo(id=7, name="Front Door")
    t0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    def clip(minutes: int, naive: bool = False) -> Clip:
        at = t0 + timedelta(minutes=minutes)
        return Clip(
            account_id=1,
            identity=f"cloud:{minutes}",
            blink_id=str(minutes),
            created_at=at.replace(tzinfo=None) if naive else at,
            time_zone="Europe/Berlin",
        )

    empty = CameraState(last_clip=None, clips_archived=0)
    first, newest = camera_state_after(cam, empty, clip(0))
    assert newest and first.clips_archived == 1 and first.last_clip == t0.isoformat()
    assert first.details["last_clip_local"] == "2024-05-01T14:00:00+02:00"
    older, newest = camera_state_after(cam, first, clip(-30, naive=True))  # SQLite gives naive UTC
    assert not newest and older.clips_archived == 2 and older.last_clip == first.last_clip
    later, newest = camera_state_after(cam, older, clip(5, naive=True))
    assert newest and later.clips_archived == 3 and later.details["last_clip_id"] == "5"


# -- against a real broker ----------------------------------------------------------------------------
@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "mosquitto").start()
    try:
        yield b
    finally:
        b.stop()


def _events(listener: Listener, account: str = "default") -> list[dict]:
    return [m.json() for m in listener.topic(f"blink-archiver/{account}/clip")]


def _db_token(db: Path) -> str:
    engine = make_engine(f"sqlite:///{db}")
    try:
        with session_scope(engine) as s:
            token = s.exec(select(Account)).one().access_token
            assert token
            return token
    finally:
        engine.dispose()


def test_oneshot_sync_publishes_discovery_states_and_one_event_per_archived_clip(
    tmp_path: Path, broker: Broker, sim: Simulator
) -> None:
    net = sim.add_network("Home", time_zone="America/Chicago")
    front = sim.add_camera(net, "Front Door")
    back = sim.add_camera(net, "Back Yard")
    ids = sim.add_clips(front, 3) + sim.add_clips(back, 2)
    listener = Listener(broker, ["blink-archiver/#"])
    data = tmp_path / "data"
    env = cli_env(
        data,
        sim,
        ARCHIVER_BLINK__USERNAME=USER,
        ARCHIVER_BLINK__PASSWORD=PASSWORD,
        ARCHIVER_MQTT__URL=broker.url,
    )
    try:
        result = run_cli(["sync"], env)
        assert result.returncode == 0, result.stderr
        listener.wait(lambda: len(_events(listener)) >= 5, 10, "5 clip events")
        time.sleep(0.3)
        events = _events(listener)
        assert sorted(e["id"] for e in events) == sorted(str(i) for i in ids)  # one each, no more
        assert not any(m.retain for m in listener.topic("blink-archiver/default/clip"))
        names = {"Front Door", "Back Yard"}
        for e in events:
            clip = sim.state.clips[int(e["id"])]
            assert e["camera"] in names and e["network"] == "Home" and e["source"] == "cloud"
            assert e["identity"] == f"cloud:{e['id']}" and e["account"] == "default"
            assert datetime.fromisoformat(e["recorded_at"]) == clip.created_at
            local = datetime.fromisoformat(e["recorded_at_local"])
            assert (
                local == clip.created_at
                and local.utcoffset() is not None
                and local.utcoffset().total_seconds() < 0
            )
            assert e["time_zone"] == "America/Chicago"
            assert e["duration_s"] is None or e["duration_s"] > 0
            kinds = {f["kind"] for f in e["files"]}
            assert {"clip", "thumbnail", "sidecar"} <= kinds
            assert (data / "archive" / e["key"]).is_file()
            for f in e["files"]:
                assert f["uri"].startswith("file:///") and Path(f["path"]).is_file()
            assert e["image_entity"].startswith("image.blink_archiver_default_")

        # discovery: every retained config is one Home Assistant accepts
        configs = retained(broker, "homeassistant/#")
        assert len(configs) == 6 + 2 * 3
        for topic, body in configs.items():
            parsed = parse_topic(topic)
            assert parsed is not None
            assert validate(parsed[0], json.loads(body)) == [], topic

        state = retained(broker, "blink-archiver/#")
        assert state["blink-archiver/status"] == b"online"  # a clean one-shot exit leaves it usable
        acct = json.loads(state["blink-archiver/default/state"])
        on_disk = sum(p.stat().st_size for p in (data / "archive").rglob("*") if p.is_file())
        assert acct["archive_bytes"] == on_disk
        assert (acct["failed_clips"], acct["sync_problem"], acct["login_needed"]) == (0, False, False)
        assert datetime.fromisoformat(acct["last_sync"]).tzinfo is not None
        for cam, clip_ids in ((front, ids[:3]), (back, ids[3:])):
            cs = json.loads(state[f"blink-archiver/default/camera/{cam}/state"])
            assert cs["clips_archived"] == len(clip_ids)
            newest = sim.state.clips[clip_ids[-1]]
            assert datetime.fromisoformat(cs["last_clip"]) == newest.created_at
            thumb = state[f"blink-archiver/default/camera/{cam}/thumbnail"]
            assert thumb == sim.state.thumbnail_bytes(clip_ids[-1])  # the newest clip's thumbnail

        # no secret in any payload
        secrets = [PASSWORD, _db_token(data / "archiver.db")]
        for m in listener.messages:
            for secret in secrets:
                assert secret.encode() not in m.payload, m.topic
        for body in configs.values():
            assert not any(secret.encode() in body for secret in secrets)

        # a second run archives nothing new: no event
        before = len(_events(listener))
        assert run_cli(["sync"], env).returncode == 0
        time.sleep(0.5)
        assert len(_events(listener)) == before
    finally:
        listener.close()


def test_a_broker_that_is_down_never_blocks_or_fails_archiving(
    tmp_path: Path, sim: Simulator, camera: int, caplog: pytest.LogCaptureFixture
) -> None:
    sim.add_clips(camera, 4)
    settings = make_settings(tmp_path, sim, mqtt={"url": f"mqtt://127.0.0.1:{free_port()}"})
    caplog.set_level(logging.INFO, logger="archiver.mqtt")
    started = time.monotonic()
    reports = asyncio.run(sync_all_with_mqtt(settings, open_engine(settings)))
    assert time.monotonic() - started < 15
    assert reports[0].ok and reports[0].stored == 4
    warnings = [
        r for r in caplog.records if r.levelno >= logging.WARNING and "cannot reach" in r.getMessage()
    ]
    assert len(warnings) == 1  # logged once, however often it retried
    assert "archiving goes on" in warnings[0].getMessage()


def test_username_and_password_are_used_and_never_published(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    creds = ("ha-user", "broker-secret-pw")
    b = Broker(tmp_path / "secured", credentials=creds).start()
    try:
        listener = Listener(b, ["#"], credentials=creds)
        sim.add_clips(camera, 2)
        settings = make_settings(
            tmp_path, sim, mqtt={"url": b.url, "username": creds[0], "password": creds[1]}
        )
        reports = asyncio.run(sync_all_with_mqtt(settings, open_engine(settings)))
        assert reports[0].stored == 2
        listener.wait(lambda: len(_events(listener)) == 2, 10, "2 clip events")
        assert not any(creds[1].encode() in m.payload for m in listener.messages)

        # a wrong password: the broker refuses, the sync does not care
        sim.add_clips(camera, 1)
        wrong = make_settings(tmp_path, sim, mqtt={"url": b.url, "username": creds[0], "password": "nope"})
        reports = asyncio.run(sync_all_with_mqtt(wrong, open_engine(wrong)))
        assert reports[0].ok and reports[0].stored == 1
        listener.close()
    finally:
        b.stop()


def test_mqtts_with_a_private_ca(tmp_path: Path, sim: Simulator, camera: int) -> None:
    b = Broker(tmp_path / "tls", tls=True).start()
    try:
        sim.add_clips(camera, 1)
        assert b.ca_file is not None and b.url.startswith("mqtts://")
        settings = make_settings(tmp_path, sim, mqtt={"url": b.url, "ca_file": str(b.ca_file)})
        assert asyncio.run(sync_all_with_mqtt(settings, open_engine(settings)))[0].stored == 1
        log = (b.folder / "mosquitto.log").read_text(errors="replace")
        assert "New client connected" in log and "blink-archiv" in log  # it really spoke TLS to it
    finally:
        b.stop()


def test_a_broker_restart_mid_sync_loses_no_clip_and_no_event(
    tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="archiver.mqtt")
    with Simulator(SimConfig(two_factor=False)) as sim:
        cam = sim.add_camera(sim.add_network("Home"), "Front Door")
        ids = sim.add_clips(cam, 20)
        sim.faults.latency_s = 0.1
        gate = threading.Event()  # clip downloads hold while it is clear
        gate.set()
        sim.on_request = lambda method, path: "/media/clip/" in path and gate.wait(30)
        settings = make_settings(
            tmp_path, sim, mqtt={"url": broker.url}, sync={"concurrency": 2}, processing={"probe": False}
        )
        status = "blink-archiver/status"
        listener = Listener(broker, ["blink-archiver/default/clip", status])
        result: dict[str, object] = {}

        def run() -> None:
            try:
                result["reports"] = asyncio.run(sync_all_with_mqtt(settings, open_engine(settings)))
            except BaseException as exc:  # surfaced by the assertions below
                result["error"] = exc

        def live_online() -> int:  # "online" published while the listener is subscribed (not replays)
            return len(listener.on(lambda m: m.topic == status and m.payload == b"online" and not m.retain))

        t = threading.Thread(target=run)
        t.start()
        try:
            listener.wait(lambda: len(_events(listener)) >= 2, 30, "the first events")
            broker.stop()
            downloads = sim.request_count("/media/clip/")
            listener.wait(lambda: sim.request_count("/media/clip/") >= downloads + 3, 30, "archiving goes on")
            gate.clear()  # keep the rest of the sync for after the restart
            onlines = live_online()
            broker.start()
            listener.wait(lambda: live_online() > onlines, 30, "the archiver back online")
            gate.set()
            t.join(60)
            assert not t.is_alive()
            assert "error" not in result, result.get("error")
            reports = result["reports"]
            assert isinstance(reports, list) and reports[0].ok and reports[0].stored == 20
            listener.wait(
                lambda: {e["id"] for e in _events(listener)} >= {str(i) for i in ids}, 20, "every event"
            )
        finally:
            gate.set()
            t.join(60)
            listener.close()
        logged = [r.getMessage() for r in caplog.records if r.name == "archiver.mqtt"]
        assert any("lost broker" in m for m in logged), logged  # the restart really hit the sync
        assert any("connected to broker" in m and "again" in m for m in logged), logged
        engine = make_engine(settings.database_url)
        with session_scope(engine) as s:
            states = [c.state for c in s.exec(select(Clip)).all()]
        engine.dispose()
        assert states.count(ClipState.stored) == 20


def test_an_s3_only_archive_still_feeds_the_thumbnail_and_the_event(
    tmp_path: Path,
    broker: Broker,
    sim: Simulator,
    camera: int,
    s3_bucket: tuple[str, str],  # noqa: F811 (the fixture)
) -> None:
    endpoint, bucket = s3_bucket
    ids = sim.add_clips(camera, 2)
    settings = make_settings(
        tmp_path,
        sim,
        mqtt={"url": broker.url},
        destinations=[{"type": "s3", "bucket": bucket, "prefix": "blink", "endpoint_url": endpoint}],
    )
    listener = Listener(broker, ["blink-archiver/#"])
    try:
        assert asyncio.run(sync_all_with_mqtt(settings, open_engine(settings)))[0].stored == 2
        listener.wait(lambda: len(_events(listener)) == 2, 10, "2 clip events")
        for e in _events(listener):
            clip = next(f for f in e["files"] if f["kind"] == "clip")
            assert clip["uri"] == f"s3://{bucket}/blink/{clip['key']}" and clip["path"] is None
        thumb = retained(broker, f"blink-archiver/default/camera/{camera}/thumbnail")
        assert list(thumb.values()) == [sim.thumbnail_bytes(ids[-1])]
    finally:
        listener.close()


def test_a_sync_that_needs_a_pin_turns_login_needed_and_sync_problem_on(
    tmp_path: Path, broker: Broker
) -> None:
    with Simulator(SimConfig(two_factor=True)) as sim:
        sim.add_clips(sim.add_camera(sim.add_network("Home"), "Front Door"), 1)
        settings = make_settings(tmp_path, sim, mqtt={"url": broker.url})
        with pytest.raises(AuthError):
            asyncio.run(sync_all_with_mqtt(settings, open_engine(settings)))
    state = json.loads(retained(broker, "blink-archiver/default/state")["blink-archiver/default/state"])
    assert state["login_needed"] is True and state["sync_problem"] is True
    assert "archiver login" in state["details"]["login_reason"]
    assert sim.config.password not in json.dumps(state)


# -- the worker (`archiver run` as a real process) ----------------------------------------------------
WORKER = "import archiver.cli.worker; from archiver.cli import main; main()"


def _start_worker(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    env["ARCHIVER_CONFIG"] = str(cfg)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", WORKER, "run"], env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )


def _status(listener: Listener) -> str | None:
    got = listener.topic("blink-archiver/status")
    return got[-1].payload.decode() if got else None


@pytest.mark.timeout(120)
def test_worker_sync_now_archives_new_clips_and_kill_9_turns_availability_offline(
    tmp_path: Path, broker: Broker
) -> None:
    with Simulator(SimConfig(two_factor=False)) as sim:
        cam = sim.add_camera(sim.add_network("Home"), "Front Door")
        first = sim.add_clips(cam, 2)
        cfg = sim_config(tmp_path, sim, f'[schedule]\ninterval = "1h"\n[mqtt]\nurl = "{broker.url}"\n')
        listener = Listener(broker, ["blink-archiver/#"])
        log = tmp_path / "worker.log"
        proc = _start_worker(cfg, log)
        try:
            listener.wait(lambda: _status(listener) == "online", 30, "availability online")
            listener.wait(lambda: len(_events(listener)) == 2, 30, "the first sync's events")
            assert proc.poll() is None

            # three presses in a row: one more sync, which archives the new clips
            second = sim.add_clips(cam, 3)
            pressed = time.monotonic()
            for _ in range(3):
                listener.publish("blink-archiver/default/sync_now", "PRESS")
            listener.wait(lambda: len(_events(listener)) == 5, 30, "the events of the new clips")
            assert time.monotonic() - pressed < 15  # within a few seconds, not at the next interval (1 h)
            assert sorted(e["id"] for e in _events(listener)) == sorted(str(i) for i in first + second)
            time.sleep(SYNC_NOW_DEBOUNCE_S + 1)
            assert log.read_text().count("sync start account=default") == 2, log.read_text()[-3000:]
            state = json.loads(listener.topic("blink-archiver/default/state")[-1].payload)
            assert state["sync_problem"] is False and state["failed_clips"] == 0

            # another process holds the account's lease: a press waits for it, never overlaps
            engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'archiver.db'}")
            other = "elsewhere:1:cronjob"
            assert try_acquire(engine, "account:default", other, timedelta(minutes=2))
            third = sim.add_clips(cam, 1)
            listener.publish("blink-archiver/default/sync_now", "PRESS")
            time.sleep(SYNC_NOW_DEBOUNCE_S + 2)
            text = log.read_text()
            assert "waiting for the sync in progress to end" in text
            assert text.count("sync start account=default") == 2
            release(engine, "account:default", other)
            engine.dispose()
            listener.wait(lambda: len(_events(listener)) == 6, 30, "the event of the clip after the lease")
            assert _events(listener)[-1]["id"] == str(third[0])
            assert log.read_text().count("sync start account=default") == 3

            # kill -9: the broker publishes the last will
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            listener.wait(lambda: _status(listener) == "offline", 15, "availability offline (last will)")
            assert retained(broker, "blink-archiver/status") == {"blink-archiver/status": b"offline"}

            # a clean stop says offline too (a clean disconnect does not fire the will); a press left
            # retained on the broker is stale, not a press
            listener.publish("blink-archiver/default/sync_now", "PRESS", retain=True)
            presses = log.read_text().count("pressed in Home Assistant")
            proc = _start_worker(cfg, log)
            listener.wait(lambda: _status(listener) == "online", 30, "availability online again")
            listener.wait(lambda: "ignored a retained" in log.read_text(), 10, "the stale press ignored")
            assert log.read_text().count("pressed in Home Assistant") == presses
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
            listener.wait(lambda: _status(listener) == "offline", 10, "availability offline (stop)")
        finally:
            if proc.poll() is None:
                proc.kill()
            listener.close()
    text = log.read_text()
    assert sim.config.password not in text


def test_the_worker_archives_and_stops_promptly_while_the_broker_is_down(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    from archiver.worker import Worker

    sim.add_clips(camera, 3)
    settings = make_settings(
        tmp_path, sim, mqtt={"url": f"mqtt://127.0.0.1:{free_port()}"}, schedule={"interval": "1h"}
    )
    engine = open_engine(settings)

    def stored() -> int:
        with session_scope(engine) as s:
            return len(s.exec(select(Clip).where(Clip.state == ClipState.stored)).all())

    async def scenario() -> tuple[int, float]:
        worker = Worker(settings, engine)
        run = asyncio.create_task(worker.run())
        deadline = time.monotonic() + 30
        while stored() < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        t0 = time.monotonic()
        worker.request_stop()
        code = await asyncio.wait_for(run, 20)
        return code, time.monotonic() - t0

    code, stop_s = asyncio.run(scenario())
    assert code == 0 and stored() == 3
    assert stop_s < 8  # no waiting on a broker that is not there
