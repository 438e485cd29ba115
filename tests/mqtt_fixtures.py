"""A real Mosquitto broker on a free loopback port, and a listener that records what it receives."""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from helpers import free_port, make_certificates

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


class Broker:
    """``start`` / ``stop`` / ``restart`` keep the same port, so clients can reconnect to it."""

    def __init__(
        self, folder: Path, *, credentials: tuple[str, str] | None = None, tls: bool = False
    ) -> None:
        if not Path(MOSQUITTO).exists():  # .ci/run installs it (Debian's mosquitto)
            pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.credentials = credentials
        self.ca_file = make_certificates(folder) if tls else None
        self.proc: subprocess.Popen[bytes] | None = None
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if credentials else 'true'}",
            f"user {getpass.getuser()}",  # never drop privileges to a user that cannot read these files
            "persistence true",  # a restart keeps retained messages and the listener's session
            f"persistence_location {self.folder}/",
            f"log_dest file {self.folder / 'mosquitto.log'}",
            "log_type all",
        ]
        if credentials:
            pwfile = self.folder / "passwd"
            subprocess.run(
                [MOSQUITTO_PASSWD, "-b", "-c", str(pwfile), *credentials], check=True, capture_output=True
            )
            lines.append(f"password_file {pwfile}")
        if self.ca_file is not None:
            lines += [
                f"cafile {self.ca_file}",
                f"certfile {folder / 'server.pem'}",
                f"keyfile {folder / 'server.key'}",
            ]
        self.config = self.folder / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.ca_file else 'mqtt'}://127.0.0.1:{self.port}"

    def start(self) -> Broker:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.folder / "mosquitto.log").read_text(errors="replace")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("mosquitto did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # saves its persistence file
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Listener:
    """A paho client subscribed to ``topics`` (QoS 1, persistent session: it survives broker restarts)."""

    def __init__(
        self,
        broker: Broker,
        topics: list[str],
        *,
        credentials: tuple[str, str] | None = None,
        name: str = "t",
    ) -> None:
        self.topics = topics
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"test-listener-{name}", clean_session=False
        )
        if credentials:
            self.client.username_pw_set(*credentials)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 1)
        self._subscribed = threading.Event()
        self.client.connect("127.0.0.1", broker.port, keepalive=30)
        self.client.loop_start()
        assert self._subscribed.wait(10), "listener could not subscribe"

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
        for t in self.topics:
            client.subscribe(t, qos=1)
        self._subscribed.set()

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain)))

    def on(self, predicate: Callable[[Received], bool]) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if predicate(m)]

    def topic(self, topic: str) -> list[Received]:
        return self.on(lambda m: m.topic == topic)

    def wait(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def publish(self, topic: str, payload: str, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def retained(broker: Broker, topic_filter: str, *, settle: float = 0.5) -> dict[str, bytes]:
    """Every retained message under ``topic_filter``, as a fresh subscriber sees it."""
    got: dict[str, bytes] = {}
    done = threading.Event()
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"test-retained-{time.monotonic_ns()}")

    def on_connect(c: paho.Client, u: Any, f: Any, rc: Any, p: Any = None) -> None:
        c.subscribe(topic_filter, qos=1)
        done.set()

    def on_message(c: paho.Client, u: Any, msg: paho.MQTTMessage) -> None:
        if msg.retain:
            got[msg.topic] = bytes(msg.payload)

    client.on_connect = on_connect
    client.on_message = on_message
    if broker.credentials:
        client.username_pw_set(*broker.credentials)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        assert done.wait(10)
        time.sleep(settle)
    finally:
        client.loop_stop()
        client.disconnect()
    return got


def clip_events(listener: Listener, account: str = "default") -> list[dict[str, Any]]:
    """The clip events the listener received for ``account``, in order."""
    return [m.json() for m in listener.topic(f"blink-archiver/{account}/clip")]
