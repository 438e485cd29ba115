"""Home Assistant over MQTT against a real Mosquitto broker: discovery configs HA accepts, one event per
archived clip, states after a sync, a broker that is down, secured, TLS or restarting never costs a clip."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ha_schema import parse_topic, validate
from helpers import PASSWORD, USER, cli_env, free_port, make_settings, run_cli
from mqtt_fixtures import Broker, Listener, clip_events, retained
from s3_fixtures import moto_server, s3_bucket  # noqa: F401
from sqlmodel import select

from archiver.db.engine import make_engine, session_scope
from archiver.db.models import Account, Clip, ClipState
from archiver.errors import AuthError
from archiver.homeassistant.oneshot import sync_and_prune_with_mqtt
from archiver.pipeline.report import AccountsFailed
from archiver.pipeline.runner import open_engine
from archiver.simulator import SimConfig, Simulator


# -- against a real broker ----------------------------------------------------------------------------
@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(tmp_path / "mosquitto").start()
    try:
        yield b
    finally:
        b.stop()


def mqtt_cli_env(data: Path, sim: Simulator, broker: Broker, **extra: str) -> dict[str, str]:
    """An ``archiver`` subprocess against ``sim`` (logging in itself) that publishes to ``broker``."""
    return cli_env(
        data, sim, ARCHIVER_BLINK__USERNAME=USER, ARCHIVER_BLINK__PASSWORD=PASSWORD,
        ARCHIVER_MQTT__URL=broker.url, **extra,
    )  # fmt: skip


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
    env = mqtt_cli_env(data, sim, broker, ARCHIVER_PROCESSING__THUMBNAIL="blink")  # Blink's thumbnails
    try:
        result = run_cli(["sync"], env)
        assert result.returncode == 0, result.stderr
        listener.wait(lambda: len(clip_events(listener)) >= 5, 10, "5 clip events")
        time.sleep(0.3)
        events = clip_events(listener)
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
            assert e["duration_s"] is not None and e["duration_s"] > 0  # probed
            kinds = {f["kind"] for f in e["files"]}
            assert {"clip", "thumbnail", "sidecar"} <= kinds
            assert (data / "archive" / e["key"]).is_file()
            for f in e["files"]:
                assert f["uri"].startswith("file:///") and Path(f["path"]).is_file()
            assert e["image_entity"].startswith("image.blink_archiver_default_")

        # discovery: every retained config is one Home Assistant accepts
        configs = retained(broker, "homeassistant/#")
        # one-shot: no "sync now" button; 5 entities per camera (with the silence watch's "silent"), 2 more
        # for the account (Sync Module offline, USB storage inactive)
        assert len(configs) == 7 + 2 * 5
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
        before = len(clip_events(listener))
        assert run_cli(["sync"], env).returncode == 0
        time.sleep(0.5)
        assert len(clip_events(listener)) == before
    finally:
        listener.close()


def test_a_broker_that_is_down_never_blocks_or_fails_archiving(
    tmp_path: Path, sim: Simulator, camera: int, caplog: pytest.LogCaptureFixture
) -> None:
    sim.add_clips(camera, 4)
    settings = make_settings(tmp_path, sim, mqtt={"url": f"mqtt://127.0.0.1:{free_port()}"})
    caplog.set_level(logging.INFO, logger="archiver.mqtt")
    started = time.monotonic()
    reports = asyncio.run(sync_and_prune_with_mqtt(settings, open_engine(settings)))
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
        reports = asyncio.run(sync_and_prune_with_mqtt(settings, open_engine(settings)))
        assert reports[0].stored == 2
        listener.wait(lambda: len(clip_events(listener)) == 2, 10, "2 clip events")
        assert not any(creds[1].encode() in m.payload for m in listener.messages)

        # a wrong password: the broker refuses, the sync does not care
        sim.add_clips(camera, 1)
        wrong = make_settings(tmp_path, sim, mqtt={"url": b.url, "username": creds[0], "password": "nope"})
        reports = asyncio.run(sync_and_prune_with_mqtt(wrong, open_engine(wrong)))
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
        assert asyncio.run(sync_and_prune_with_mqtt(settings, open_engine(settings)))[0].stored == 1
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
        # clip downloads beyond ``allowed[0]`` hold until the test lets more through: which phase each
        # download falls in (broker up, broker away, broker back) never depends on the machine's speed
        allowed = [6]
        started = [0]
        gate = threading.Condition()

        def hold_downloads(method: str, path: str) -> None:
            if "/media/clip/" not in path:
                return
            with gate:
                n = started[0]
                started[0] += 1
                gate.wait_for(lambda: n < allowed[0], timeout=120)

        def allow(n: int) -> None:
            with gate:
                allowed[0] = n
                gate.notify_all()

        sim.on_request = hold_downloads
        settings = make_settings(
            tmp_path, sim, mqtt={"url": broker.url}, sync={"concurrency": 2}, processing={"probe": False}
        )
        status = "blink-archiver/status"
        listener = Listener(broker, ["blink-archiver/default/clip", status])
        result: dict[str, object] = {}

        def run() -> None:
            try:
                result["reports"] = asyncio.run(sync_and_prune_with_mqtt(settings, open_engine(settings)))
            except BaseException as exc:  # surfaced by the assertions below
                result["error"] = exc

        def live_online() -> int:  # "online" published while the listener is subscribed (not replays)
            return len(listener.on(lambda m: m.topic == status and m.payload == b"online" and not m.retain))

        t = threading.Thread(target=run)
        t.start()
        try:
            listener.wait(lambda: len(clip_events(listener)) >= 2, 30, "the first events")
            broker.stop()
            allow(12)  # six more clips are archived while the broker is away
            # (a request is recorded once it is answered)
            listener.wait(lambda: sim.request_count("/media/clip/") >= 12, 30, "archiving goes on")
            onlines = live_online()
            broker.start()
            # the link backs off exponentially while the broker is away (up to a minute)
            listener.wait(lambda: live_online() > onlines, 90, "the archiver back online")
            allow(len(ids))
            t.join(60)
            assert not t.is_alive()
            assert "error" not in result, result.get("error")
            reports = result["reports"]
            assert isinstance(reports, list) and reports[0].ok and reports[0].stored == 20
            listener.wait(
                lambda: {e["id"] for e in clip_events(listener)} >= {str(i) for i in ids}, 20, "every event"
            )
        finally:
            allow(len(ids))
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
        processing={"thumbnail": "blink"},
    )
    listener = Listener(broker, ["blink-archiver/#"])
    try:
        assert asyncio.run(sync_and_prune_with_mqtt(settings, open_engine(settings)))[0].stored == 2
        listener.wait(lambda: len(clip_events(listener)) == 2, 10, "2 clip events")
        for e in clip_events(listener):
            clip = next(f for f in e["files"] if f["kind"] == "clip")
            assert clip["uri"] == f"s3://{bucket}/blink/{clip['key']}" and clip["path"] is None
        thumb = retained(broker, f"blink-archiver/default/camera/{camera}/thumbnail")
        assert list(thumb.values()) == [sim.thumbnail_bytes(ids[-1])]
    finally:
        listener.close()


def _account_state(broker: Broker) -> dict[str, Any]:
    topic = "blink-archiver/default/state"
    return json.loads(retained(broker, topic)[topic])  # type: ignore[no-any-return]


def _archive_size(archive: Path) -> int:
    return sum(p.stat().st_size for p in archive.rglob("*") if p.is_file() and not p.name.startswith("."))


def test_archiver_prune_republishes_the_archive_size(tmp_path: Path, broker: Broker, sim: Simulator) -> None:
    cam = sim.add_camera(sim.add_network("Home"), "Front Door")
    sim.add_clips(cam, 3)
    data = tmp_path / "data"
    env = mqtt_cli_env(
        data,
        sim,
        broker,
        ARCHIVER_RETENTION__KEEP_LAST="1",
        ARCHIVER_RETENTION__PRUNE_AFTER_SYNC="false",
    )
    assert run_cli(["sync"], env).returncode == 0
    before = _account_state(broker)
    assert before["archive_bytes"] == _archive_size(data / "archive")
    result = run_cli(["prune"], env)
    assert result.returncode == 0, result.stderr
    assert "deleted 2 clips" in result.stdout
    after = _account_state(broker)
    assert 0 < after["archive_bytes"] == _archive_size(data / "archive") < before["archive_bytes"]
    assert after["failed_clips"] == 0
    assert run_cli(["prune", "--dry-run"], env).returncode == 0  # nothing deleted: nothing to say


def test_the_workers_prune_job_republishes_the_archive_size(
    tmp_path: Path, broker: Broker, sim: Simulator
) -> None:
    from archiver.homeassistant.bridge import HomeAssistant
    from archiver.worker import Worker

    cam = sim.add_camera(sim.add_network("Home"), "Front Door")
    sim.add_clips(cam, 3)
    settings = make_settings(
        tmp_path, sim, mqtt={"url": broker.url}, retention={"keep_last": 1, "prune_after_sync": False}
    )
    engine = open_engine(settings)
    worker = Worker(settings, engine)

    def size_published(expected: int, what: str) -> None:
        deadline = time.monotonic() + 10
        while _account_state(broker)["archive_bytes"] != expected:
            assert time.monotonic() < deadline, f"timed out waiting for {what}"

    async def go() -> None:
        worker.ha = HomeAssistant(settings, engine, sync_now=worker.sync_now)
        await worker.ha.start()
        try:
            await worker.sync_account("default")
            full = _archive_size(settings.archive_dir)
            await asyncio.to_thread(size_published, full, "the sync's state")
            await worker.prune_job()
            await worker.ha.drain(10)
            pruned = _archive_size(settings.archive_dir)
            assert 0 < pruned < full
            await asyncio.to_thread(size_published, pruned, "the size after the prune")
        finally:
            await worker.ha.close(offline=True)

    try:
        asyncio.run(go())
    finally:
        engine.dispose()


def test_a_sync_that_needs_a_pin_turns_login_needed_and_sync_problem_on(
    tmp_path: Path, broker: Broker
) -> None:
    with Simulator(SimConfig(two_factor=True)) as sim:
        sim.add_clips(sim.add_camera(sim.add_network("Home"), "Front Door"), 1)
        settings = make_settings(tmp_path, sim, mqtt={"url": broker.url})
        with pytest.raises(AuthError):
            asyncio.run(sync_and_prune_with_mqtt(settings, open_engine(settings)))
    state = json.loads(retained(broker, "blink-archiver/default/state")["blink-archiver/default/state"])
    assert state["login_needed"] is True and state["sync_problem"] is True
    assert "archiver login" in state["details"]["login_reason"]
    assert sim.config.password not in json.dumps(state)


def test_several_accounts_one_needing_a_login_each_gets_its_own_state(
    tmp_path: Path, broker: Broker, sim: Simulator, camera: int
) -> None:
    sim.add_clips(camera, 2)
    accounts = [
        {"name": "alpha", "username": USER, "password": "wrong-password"},
        {"name": "beta", "username": USER, "password": PASSWORD},
    ]
    settings = make_settings(tmp_path, sim, mqtt={"url": broker.url}, accounts=accounts)
    with pytest.raises(AccountsFailed) as err:
        asyncio.run(sync_and_prune_with_mqtt(settings, open_engine(settings)))
    assert err.value.exit_code == 2 and [r.account for r in err.value.reports] == ["beta"]
    states = retained(broker, "blink-archiver/+/state")
    alpha = json.loads(states["blink-archiver/alpha/state"])
    beta = json.loads(states["blink-archiver/beta/state"])
    assert alpha["login_needed"] is True and alpha["sync_problem"] is True
    assert beta["login_needed"] is False and beta["sync_problem"] is False and beta["archive_bytes"] > 0


def test_usb_clips_get_events_too_and_a_recording_in_both_places_gets_one(
    tmp_path: Path, broker: Broker, sim: Simulator
) -> None:
    net = sim.add_network("Home")
    cam = sim.add_camera(net, "Drive Way")
    sm = sim.add_sync_module(net, "SM2")
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    cloud_id = sim.add_clip(cam, created_at=at)
    sim.add_local_clip(sm, cam, created_at=at)  # the same recording on the USB stick
    usb_only = sim.add_local_clip(sm, cam, created_at=at + timedelta(minutes=10))
    settings = make_settings(tmp_path, sim, mqtt={"url": broker.url})
    listener = Listener(broker, ["blink-archiver/#"])
    try:
        report = asyncio.run(sync_and_prune_with_mqtt(settings, open_engine(settings)))[0]
        assert report.ok and report.stored == 2
        listener.wait(lambda: len(clip_events(listener)) == 2, 20, "2 clip events")
        time.sleep(0.3)
        events = {e["source"]: e for e in clip_events(listener)}
        assert len(clip_events(listener)) == 2 and set(events) == {"cloud", "local"}
        assert events["cloud"]["id"] == str(cloud_id)
        usb = events["local"]
        assert usb["id"] == usb_only and usb["camera"] == "Drive Way" and usb["network"] == "Home"
        assert {"clip", "thumbnail", "sidecar"} <= {f["kind"] for f in usb["files"]}
        thumb = retained(broker, f"blink-archiver/default/camera/{cam}/thumbnail")
        assert next(iter(thumb.values()))[:3] == b"\xff\xd8\xff"  # the newest: the USB clip's generated JPEG
        state = json.loads(retained(broker, f"blink-archiver/default/camera/{cam}/state").popitem()[1])
        assert state["clips_archived"] == 2 and state["details"]["last_clip_source"] == "local"
    finally:
        listener.close()
