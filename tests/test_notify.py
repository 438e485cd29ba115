# ruff: noqa: F811  (the webhook fixture imported from notify_fixtures is shadowed by test parameters)
"""Apprise notifications: one per failure streak, "run archiver login" when a PIN is needed, no secrets,
delivered to a real JSON webhook on loopback — in-process and from a real `archiver run` worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from helpers import free_port
from notify_fixtures import Webhook, webhook  # noqa: F401  (the fixture)
from pydantic import SecretStr

from archiver.config import NotifySettings
from archiver.errors import AuthError, SessionRejected, TwoFactorRequired
from archiver.logs import REDACTOR
from archiver.notify import AlertTracker, Notifier
from archiver.simulator import Faults, SimConfig, Simulator

CLI = "import archiver.cli.worker; from archiver.cli import main; main()"
WRONG_PASSWORD = "Wr0ng-Hunter2-password"


class FakeNotifier:
    enabled = True

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, title: str, body: str) -> bool:
        self.sent.append((title, body))
        return True


def tracker(failing_for: float) -> tuple[AlertTracker, FakeNotifier]:
    fake = FakeNotifier()
    return AlertTracker(fake, timedelta(seconds=failing_for)), fake  # type: ignore[arg-type]


def test_one_notification_per_failure_streak() -> None:
    t, fake = tracker(3600)
    t.record("a", False, started=0, message="boom", now=10)
    t.record("a", False, started=1800, message="boom", now=1810)
    assert fake.sent == []  # failing for 30 min only
    t.record("a", False, started=3600, message="boom", now=3700)
    assert len(fake.sent) == 1 and "account a is failing" in fake.sent[0][0]
    for k in range(5):  # still failing: no repeats
        t.record("a", False, started=4000 + k * 900, message="boom", now=4010 + k * 900)
    assert len(fake.sent) == 1
    t.record("b", False, started=0, message="x", now=10)  # other accounts are independent
    t.record("a", True, started=9000, now=9010)
    assert len(fake.sent) == 2 and "recovered" in fake.sent[1][0]
    t.record("a", True, started=9900, now=9910)  # no news on more good runs
    t.record("a", False, started=10000, message="again", now=10010)
    assert len(fake.sent) == 2  # a new streak must last failing_for again
    t.record("a", False, started=14000, message="again", now=14010)
    assert len(fake.sent) == 3 and "again" in fake.sent[2][1]


def test_pin_needed_notifies_at_once() -> None:
    t, fake = tracker(3600)
    t.record("a", False, started=0, message="2FA", error=TwoFactorRequired(), now=1)
    assert len(fake.sent) == 1 and "archiver login" in fake.sent[0][0]
    t.record("a", False, started=100, error=TwoFactorRequired(), now=5000)
    assert len(fake.sent) == 1  # the login message covers this streak
    t2, fake2 = tracker(3600)
    t2.record("a", False, started=0, error=SessionRejected("session expired: run `archiver login`"), now=1)
    assert "archiver login" in fake2.sent[0][0]
    t3, fake3 = tracker(3600)
    t3.record("a", False, started=0, error=AuthError("Blink rejected the username or password"), now=1)
    assert fake3.sent == []  # a wrong password waits for failing_for like any failure


def test_daily_summary() -> None:
    t, _ = tracker(3600)
    t.record("a", True, started=0, stored=3, bytes_=3_000_000, now=1)
    t.record("a", False, started=10, failed=2, message="x", now=11)
    title, body = t.daily_summary()  # type: ignore[misc]
    assert "summary" in title
    assert "a: 3 clip(s) archived, 3.0 MB, 2 clip failure(s), 1 of 2 run(s) failed" in body
    assert t.daily_summary() is None  # counters restart


def test_apprise_delivery_is_scrubbed(webhook: Webhook) -> None:
    REDACTOR.add("s3cr3t-notify-pass")
    n = Notifier(NotifySettings(urls=[SecretStr(webhook.url)]))
    assert n.enabled
    assert n.send("hello", "bob's password s3cr3t-notify-pass failed; access_token=abcdefgh123456")
    assert len(webhook.payloads) == 1
    raw = webhook.raw[0].decode()
    assert "hello" in raw and "s3cr3t-notify-pass" not in raw and "abcdefgh123456" not in raw


def test_without_apprise_nothing_happens(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "apprise", None)  # import fails
    n = Notifier(NotifySettings(urls=[SecretStr("json://127.0.0.1:9/")]))
    assert not n.enabled and not n.send("t", "b")
    assert "apprise is not installed" in caplog.text


@pytest.mark.timeout(60)
def test_worker_notifies_failing_account_without_secrets(tmp_path: Path, webhook: Webhook) -> None:
    port = free_port()
    with Simulator(SimConfig(two_factor=False), Faults(latency_s=0.2)) as sim:
        sim.add_camera(sim.add_network("Home"), "Front")
        cfg = tmp_path / "archiver.toml"
        cfg.write_text(
            f'data_dir = "{tmp_path / "data"}"\n'
            f'[blink]\nserver_url = "{sim.url}"\nusername = "{sim.config.username}"\n'
            f'password = "{WRONG_PASSWORD}"\nmax_requests_per_second = 0\nretries = 0\n'
            '[schedule]\ninterval = "1m"\n'
            f'[server]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\nunhealthy_after = "0.5s"\n'
            f'[notify]\nurls = ["{webhook.url}"]\nfailing_for = "0.3s"\n'
        )
        env = {**os.environ, "ARCHIVER_CONFIG": str(cfg)}
        env.pop("ARCHIVER_DATA_DIR", None)
        proc = subprocess.Popen(
            [sys.executable, "-c", CLI, "run"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while not webhook.payloads and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.2)
            assert webhook.payloads, "no notification arrived"
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz")
            assert ready.status_code == 503 and "account default" in ready.text
            assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            assert 'archiver_syncs_total{account="default",result="error"} 1.0' in metrics
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=15)
            assert proc.returncode == 0, out
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert len(webhook.payloads) == 1
    payload = webhook.payloads[0]
    # a refused configured password marks the account "login needed" (no machine retries it): said at once
    assert "account default needs `archiver login`" in payload["title"]
    assert "rejected the configured username or password" in payload["message"]
    raw = b"".join(webhook.raw).decode()
    assert WRONG_PASSWORD not in raw
    assert WRONG_PASSWORD not in out
