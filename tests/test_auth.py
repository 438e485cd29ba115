"""Signing in against the simulator over HTTP: the two-phase PIN login, never an SMS storm, refresh
answers, the "login needed" mark, and what the real service does differently (content types, nulls)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import PASSWORD, USER, cli_env, make_settings, run_cli
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from archiver.blink.auth import parse_csrf
from archiver.blink.credentials import Credentials
from archiver.blink.models import TwoFactorChallenge, TwoFactorVerify
from archiver.config import NotifySettings, Settings
from archiver.db import repo
from archiver.db.engine import make_engine, open_engine, session_scope
from archiver.db.models import Account
from archiver.errors import (
    ArchiverError,
    LoginNeeded,
    PinNeeded,
    RefreshRefused,
    RefreshUnavailable,
)
from archiver.notify import AlertTracker, Notifier
from archiver.pipeline.runner import open_blink, sync_all
from archiver.simulator import SimConfig, Simulator


@pytest.fixture
def sim() -> Any:
    """2FA on, a fresh random PIN per sign-in (as Blink does), three clips."""
    with Simulator(SimConfig(two_factor=True, pin=None)) as s:
        net = s.add_network("Home")
        s.add_clips(s.add_camera(net, "Front Door"), 3, size=20_000)
        yield s


def signin_posts(sim: Simulator) -> int:
    return sim.request_count("/oauth/v2/signin", "POST")


def oauth_v2_requests(sim: Simulator) -> int:
    return sim.request_count("/oauth/v2/")


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


class Refusing(httpx.AsyncBaseTransport):
    """Real HTTP to the simulator, except one path, which answers ``status`` (or fails to connect)."""

    def __init__(self, path: str, status: int | None, method: str = "POST") -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.path, self.status, self.method = path, status, method
        self.seen = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == self.method and request.url.path == self.path:
            self.seen += 1
            if self.status is None:
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(self.status, json={"message": "Service Unavailable"})
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


# ----------------------------------------------------------------------------------- without a terminal
def test_login_without_a_terminal_is_two_phase_and_the_next_sync_does_not_sign_in(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(tmp_path, sim)
    res = run_cli(["login", "--username", USER, "--password-stdin"], env, input=PASSWORD + "\n")
    assert res.returncode == 2
    line = one_line(res.stderr)
    assert "by sms to +1xxxxxxx89" in line  # where Blink sent it, as Blink reports it
    assert "`archiver login --pin <PIN>` before " in line and "10 minutes" in line
    assert len(sim.sent_pins) == 1
    pin = sim.last_pin()
    assert pin is not None

    res = run_cli(["login", "--pin", pin], env)
    assert res.returncode == 0, res.stderr
    assert sim.login_count == 1 and len(sim.sent_pins) == 1 and signin_posts(sim) == 1

    before = oauth_v2_requests(sim)
    res = run_cli(["sync"], env)
    assert res.returncode == 0, res.stderr
    assert "stored 3" in res.stdout
    assert oauth_v2_requests(sim) == before  # no sign-in request
    assert sim.login_count == 1


def test_a_wrong_pin_keeps_the_sign_in_for_another_try(tmp_path: Path, sim: Simulator) -> None:
    env = cli_env(tmp_path, sim)
    run_cli(["login", "--username", USER, "--password-stdin"], env, input=PASSWORD)
    pin = sim.last_pin()
    wrong = "000000" if pin != "000000" else "111111"
    res = run_cli(["login", "--pin", wrong], env)
    assert res.returncode == 2
    line = one_line(res.stderr)
    assert "did not accept the PIN" in line and "archiver login --pin" in line
    res = run_cli(["login", "--pin", pin or ""], env)
    assert res.returncode == 0, res.stderr
    assert len(sim.sent_pins) == 1 and signin_posts(sim) == 1  # no new sign-in, no new PIN


def test_only_the_pin_of_the_latest_sign_in_works(tmp_path: Path, sim: Simulator) -> None:
    """Blink texts a fresh PIN per sign-in: the first PIN cannot finish the second sign-in."""
    env = cli_env(tmp_path, sim)
    run_cli(["login", "--username", USER, "--password-stdin"], env, input=PASSWORD)
    run_cli(["login", "--username", USER, "--password-stdin"], env, input=PASSWORD)
    first, second = (p.pin for p in sim.sent_pins)
    if first != second:
        assert run_cli(["login", "--pin", first], env).returncode == 2
    assert run_cli(["login", "--pin", second], env).returncode == 0


def test_pin_without_a_pending_sign_in_says_to_run_login_first(tmp_path: Path, sim: Simulator) -> None:
    res = run_cli(["login", "--pin", "123456"], cli_env(tmp_path, sim))
    assert res.returncode == 2
    assert one_line(res.stderr) == "error: no sign-in is waiting for a PIN: run `archiver login` first"
    assert oauth_v2_requests(sim) == 0


def test_an_expired_pending_sign_in_says_to_start_again(tmp_path: Path, sim: Simulator) -> None:
    env = cli_env(tmp_path, sim)
    run_cli(["login", "--username", USER, "--password-stdin"], env, input=PASSWORD)
    db = sqlite3.connect(tmp_path / "archiver.db")
    doc = json.loads(db.execute("select pending_signin from account").fetchone()[0])
    doc["expires_at"] = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    db.execute("update account set pending_signin = ?", (json.dumps(doc),))
    db.commit()
    before = oauth_v2_requests(sim)
    res = run_cli(["login", "--pin", sim.last_pin() or ""], env)
    assert res.returncode == 2
    assert "expired" in one_line(res.stderr) and "`archiver login` again" in res.stderr
    assert oauth_v2_requests(sim) == before
    assert db.execute("select pending_signin from account").fetchone()[0] is None


def test_pending_sign_in_is_stored_with_the_credentials_not_world_readable(
    tmp_path: Path, sim: Simulator
) -> None:
    env = cli_env(tmp_path, sim)
    run_cli(["login", "--username", USER, "--password-stdin"], env, input=PASSWORD)
    assert stat.S_IMODE(os.stat(tmp_path / "archiver.db").st_mode) & 0o077 == 0
    doc = json.loads(
        sqlite3.connect(tmp_path / "archiver.db").execute("select pending_signin from account").fetchone()[0]
    )
    assert doc["csrf"] and doc["verifier"] and doc["cookies"] and doc["hardware_id"] and doc["expires_at"]


def test_legacy_login_setting_is_refused_with_one_line(tmp_path: Path, sim: Simulator) -> None:
    env = cli_env(tmp_path, sim, ARCHIVER_BLINK__AUTH="legacy")
    res = run_cli(["sync"], env)
    assert res.returncode == 2
    line = one_line(res.stderr)
    assert "blink.auth" in line and "426" in line


# ----------------------------------------------------------------------------------- on a terminal
def login_in_process(
    settings: Settings,
    sim: Simulator,
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    pin_prompt: bool = True,
) -> Credentials:
    """The terminal flow: the PIN is asked (here: read from the simulated SMS) in the same run; without
    ``pin_prompt``, a run that cannot ask for it (the sign-in is kept, PinNeeded raised)."""
    engine = open_engine(settings)

    async def go() -> Credentials:
        sync = open_blink(settings, engine, settings.account_list()[0], transport=transport)

        async def ask(challenge: TwoFactorChallenge) -> str | None:
            assert challenge.is_challenge
            return sim.last_pin()

        try:
            return await sync.auth.login(USER, PASSWORD, ask if pin_prompt else None)
        finally:
            await sync.aclose()

    return asyncio.run(go())


def test_terminal_login_asks_for_the_pin_in_the_same_run(tmp_path: Path, sim: Simulator) -> None:
    """`archiver login` on a terminal (a pseudo-terminal here): password, then the PIN prompt."""
    import pty
    import select
    import subprocess
    import sys

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from archiver.cli import main; main()",
            "login",
            "--username",
            USER,
            "--password-stdin",
        ],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=cli_env(tmp_path, sim),
        close_fds=True,
    )
    os.close(slave)
    os.write(master, PASSWORD.encode() + b"\n")
    seen = b""
    deadline = time.monotonic() + 60
    answered = False
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        if not answered and b"2FA PIN Blink sent by sms to +1xxxxxxx89" in seen:
            os.write(master, (sim.last_pin() or "").encode() + b"\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    assert proc.wait(timeout=30) == 0, seen.decode(errors="replace")
    os.close(master)
    assert answered and b"logged in as demo@example.com" in seen
    assert len(sim.sent_pins) == 1 and sim.login_count == 1 and signin_posts(sim) == 1


@pytest.mark.parametrize("status", [202, 412])
@pytest.mark.parametrize("content_type", ["application/json", "text/html; charset=utf-8", None])
def test_pin_challenge_is_recognised_whatever_its_content_type(
    tmp_path: Path, sim: Simulator, status: int, content_type: str | None
) -> None:
    sim.config.two_factor_status = status
    sim.config.two_factor_content_type = content_type
    creds = login_in_process(make_settings(tmp_path, sim), sim)
    assert creds.valid() and sim.login_count == 1 and len(sim.sent_pins) == 1
    with session_scope(open_engine(make_settings(tmp_path, sim))) as s:
        row = s.exec(select(Account)).one()
        assert row.pending_signin is None and row.access_token == creds.access_token


def test_terminal_login_in_one_run_without_pin_prompt_support_keeps_the_sign_in(
    tmp_path: Path, sim: Simulator
) -> None:
    settings = make_settings(tmp_path, sim)
    engine = open_engine(settings)

    with pytest.raises(PinNeeded) as err:
        login_in_process(settings, sim, pin_prompt=False)
    assert err.value.exit_code == 2 and "archiver login --pin" in str(err.value)
    assert repo.pending_signin(engine, 1) is not None


class HtmlChallenge(Refusing):
    """The sign-in POST reaches the simulator (which texts a PIN), but its answer is served as an HTML
    page that is not JSON: a 202 is still a PIN challenge."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        resp = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path == self.path:
            await resp.aread()
            return httpx.Response(202, text="<html><body>Enter the code</body></html>")
        return resp


def test_a_202_that_is_not_json_is_still_a_pin_challenge(tmp_path: Path, sim: Simulator) -> None:
    settings = make_settings(tmp_path, sim)
    transport = HtmlChallenge("/oauth/v2/signin", 202)

    with pytest.raises(PinNeeded) as err:
        login_in_process(settings, sim, transport, pin_prompt=False)
    assert "to the phone or e-mail of the account" in str(err.value)
    res = run_cli(["login", "--pin", sim.last_pin() or ""], cli_env(tmp_path, sim))
    assert res.returncode == 0, res.stderr


def test_challenge_with_null_fields_is_tolerated() -> None:
    ch = TwoFactorChallenge.model_validate(
        {"tsv_methods": None, "tsv_state": "sms", "phone": None, "next_time_in_secs": None, "user_id": None}
    )
    assert ch.is_challenge and ch.tsv_methods == [] and ch.sent_to == "by sms"
    ch = TwoFactorChallenge.model_validate({"tsv_methods": "email", "email": "j***@example.com"})
    assert ch.sent_to == "by email to j***@example.com"
    assert not TwoFactorChallenge.model_validate({}).is_challenge
    assert TwoFactorChallenge.model_validate({"next_time_in_secs": "60"}).next_time_in_secs == 60


def test_verify_answer_must_say_auth_completed() -> None:
    assert TwoFactorVerify.model_validate({"status": "auth-completed"}).completed
    assert not TwoFactorVerify.model_validate({}).completed
    assert not TwoFactorVerify.model_validate({"status": None}).completed
    assert not TwoFactorVerify.model_validate({"status": "invalid"}).completed


@pytest.mark.parametrize("status", [503, 429, None], ids=["5xx", "429", "connection-error"])
def test_credentials_post_is_never_retried(tmp_path: Path, sim: Simulator, status: int | None) -> None:
    transport = Refusing("/oauth/v2/signin", status)
    with pytest.raises(ArchiverError) as err:
        login_in_process(make_settings(tmp_path, sim, blink={"retries": 5}), sim, transport)
    assert transport.seen == 1
    assert err.value.exit_code == 1 and "\n" not in str(err.value) and PASSWORD not in str(err.value)
    assert sim.sent_pins == []


@pytest.mark.parametrize("status", [503, None], ids=["5xx", "connection-error"])
def test_pin_post_is_never_retried_and_the_sign_in_is_kept(
    tmp_path: Path, sim: Simulator, status: int | None
) -> None:
    transport = Refusing("/oauth/v2/2fa/verify", status)
    settings = make_settings(tmp_path, sim, blink={"retries": 5})
    with pytest.raises(ArchiverError):
        login_in_process(settings, sim, transport)
    assert transport.seen == 1
    assert repo.pending_signin(open_engine(settings), 1) is not None


# ----------------------------------------------------------------------------------- never an SMS storm
def logged_in(tmp_path: Path, sim: Simulator) -> dict[str, str]:
    """Logged in (on the terminal path, in process); the CLI environment of the same account."""
    login_in_process(make_settings(tmp_path, sim), sim)
    return cli_env(tmp_path, sim, ARCHIVER_BLINK__USERNAME=USER, ARCHIVER_BLINK__PASSWORD=PASSWORD)


def stored_refresh_token(tmp_path: Path) -> str | None:
    db = sqlite3.connect(tmp_path / "archiver.db")
    return db.execute("select refresh_token from account").fetchone()[0]


def sync_in_process(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> Any:
    async def go() -> Any:
        return await sync_all(settings, open_engine(settings), transport=transport)

    return asyncio.run(go())[0]


@pytest.mark.parametrize(
    ("refusal", "error", "code"),
    [
        ("forbidden", RefreshRefused, 1),
        ("server-error", RefreshUnavailable, 1),
    ],
)
def test_refused_refresh_keeps_the_token_stops_the_run_and_the_next_run_retries(
    tmp_path: Path, sim: Simulator, refusal: str, error: type[Exception], code: int
) -> None:
    settings = make_settings(tmp_path, sim, blink={"retries": 3})
    login_in_process(settings, sim)
    token = stored_refresh_token(tmp_path)
    sim.expire_tokens()
    sim.config.refresh_refusal = refusal
    posts, pins = signin_posts(sim), len(sim.sent_pins)
    with pytest.raises(error) as err:
        sync_in_process(settings)
    assert err.value.exit_code == code  # type: ignore[attr-defined]
    line = str(err.value)
    assert "\n" not in line and "refresh token is kept" in line and "next run tries again" in line
    assert sim.refresh_attempts == 1  # never retried within the run (a consumed token is not replayed)
    assert stored_refresh_token(tmp_path) == token
    assert signin_posts(sim) == posts and len(sim.sent_pins) == pins  # no sign-in, no PIN
    sim.config.refresh_refusal = None
    report = sync_in_process(settings)
    assert report.exit_code == 0 and report.stored == 3 and sim.refresh_count == 1
    assert signin_posts(sim) == posts


def test_refresh_connection_error_keeps_the_token(tmp_path: Path, sim: Simulator) -> None:
    settings = make_settings(tmp_path, sim)
    login_in_process(settings, sim)
    token = stored_refresh_token(tmp_path)
    sim.expire_tokens()
    transport = Refusing("/oauth/token", None)
    with pytest.raises(RefreshUnavailable) as err:
        sync_in_process(settings, transport)
    assert err.value.exit_code == 1 and transport.seen == 1
    assert stored_refresh_token(tmp_path) == token and len(sim.sent_pins) == 1


@pytest.mark.parametrize("refusal", ["invalid_grant", "edge-406"])
def test_refresh_always_refused_four_syncs_send_at_most_one_pin(
    tmp_path: Path, sim: Simulator, refusal: str
) -> None:
    env = logged_in(tmp_path, sim)
    pins_after_login = len(sim.sent_pins)
    sim.expire_tokens()
    sim.config.refresh_refusal = refusal
    for _ in range(4):
        res = run_cli(["sync"], env)
        assert res.returncode == (2 if refusal == "invalid_grant" else 1)  # the edge: the archiver waits
        line = one_line(res.stderr)
        assert "archiver login" in line or "waiting before trying again" in line
    assert len(sim.sent_pins) - pins_after_login <= 1
    if refusal == "invalid_grant":
        assert len(sim.sent_pins) - pins_after_login == 1
        assert signin_posts(sim) == 2  # the human's, and one automatic sign-in
        assert "login needed: Blink asked for a 2FA PIN" in res.stderr
        assert (
            "(sent by sms to +1xxxxxxx89)" in res.stderr
            and "`archiver login --pin <PIN>` before" in res.stderr
        )
        assert sim.refresh_attempts == 1  # the latched account does not even try the refresh again
        status = run_cli(["status"], env)
        assert "login needed" in status.stdout and "waiting for its PIN" in status.stdout
        # the person finishes the automatic sign-in with the PIN it sent: no second PIN
        sim.config.refresh_refusal = None
        res = run_cli(["login", "--pin", sim.last_pin() or ""], env)
        assert res.returncode == 0, res.stderr
        res = run_cli(["sync"], env)
        assert res.returncode == 0, res.stderr
        assert len(sim.sent_pins) - pins_after_login == 1
        assert "login needed" not in run_cli(["status"], env).stdout
    else:  # the first refusal starts the back-off: the later runs do not even refresh
        assert signin_posts(sim) == 1 and sim.refresh_attempts == 1
        assert "HTTP 406" in line and "no automatic sign-in before" in line


def test_login_needed_stops_the_sync_before_any_request(tmp_path: Path, sim: Simulator) -> None:
    settings = make_settings(tmp_path, sim)
    engine = open_engine(settings)

    async def go() -> None:
        await sync_all(settings, engine)

    with pytest.raises(LoginNeeded):  # automatic sign-in: stops at the PIN, marks the account
        asyncio.run(go())
    reason = repo.login_needed(engine, "default")
    assert reason is not None and "2FA PIN" in reason
    with session_scope(engine) as s:
        assert s.exec(select(Account)).one().login_needed_at is not None
    sim.reset_requests()
    for _ in range(2):
        with pytest.raises(LoginNeeded) as err:
            asyncio.run(go())
        assert err.value.exit_code == 2 and "archiver login" in str(err.value)
    assert sim.request_count() == 0
    assert len(sim.sent_pins) == 1
    assert repo.login_needed(engine, "nope") is None


def test_login_needed_is_notified_once(tmp_path: Path) -> None:
    sent: list[tuple[str, str]] = []

    class Recorder(Notifier):
        def send(self, title: str, body: str) -> bool:
            sent.append((title, body))
            return True

    tracker = AlertTracker.from_settings(NotifySettings(), Recorder(NotifySettings()))
    exc = LoginNeeded("login needed: Blink asked for a 2FA PIN; run `archiver login`")
    for _ in range(3):
        tracker.record("default", False, started=time.time(), message=str(exc), error=exc)
    assert len(sent) == 1 and "needs `archiver login`" in sent[0][0]
    tracker2 = AlertTracker.from_settings(NotifySettings(), Recorder(NotifySettings()))
    tracker2.record("other", False, started=time.time(), error=RefreshRefused("Blink refused the refresh"))
    assert len(sent) == 1  # a transient refusal is not a login request


# ----------------------------------------------------------------------------------- credential saves
def test_credential_save_that_fails_is_retried(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    from archiver.db.engine import migrate

    migrate(engine)
    row = repo.get_or_create_account(engine, "default", USER, "oauth")
    failures = {"left": 2}

    @event.listens_for(engine, "before_cursor_execute")
    def flaky(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("UPDATE account") and failures["left"]:
            failures["left"] -= 1
            raise sqlite3.OperationalError("database is locked")

    store = repo.AccountCredentialStore(engine, row.id or 0, "default", tmp_path / "spill.json")
    store.save(Credentials(hardware_id=row.hardware_id, access_token="acc-rotated", refresh_token="ref-rot"))
    assert failures["left"] == 0 and not (tmp_path / "spill.json").exists()
    with session_scope(engine) as s:
        assert s.exec(select(Account)).one().refresh_token == "ref-rot"


def test_credential_save_that_keeps_failing_never_loses_the_rotated_tokens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from archiver.db.engine import migrate

    url = f"sqlite:///{tmp_path / 'a.db'}"
    engine = make_engine(url)
    migrate(engine)
    row = repo.get_or_create_account(engine, "default", USER, "oauth")
    broken = make_engine(url)

    @event.listens_for(broken, "before_cursor_execute")
    def down(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    spill = tmp_path / "data" / "spill.json"
    rotated = Credentials(
        hardware_id=row.hardware_id,
        access_token="access-rotated-secret",
        refresh_token="refresh-rotated-secret",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        account_id=1001,
        tier="u011",
    )
    caplog.set_level(logging.DEBUG)
    repo.AccountCredentialStore(broken, row.id or 0, "default", spill).save(rotated)
    assert spill.exists() and stat.S_IMODE(spill.stat().st_mode) == 0o600
    assert "disk I/O error" in caplog.text
    assert "rotated-secret" not in caplog.text
    # the next run takes them from the file into the database
    store = repo.AccountCredentialStore(engine, row.id or 0, "default", spill)
    with session_scope(engine) as s:
        fresh_row = s.exec(select(Account)).one()
    creds = store.load(fresh_row)
    assert creds.refresh_token == "refresh-rotated-secret" and creds.valid()
    assert not spill.exists()
    with session_scope(engine) as s:
        assert s.exec(select(Account)).one().refresh_token == "refresh-rotated-secret"


def test_credential_save_failure_without_spill_is_one_line_without_tokens(tmp_path: Path) -> None:
    from archiver.db.engine import migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    migrate(engine)
    row = repo.get_or_create_account(engine, "default", USER, "oauth")

    @event.listens_for(engine, "before_cursor_execute")
    def down(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("UPDATE"):
            raise sqlite3.OperationalError("database is locked")

    store = repo.AccountCredentialStore(engine, row.id or 0, "default", None)
    with pytest.raises(Exception) as err:
        store.save(Credentials(hardware_id=row.hardware_id, access_token="tok-secret-123"))
    assert not isinstance(err.value, OperationalError)
    assert "tok-secret-123" not in str(err.value) and "\n" not in str(err.value)


# ----------------------------------------------------------------------------------- the sign-in page
@pytest.mark.parametrize(
    "page",
    [
        '<script id="oauth-args" type="application/json">{"csrf-token": "tok-1"}</script>',
        "<script type='application/json' id='oauth-args'>{\"csrf-token\": \"tok-1\"}</script>",
        "<SCRIPT ID=oauth-args>{&quot;csrf-token&quot;: &quot;tok-1&quot;}</SCRIPT>",
        '<script id="other">{"csrf-token": "no"}</script>'
        '<script id="oauth-args">\n  {"csrf-token": "tok-1", "x": "</div>"}\n</script>',
    ],
    ids=["double-quotes", "single-quotes-any-order", "entities-upper-case", "after-another-script"],
)
def test_csrf_token_is_read_with_an_html_parser(page: str) -> None:
    assert parse_csrf(f"<html><head>{page}</head><body></body></html>") == "tok-1"


def test_csrf_parse_of_hostile_megabyte_pages_finishes() -> None:
    """The old regex was quadratic on such pages (about 3 minutes for 1 MB), and so is the stdlib
    parser on unterminated tags; the token is looked for with linear scans first."""
    from archiver.errors import BlinkError

    for hostile in ("<script " * 130_000, "<script oauth-args " * 60_000 + "</script>"):
        with pytest.raises(BlinkError):
            parse_csrf(hostile)
    many = '<script id="oauth-args"></script>' * 20_000
    assert parse_csrf(many + '<script id="oauth-args">{"csrf-token": "t"}</script>') == "t"
    assert parse_csrf("<p>" + "a" * 1_000_000 + '</p><script id="oauth-args">{"csrf-token": "t"}</script>')


def test_missing_csrf_token_is_a_clear_error() -> None:
    from archiver.errors import BlinkError

    with pytest.raises(BlinkError, match="no csrf-token"):
        parse_csrf("<html><body>Blink is down for maintenance</body></html>")


def test_worker_with_refresh_always_refused_sends_one_pin_and_one_notification(
    tmp_path: Path, sim: Simulator
) -> None:
    from archiver.worker import Worker

    settings = make_settings(tmp_path, sim)
    login_in_process(settings, sim)
    sim.expire_tokens()
    sim.config.refresh_refusal = "invalid_grant"
    sent: list[tuple[str, str]] = []

    class Recorder(Notifier):
        def send(self, title: str, body: str) -> bool:
            sent.append((title, body))
            return True

    worker = Worker(settings, open_engine(settings))
    worker.alerts = AlertTracker.from_settings(settings.notify, Recorder(settings.notify))
    oauth_before = sim.request_count("/oauth/")

    async def four_runs() -> None:
        for _ in range(4):
            await worker.sync_account("default")

    asyncio.run(four_runs())
    assert len(sim.sent_pins) == 2  # the person's login, then one automatic sign-in: never more
    # one refresh, and one automatic sign-in (authorize and its redirect, page, credentials POST);
    # then nothing
    assert sim.refresh_attempts == 1
    assert sim.request_count("/oauth/") - oauth_before == 1 + 4
    assert len(sent) == 1 and "needs `archiver login`" in sent[0][0]
    assert repo.login_needed(worker.engine, "default") is not None


def test_the_mqtt_state_reads_the_accounts_login_needed_mark() -> None:
    from pydantic import SecretStr

    from archiver.config import AccountSettings
    from archiver.homeassistant.state import login_needed_reason

    account = AccountSettings(name="default", password=SecretStr("configured"))
    row = Account(name="default", hardware_id="HW", access_token=None, login_needed_reason="Blink asked")
    assert (login_needed_reason(account, row, None) or "").startswith("Blink asked: run `archiver login`")
    row.login_needed_reason = None
    row.access_token = "tok"
    assert login_needed_reason(account, row, None) is None


def test_readyz_and_the_status_page_say_login_needed(tmp_path: Path, sim: Simulator) -> None:
    """The mark an automatic sign-in leaves at a PIN reaches /readyz (503) and the web status page."""
    from archiver.web.app import create_app
    from archiver.worker import Worker

    settings = make_settings(tmp_path, sim)
    engine = open_engine(settings)
    with pytest.raises(LoginNeeded):
        asyncio.run(sync_all(settings, engine))
    worker = Worker(settings, engine)
    app = create_app(settings, engine, metrics=worker.metrics, ready=worker.ready, destinations=[])

    async def get(path: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return await c.get(path)

    ready = asyncio.run(get("/readyz"))
    assert ready.status_code == 503 and "login needed" in ready.text
    page = asyncio.run(get("/status"))
    assert page.status_code == 200 and "login needed" in page.text and "2FA PIN" in page.text
    engine.dispose()
