"""Blink's edge (Cloudflare) refusing sign-in, PIN or token requests, over HTTP against the simulator: its
own state, a per-account back-off, and every place a person looks says so."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import PASSWORD, USER, cli_env, make_settings, run_cli
from sqlmodel import select

from archiver.blink.auth import EDGE_BACKOFF_FIRST, EDGE_BACKOFF_MAX, edge_backoff
from archiver.blink.http import edge_refusal
from archiver.blink.models import TwoFactorChallenge
from archiver.config import Settings
from archiver.db.engine import open_engine, session_scope
from archiver.db.models import Account
from archiver.errors import EdgeBlocked
from archiver.notify import AlertTracker, Notifier
from archiver.pipeline.runner import open_blink
from archiver.simulator import SimConfig, Simulator

EDGE_LINE = "Blink's edge (Cloudflare) refused the request; waiting before trying again"


@pytest.fixture
def sim() -> Any:
    with Simulator(SimConfig(two_factor=True, pin=None)) as s:
        net = s.add_network("Home")
        s.add_clips(s.add_camera(net, "Front Door"), 2, size=20_000)
        yield s


def login(settings: Settings, sim: Simulator) -> None:
    """A person's `archiver login` on a terminal, in process (the PIN read from the simulated SMS);
    raises what it raises."""
    engine = open_engine(settings)

    async def go() -> None:
        sync = open_blink(settings, engine, settings.account_list()[0])

        async def ask(challenge: TwoFactorChallenge) -> str | None:
            return sim.last_pin()

        try:
            await sync.auth.login(USER, PASSWORD, ask)
        finally:
            await sync.aclose()

    try:
        asyncio.run(go())
    finally:
        engine.dispose()


def account_row(settings: Settings) -> Account:
    engine = open_engine(settings)
    with session_scope(engine) as s:
        row = s.exec(select(Account)).one()
        s.expunge(row)
    engine.dispose()
    return row


class Recorder(Notifier):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.notify)
        self.sent: list[tuple[str, str]] = []

    def send(self, title: str, body: str) -> bool:
        self.sent.append((title, body))
        return True


def test_worker_at_a_cloudflare_406_signs_in_once_backs_off_goes_unready_and_notifies_once(
    tmp_path: Path, sim: Simulator
) -> None:
    from archiver.web.app import create_app
    from archiver.worker import Worker

    settings = make_settings(tmp_path, sim)
    login(settings, sim)
    sim.expire_tokens()
    sim.config.refresh_refusal = "invalid_grant"  # the refresh token was revoked: a password sign-in is due
    sim.config.edge_block = {"signin"}  # ... and Cloudflare answers its POST with a 406 page
    engine = open_engine(settings)
    worker = Worker(settings, engine)
    recorder = Recorder(settings)
    worker.alerts = AlertTracker.from_settings(settings.notify, recorder)
    posts, pins = sim.request_count("/oauth/v2/signin", "POST"), len(sim.sent_pins)
    app = create_app(settings, engine, metrics=worker.metrics, ready=worker.ready, destinations=[])

    async def ticks() -> list[httpx.Response]:
        seen = []
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://w") as c:
            for _ in range(4):
                await worker.sync_account("default")
                seen.append(await c.get("/readyz"))
            seen.append(await c.get("/status"))
        return seen

    *ready, page = asyncio.run(ticks())
    assert sim.request_count("/oauth/v2/signin", "POST") - posts == 1  # one password POST in four ticks
    assert sim.edge_refusals == ["signin"] and len(sim.sent_pins) == pins
    assert sim.refresh_attempts == 1
    for answer in ready:  # unready from the first failure on, with the reason
        assert answer.status_code == 503
        assert EDGE_LINE in answer.text and "HTTP 406" in answer.text and "cf-ray" in answer.text
    assert len(recorder.sent) == 1
    title, body = recorder.sent[0]
    assert "edge refused the sign-in" in title and "HTTP 406" in body and "cf-ray" in body
    assert "sign-in blocked</span>" in page.text and EDGE_LINE in page.text.replace("&#39;", "'")
    row = account_row(settings)
    assert row.signin_blocks == 1 and row.login_needed_reason is None
    until = row.signin_blocked_until.replace(tzinfo=UTC)  # type: ignore[union-attr]
    left = until - datetime.now(UTC)
    assert timedelta(minutes=14) < left <= timedelta(minutes=19)  # 15 min, plus at most a quarter
    assert "OAuth sign-in: HTTP 406, cf-ray " in (row.signin_block_reason or "")

    # the back-off ends: the next tick signs in again, refused again, the wait doubles; still one message
    with session_scope(engine) as s:
        acct = s.exec(select(Account)).one()
        acct.signin_blocked_until = datetime.now(UTC) - timedelta(seconds=1)
        s.add(acct)
    asyncio.run(worker.sync_account("default"))
    assert sim.request_count("/oauth/v2/signin", "POST") - posts == 2
    row = account_row(settings)
    assert row.signin_blocks == 2
    left = row.signin_blocked_until.replace(tzinfo=UTC) - datetime.now(UTC)  # type: ignore[union-attr]
    assert timedelta(minutes=29) < left <= timedelta(minutes=38)
    assert len(recorder.sent) == 1

    # the edge lets the sign-in through again: a person's `archiver login` clears the back-off at once
    sim.config.edge_block = set()
    sim.config.refresh_refusal = None
    login(settings, sim)
    row = account_row(settings)
    assert row.signin_blocked_until is None and row.signin_blocks == 0 and row.signin_block_reason is None
    assert worker.ready() == (True, "ok")
    engine.dispose()


@pytest.mark.parametrize("step", ["authorize", "verify", "token"])
def test_each_sign_in_step_refused_by_the_edge_is_said_with_status_and_ray(
    tmp_path: Path, sim: Simulator, step: str
) -> None:
    settings = make_settings(tmp_path, sim)
    sim.config.edge_block = {step}
    with pytest.raises(EdgeBlocked) as err:
        login(settings, sim)
    line = str(err.value)
    assert line.startswith(EDGE_LINE) and "HTTP 406, cf-ray " in line and "\n" not in line
    assert err.value.exit_code == 1 and sim.edge_refusals == [step]
    assert account_row(settings).signin_blocks == 1
    sim.config.edge_block = set()
    login(settings, sim)  # a person tries again at once: no back-off for them
    assert account_row(settings).signin_blocked_until is None


def test_login_refused_by_the_edge_exits_1_with_one_line_and_status_says_so(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(tmp_path, sim)
    sim.config.edge_block = {"signin"}
    res = run_cli(["login", "--username", USER, "--password-stdin"], env, input=PASSWORD + "\n")
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {EDGE_LINE}"), res.stderr
    assert "OAuth sign-in: HTTP 406, cf-ray " in lines[0] and "`archiver login` tries at once" in lines[0]
    status = run_cli(["status"], env)
    assert "sign-in blocked" in status.stdout and "HTTP 406" in status.stdout


def test_a_refresh_refused_by_the_edge_keeps_the_token_and_waits(tmp_path: Path, sim: Simulator) -> None:
    from archiver.pipeline.runner import sync_all

    settings = make_settings(tmp_path, sim)
    login(settings, sim)
    token = account_row(settings).refresh_token
    sim.expire_tokens()
    sim.config.edge_block = {"refresh"}
    res = run_cli(["sync"], cli_env(tmp_path, sim))
    assert res.returncode == 1 and EDGE_LINE in res.stderr and "token refresh: HTTP 406" in res.stderr
    engine = open_engine(settings)
    for _ in range(2):  # held by the back-off: not even the refresh is sent
        with pytest.raises(EdgeBlocked):
            asyncio.run(sync_all(settings, engine))
    engine.dispose()
    assert sim.refresh_attempts == 1 and sim.edge_refusals == ["refresh"]
    assert account_row(settings).refresh_token == token  # kept for when the edge lets it through


def test_the_edge_is_told_from_blinks_own_answers() -> None:
    def answer(status: int, content_type: str = "application/json", **headers: str) -> httpx.Response:
        return httpx.Response(status, headers={"content-type": content_type, **headers})

    assert edge_refusal(answer(406, "text/plain")) == "HTTP 406"
    assert edge_refusal(answer(406, "text/html", **{"cf-ray": "8f1c2a3b4d5e6f70-FRA"})) == (
        "HTTP 406, cf-ray 8f1c2a3b4d5e6f70-FRA"
    )
    assert edge_refusal(answer(403, "text/html; charset=UTF-8", **{"cf-ray": "8f1c-AMS"})) is not None
    assert edge_refusal(answer(403, **{"cf-mitigated": "challenge", "cf-ray": "x1"})) is not None
    assert edge_refusal(answer(406, **{"cf-ray": "<script>"})) == "HTTP 406"  # a ray is a token or nothing
    # Blink's own refusals (JSON, even behind Cloudflare), outages and rate limits are not the edge
    assert edge_refusal(answer(403, **{"cf-ray": "8f1c-FRA"})) is None
    assert edge_refusal(answer(401, "text/html", **{"cf-ray": "8f1c-FRA"})) is None
    assert edge_refusal(answer(403, "text/html")) is None
    assert edge_refusal(answer(502, "text/html", **{"cf-ray": "8f1c-FRA"})) is None
    assert edge_refusal(answer(429, "text/html", **{"cf-ray": "8f1c-FRA"})) is None
    assert edge_refusal(answer(200, "text/html", **{"cf-ray": "8f1c-FRA"})) is None


def test_edge_backoff_starts_at_15_minutes_doubles_and_stops_at_a_day() -> None:
    low = [edge_backoff(n, jitter=lambda: 0.0) for n in range(1, 10)]
    assert low[:4] == [timedelta(minutes=m) for m in (15, 30, 60, 120)]
    assert low[-1] == EDGE_BACKOFF_MAX and low[0] == EDGE_BACKOFF_FIRST
    assert edge_backoff(1, jitter=lambda: 1.0) == timedelta(minutes=15 * 1.25)
    assert edge_backoff(50, jitter=lambda: 1.0) == EDGE_BACKOFF_MAX
    # so the password goes out at most a few times a day: after the first day, once a day
    elapsed, tries = timedelta(0), 0
    while elapsed < timedelta(days=3):
        tries += 1
        elapsed += edge_backoff(tries, jitter=lambda: 0.0)
    assert tries <= 10


def test_the_notification_and_the_mqtt_state_carry_the_edge_reason(tmp_path: Path) -> None:
    from pydantic import SecretStr

    from archiver.config import AccountSettings, NotifySettings
    from archiver.homeassistant.state import login_needed_reason
    from archiver.notify import needs_login

    exc = EdgeBlocked(f"{EDGE_LINE} (OAuth sign-in: HTTP 406, cf-ray 8f1c-FRA; ...)")
    assert exc.exit_code == 1 and not needs_login(exc)  # not a login request: the archiver waits
    account = AccountSettings(name="default", password=SecretStr("configured"))
    assert login_needed_reason(account, None, exc) is None
    sent: list[tuple[str, str]] = []

    class Keep(Notifier):
        def send(self, title: str, body: str) -> bool:
            sent.append((title, body))
            return True

    tracker = AlertTracker.from_settings(NotifySettings(failing_for="1s"), Keep(NotifySettings()))
    start = time.time()
    for i in range(5):
        tracker.record("default", False, started=start, message=str(exc), error=exc, now=start + 60 * i)
    assert len(sent) == 1 and "cf-ray 8f1c-FRA" in sent[0][1]
    assert json.dumps(sent)  # plain text


def test_home_assistant_shows_the_edge_block_as_a_sync_problem_not_a_login(
    tmp_path: Path, sim: Simulator
) -> None:
    from archiver.homeassistant.bridge import HomeAssistant
    from archiver.pipeline.runner import sync_all

    settings = make_settings(tmp_path, sim, mqtt={"url": "mqtt://127.0.0.1:9"})  # never connected here
    login(settings, sim)
    sim.expire_tokens()
    sim.config.edge_block = {"refresh"}
    engine = open_engine(settings)
    for _ in range(2):  # the refusal, then a run held by the back-off (no request)
        with pytest.raises(EdgeBlocked) as err:
            asyncio.run(sync_all(settings, engine))
    assert sim.refresh_attempts == 1
    ha = HomeAssistant(settings, engine)
    ha.record_failure("default", err.value)
    state, _cameras = ha._read_states(["default"])["default"]
    assert state.sync_problem is True and state.login_needed is False
    assert EDGE_LINE in state.details["last_error"] and "HTTP 406" in state.details["last_error"]
    engine.dispose()
