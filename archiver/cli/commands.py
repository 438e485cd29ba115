"""login, sync, status."""

from __future__ import annotations

import getpass
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from archiver.cli import app, fail, release, settings
from archiver.errors import ArchiverError, ConfigError
from archiver.logs import REDACTOR, escape_controls
from archiver.util import as_utc

# Settings, the pipeline, the Blink client and the ORM load inside the commands that use them:
# `archiver status` and `--help` start in a fraction of the time.
if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy.engine import Engine

    from archiver.blink.models import TwoFactorChallenge
    from archiver.config import AccountSettings, Settings
    from archiver.db.summary import AccountSummary
    from archiver.pipeline.report import SyncReport


def _account(s: Settings, name: str | None) -> AccountSettings:
    accounts = s.account_list()
    if name is None:
        return accounts[0]
    for a in accounts:
        if a.name == name:
            return a
    raise ConfigError(f"no account named {name!r} in the config")


@app.command()
def login(
    username: Annotated[str | None, typer.Option(help="Blink e-mail (default: from the config).")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    pin: Annotated[
        str | None,
        typer.Option(
            help="The PIN Blink sent: finishes the sign-in an earlier `archiver login` started. "
            "`--pin -` reads it from standard input (nothing in the process list or the shell history).",
            envvar="ARCHIVER_LOGIN_PIN",
            show_envvar=True,
        ),
    ] = None,
    account: Annotated[str | None, typer.Option(help="Account name from [[accounts]].")] = None,
) -> None:
    """Log in once; the token is stored and reused by every sync.

    On a terminal the 2FA PIN is asked in the same run. Without one (scripts, `kubectl exec` without -t)
    the sign-in is kept and the command exits 2 saying where Blink sent the PIN; then run
    `archiver login --pin -` with the PIN on standard input (or ARCHIVER_LOGIN_PIN) within 10 minutes.
    """
    import asyncio

    from archiver.errors import PinNeeded
    from archiver.util import aio

    try:
        s = settings()
        acct = _account(s, account)
        if pin is not None:
            if password_stdin or username:
                raise ConfigError(
                    "--pin finishes the sign-in an earlier `archiver login` started: "
                    "run it without --username/--password-stdin"
                )
            code = _read_pin(pin)
            REDACTOR.add(code)
            user = _finish_pin(s, acct, code)
        else:
            user = username or acct.username
            if not user:
                if not sys.stdin.isatty():
                    raise ConfigError("no username: pass --username or set blink.username")
                user = typer.prompt("Blink e-mail")
            if password_stdin:
                password = sys.stdin.readline().rstrip("\n")
            elif acct.password and not username:
                password = acct.password.get_secret_value()
            elif sys.stdin.isatty():
                password = getpass.getpass("Blink password: ")
            else:
                raise ConfigError("no password: use --password-stdin or set blink.password")
            REDACTOR.add(password)
            from archiver.db.engine import open_engine
            from archiver.pipeline.runner import open_blink

            async def ask_pin(challenge: TwoFactorChallenge) -> str | None:
                if not sys.stdin.isatty():
                    return None  # the sign-in is kept: `archiver login --pin` finishes it
                code = await asyncio.to_thread(typer.prompt, f"2FA PIN Blink sent {challenge.sent_to}")
                REDACTOR.add(code)
                return str(code)

            engine = open_engine(s)
            acct = acct.model_copy(update={"username": user})

            async def go() -> None:
                sync = open_blink(s, engine, acct)
                try:
                    await sync.auth.login(user, password, ask_pin)
                finally:
                    await sync.aclose()

            aio.run(go())
    except PinNeeded as exc:  # not a failure: the next step, said in one line
        typer.echo(REDACTOR.scrub(str(exc)), err=True)
        raise typer.Exit(exc.exit_code) from None
    except ArchiverError as exc:
        raise fail(exc) from None
    typer.echo(f"logged in as {user}; the token is stored in {s.database_url.split('://')[0]} database")


def _read_pin(pin: str) -> str:
    """The PIN given: ``-`` reads one line from standard input. Only digits count (spaces ignored)."""
    if pin == "-":
        pin = sys.stdin.readline()
    code = "".join(pin.split())
    if not code:
        raise ConfigError("--pin: no PIN given (`--pin -` reads it from standard input)")
    if not code.isdigit() or len(code) > 12:
        raise ConfigError("--pin: a PIN is the few digits Blink sent (e.g. 123456)")
    return code


def _finish_pin(s: Settings, acct: AccountSettings, pin: str) -> str:
    """`archiver login --pin`: finish the pending sign-in (no password, no new PIN)."""
    from archiver.blink.credentials import login_hint
    from archiver.db import repo
    from archiver.db.engine import open_engine
    from archiver.errors import AuthError
    from archiver.pipeline.runner import open_blink
    from archiver.util import aio

    engine = open_engine(s)
    hint = login_hint(acct.name)
    # the account's stored Blink login is the one the pending sign-in belongs to: leave it as it is
    sync = open_blink(s, engine, acct.model_copy(update={"username": None}))
    pending = repo.pending_signin(engine, sync.account_id)

    async def go() -> None:
        try:
            if pending is None:
                raise AuthError(f"no sign-in is waiting for a PIN: run `{hint}` first")
            await sync.auth.complete_pin(pending, pin)
        finally:
            await sync.aclose()

    aio.run(go())
    assert pending is not None
    return pending.username


def _print_login_state(console: Console, a: AccountSummary) -> None:
    """The account's "login needed" mark and a sign-in waiting for its PIN, if any."""
    from rich.markup import escape

    from archiver.blink.credentials import PendingSignIn, SignInBlock, login_hint

    hint = login_hint(a.name)
    pending = PendingSignIn.parse(a.pending_signin)
    if a.login_needed_reason:
        console.print(
            f"[red]login needed[/]: {escape(a.login_needed_reason)}; syncs do not sign in until you run "
            f"`{escape(hint)}`"
        )
    if a.signin_blocked_until is not None:
        block = SignInBlock(a.signin_blocked_until, max(a.signin_blocks, 1), a.signin_block_reason or "")
        if block.active():
            console.print(f"[red]sign-in blocked[/]: {escape(REDACTOR.scrub(block.line(hint)))}")
    if pending is not None and not pending.expired():
        console.print(
            f"sign-in waiting for its PIN (sent {escape(pending.sent_to)}): run "
            f"`{escape(hint)} --pin <PIN>` before {pending.until()}"
        )


def print_reports(reports: list[SyncReport]) -> int:
    code = 0
    for r in reports:
        if r.skipped_lease:
            typer.echo(f"account {r.account}: another run is syncing it (lease held); nothing to do")
            continue
        typer.echo(
            f"account {r.account}: listed {r.listed} ({r.new} new), stored {r.stored}, failed {r.failed}, "
            + (f"{r.duplicates} already stored from another source, " if r.duplicates else "")
            + f"{r.bytes / 1e6:.1f} MB, {r.requests} requests in {r.duration_s:.1f} s"
        )
        for e in r.notes:
            typer.echo(f"  note: {REDACTOR.scrub(e)}")
        for e in r.errors:
            typer.echo(f"  error: {escape_controls(REDACTOR.scrub(e))}", err=True)
        for e in r.clip_errors[:10]:
            typer.echo(f"  failed: {escape_controls(REDACTOR.scrub(e))}", err=True)
        if len(r.clip_errors) > 10:
            typer.echo(f"  ... and {len(r.clip_errors) - 10} more (see `archiver status`)", err=True)
        code = max(code, r.exit_code)
    return code


def _parse_since(text: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--since {text!r} is not a date like 2024-05-01 or 2024-05-01T08:00:00+00:00"
        ) from None
    return as_utc(ts)


@app.command()
def sync(
    account: Annotated[list[str] | None, typer.Option(help="Only these account names.")] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Also list again everything changed since this date (e.g. 2024-05-01), "
            "after a filter change; what is already stored is not fetched again."
        ),
    ] = None,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Try failed clips now, even those still backing off (after you fixed the cause).",
        ),
    ] = False,
) -> None:
    """One sync: list new clips, archive every clip not yet stored, exit (0 ok, 1 some failed, 2 error)."""
    import time

    from archiver import last_sync
    from archiver.analysis.runner import sync_and_prune_analysed
    from archiver.cli.progress import make_reporter
    from archiver.db.engine import open_engine
    from archiver.homeassistant.oneshot import sync_and_prune_with_mqtt  # sync_and_prune without [mqtt]
    from archiver.pipeline.report import AccountsFailed
    from archiver.util import aio

    started, loaded = time.monotonic(), None
    try:
        s = loaded = settings()
        rescan = _parse_since(since) if since else None
        engine = open_engine(s)  # the runner's preflight checks staging, ffmpeg, destinations first
        reports = aio.run(
            sync_and_prune_with_mqtt(
                s,
                engine,
                accounts=account,
                reporter_factory=make_reporter,
                sync=sync_and_prune_analysed,  # stored clips are analysed beside the sync (archiver.analysis)
                after=lambda: _silence_check(s, engine),  # before the broker is let go: HA's "silent"
                rescan_from=rescan,
                retry_failed=retry_failed,
            )
        )
    except AccountsFailed as exc:  # the other accounts were synced: their reports, then the one line
        took = time.monotonic() - started
        runs = {r.account: last_sync.of_report(r) for r in exc.reports}
        runs |= {name: last_sync.of_error(str(e), e.exit_code, took) for name, e in exc.failures}
        last_sync.record(s.data_dir, runs)
        code = print_reports(exc.reports)
        fail(exc)
        raise typer.Exit(max(code, exc.exit_code)) from None
    except ArchiverError as exc:
        if loaded is not None:  # the settings loaded: the run itself stopped (an outage, a login needed)
            names = account or [a.name for a in loaded.account_list()]
            took = time.monotonic() - started
            runs = {n: last_sync.of_error(str(exc), exc.exit_code, took) for n in names}
            last_sync.record(loaded.data_dir, runs)
        raise fail(exc) from None
    last_sync.record(s.data_dir, {r.account: last_sync.of_report(r) for r in reports})
    code = print_reports(reports)
    if s.summaries.daily:  # the camera-days this sync changed get their summary (never changes the exit code)
        from archiver.cli.export import print_summaries

        print_summaries(s, engine)
    release(engine)
    raise typer.Exit(code)


def _silence_check(s: Settings, engine: Engine) -> bool:
    """After a one-shot sync (a CronJob): which camera went quiet (archiver.silence); never fails it.
    True when an alert was raised or cleared (Home Assistant's states go out again)."""
    from archiver.notify import Notifier
    from archiver.silence import check

    try:
        report = check(engine, s.silence, Notifier(s.notify))
    except Exception as exc:
        typer.echo(f"  silence watch: {REDACTOR.scrub(str(exc))[:200]}", err=True)
        return False
    return bool(report.raised or report.cleared)
