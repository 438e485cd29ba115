"""Home Assistant discovery configs (checked against HA's schema), the [mqtt] settings, the login-needed
signal and the camera state a stored clip leads to: no broker needed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from ha_schema import parse_topic, validate

from archiver.config import AccountSettings, load_settings
from archiver.db.models import Account, Clip
from archiver.errors import AuthError, ConfigError, SessionRejected, TwoFactorRequired
from archiver.homeassistant.bridge import one_shot_expiry
from archiver.homeassistant.discovery import (
    CameraInfo,
    Links,
    Mode,
    Topics,
    account_entities,
    camera_entities,
    is_our_config,
    publications,
)
from archiver.homeassistant.state import CameraState, camera_state_after, login_needed_reason

TOPICS = Topics(discovery_prefix="homeassistant", base="blink-archiver")


def all_configs(
    account: str = "default", cameras: list[CameraInfo] | None = None, mode: Mode | None = None
) -> dict[str, dict]:
    cams = (
        cameras
        if cameras is not None
        else [CameraInfo(id=7, name="Front Door", network="Home", account_id=3)]
    )
    entities = account_entities(TOPICS, account, mode)
    for cam in cams:
        entities += camera_entities(TOPICS, account, cam, mode)
    return {p.topic: json.loads(p.payload) for p in publications(TOPICS, account, entities)}


WORKER = Mode(listening=True, links=Links(public_url="https://archive.example.net/blink/"))


# -- discovery (pure) ---------------------------------------------------------------------------------
def test_discovery_configs_pass_home_assistants_schema() -> None:
    configs = all_configs(mode=WORKER)
    assert len(configs) == 6 + 4
    kinds: dict[str, int] = {}
    for topic, cfg in configs.items():
        parsed = parse_topic(topic)
        assert parsed is not None, topic
        component, node, _obj = parsed
        assert node == "blink_archiver_default"
        assert validate(component, cfg) == [], (topic, validate(component, cfg))
        assert cfg["availability_topic"] == "blink-archiver/status"
        assert "expire_after" not in cfg, "the worker keeps its states up to date"
        kinds[component] = kinds.get(component, 0) + 1
    assert kinds == {"sensor": 5, "binary_sensor": 2, "image": 1, "button": 1, "event": 1}
    problems = {c["name"]: c.get("device_class") for c in configs.values() if "problem" in str(c)}
    assert problems == {"Sync problem": "problem", "Login needed": "problem"}
    button = next(c for c in configs.values() if "command_topic" in c)
    assert button["command_topic"] == "blink-archiver/default/sync_now" and button["payload_press"] == "PRESS"
    image = next(c for c in configs.values() if "image_topic" in c)
    assert image["content_type"] == "image/jpeg" and "url_topic" not in image


def test_diagnostics_are_categorised_and_the_archive_size_is_in_megabytes() -> None:
    by_name = {c["name"]: c for t, c in all_configs(mode=WORKER).items() if "/camera_" not in t}
    diagnostic = {n for n, c in by_name.items() if c.get("entity_category") == "diagnostic"}
    assert diagnostic == {"Sync problem", "Login needed", "Last sync", "Failed clips", "Archive size"}
    size = by_name["Archive size"]
    assert (size["device_class"], size["unit_of_measurement"], size["suggested_display_precision"]) == (
        "data_size",
        "MB",
        1,
    )
    assert by_name["Failed clips"]["suggested_display_precision"] == 0
    assert "entity_category" not in by_name["Sync now"]


def test_each_camera_is_a_device_behind_the_account_with_links_to_the_web_ui() -> None:
    configs = all_configs(mode=WORKER)
    account = {t: c for t, c in configs.items() if "/camera_" not in t}
    camera = {t: c for t, c in configs.items() if "/camera_7_" in t}
    assert len(camera) == 4
    for cfg in account.values():
        assert cfg["device"]["identifiers"] == ["blink_archiver_default"]
        assert cfg["device"]["configuration_url"] == "https://archive.example.net/blink/"
    for cfg in camera.values():
        dev = cfg["device"]
        assert dev["identifiers"] == ["blink_archiver_default_camera_7"] and dev["name"] == "Front Door"
        assert dev["via_device"] == "blink_archiver_default"
        assert dev["configuration_url"] == "https://archive.example.net/blink/camera/3/7"
    names = {c["name"]: c.get("default_entity_id") for c in camera.values()}
    assert names == {  # the entity ids earlier versions had (automations keep working)
        "Last clip": "sensor.blink_archiver_default_front_door_last_clip",
        "Clips archived": "sensor.blink_archiver_default_front_door_clips_archived",
        "Last clip thumbnail": "image.blink_archiver_default_front_door_last_clip_thumbnail",
        "Clip": "event.blink_archiver_default_front_door_clip",
    }
    event = next(c for c in camera.values() if c["name"] == "Clip")
    assert (
        event["event_types"] == ["clip"] and event["state_topic"] == "blink-archiver/default/camera/7/event"
    )
    assert {c["name"] for c in camera.values() if c.get("device_class") == "timestamp"} == {"Last clip"}
    no_links = all_configs()
    assert not any("configuration_url" in c["device"] for c in no_links.values())


def test_one_shot_mode_has_expiring_states_and_no_button() -> None:
    configs = all_configs(mode=Mode(listening=False, expire_after=3600))
    assert not any("command_topic" in c for c in configs.values())
    for topic, cfg in configs.items():
        component = parse_topic(topic)[0]  # type: ignore[index]
        assert validate(component, cfg) == []
        if component in ("sensor", "binary_sensor"):
            assert cfg["expire_after"] == 3600, topic
        else:
            assert "expire_after" not in cfg


def test_the_one_shot_expiry_is_three_intervals_and_at_least_an_hour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVER_SCHEDULE__INTERVAL", "15m")
    assert one_shot_expiry(load_settings(None)) == 3600
    monkeypatch.setenv("ARCHIVER_SCHEDULE__INTERVAL", "2h")
    assert one_shot_expiry(load_settings(None)) == 6 * 3600


def test_public_url_must_be_a_web_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVER_SERVER__PUBLIC_URL", "archive.example.net")
    with pytest.raises(ConfigError, match=r"server\.public_url"):
        load_settings(None)
    monkeypatch.setenv("ARCHIVER_SERVER__PUBLIC_URL", "http://nas.lan:9090")
    assert load_settings(None).server.public_url == "http://nas.lan:9090"


def test_only_our_own_configs_are_recognised_for_clearing() -> None:
    (pub, *_) = publications(TOPICS, "default", account_entities(TOPICS, "default"))
    assert is_our_config(TOPICS, pub.topic, pub.payload)
    assert TOPICS.node_of_config(pub.topic) == "blink_archiver_default"
    foreign = json.dumps({"unique_id": "blink_archiver_x", "origin": {"name": "zigbee2mqtt"}}).encode()
    assert not is_our_config(TOPICS, pub.topic, foreign)
    assert not is_our_config(TOPICS, "homeassistant/sensor/0x00158d/temperature/config", pub.payload)
    assert not is_our_config(TOPICS, pub.topic, b"")
    assert TOPICS.node_of_config("homeassistant/sensor/blink_archiver_default/x/y/config") is None


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
        ("event", {"state_topic": "a"}, "missing required key 'event_types'"),
        ("event", {"state_topic": "a", "event_types": ["clip"], "device_class": "clip"}, "device_class"),
        ("sensor", {"state_topic": "a", "expire_after": -1}, "expire_after"),
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
        ("pw", "tok", SessionRejected("session expired: run `archiver login`"), True),
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
