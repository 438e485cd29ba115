"""login, sync, status."""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from archiver.cli import app, fail, settings
from archiver.config import AccountSettings, Settings
from archiver.errors import ArchiverError, ConfigError
from archiver.logs import REDACTOR, escape_controls, safe_markup

# The pipeline, the Blink client and the ORM load inside the commands that use them: `archiver status`
# and `--help` start in a fraction of the time.
if TYPE_CHECKING:
    from archiver.blink.models import TwoFactorChallenge
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
    pin: Annotated[str | None, typer.Option(help="The 2FA PIN, for scripts.")] = None,
    account: Annotated[str | None, typer.Option(help="Account name from [[accounts]].")] = None,
) -> None:
    """Log in once (with the 2FA PIN); the token is stored and reused by every sync."""
    try:
        s = settings()
        acct = _account(s, account)
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
        REDACTOR.add(password, pin)
        import asyncio

        from archiver.db.engine import open_engine
        from archiver.pipeline.runner import make_account_sync

        async def ask_pin(challenge: TwoFactorChallenge) -> str | None:
            if pin:
                return pin
            if not sys.stdin.isatty():
                return None
            where = ", ".join(challenge.tsv_methods) or challenge.tsv_state or "SMS/e-mail"
            return await asyncio.to_thread(typer.prompt, f"2FA PIN Blink sent you ({where})")

        engine = open_engine(s)
        acct = acct.model_copy(update={"username": user})

        async def go() -> None:
            sync = make_account_sync(s, engine, acct)
            try:
                await sync.login(user, password, ask_pin)
            finally:
                await sync.aclose()

        asyncio.run(go())
    except ArchiverError as exc:
        raise fail(exc) from None
    typer.echo(f"logged in as {user}; the token is stored in {s.database_url.split('://')[0]} database")


def print_reports(reports: list[SyncReport]) -> int:
    code = 0
    for r in reports:
        if r.skipped_lease:
            typer.echo(f"account {r.account}: another run is syncing it (lease held); nothing to do")
            continue
        typer.echo(
            f"account {r.account}: listed {r.listed} ({r.new} new), stored {r.stored}, failed {r.failed}, "
            f"{r.bytes / 1e6:.1f} MB, {r.requests} requests in {r.duration_s:.1f} s"
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
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


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
    import asyncio

    from archiver.cli.progress import make_reporter
    from archiver.db.engine import open_engine
    from archiver.homeassistant.oneshot import sync_and_prune_with_mqtt  # sync_and_prune without [mqtt]

    try:
        s = settings()
        rescan = _parse_since(since) if since else None
        engine = open_engine(s)  # the runner's preflight checks staging, ffmpeg, destinations first
        reports = asyncio.run(
            sync_and_prune_with_mqtt(
                s,
                engine,
                accounts=account,
                reporter_factory=make_reporter,
                rescan_from=rescan,
                retry_failed=retry_failed,
            )
        )
    except ArchiverError as exc:
        raise fail(exc) from None
    raise typer.Exit(print_reports(reports))


@app.command()
def status() -> None:
    """Cursor, clips by source and state (duplicates: stored once from another source), last errors, size."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from archiver.db import repo
    from archiver.db.engine import open_engine, session_scope
    from archiver.db.models import ClipSource, ClipState

    console = Console()
    try:
        s = settings()
        engine = open_engine(s)
    except ArchiverError as exc:
        raise fail(exc) from None
    states = [st.value for st in ClipState]
    with session_scope(engine) as ses:
        accounts = repo.accounts(ses)
        if not accounts:
            typer.echo("no account yet: run `archiver login` (or `archiver demo` to try it)")
            return
        for a in accounts:
            assert a.id is not None
            cur = repo.get_cursor(ses, a.id)
            counts = repo.state_counts(ses, a.id)
            logged_in = "yes" if a.access_token else "no"
            title = f"account {a.name} (logged in: {logged_in}, tier {a.tier or '?'})"
            table = Table(title=safe_markup(title))
            table.add_column("source")
            for st in states:
                table.add_column(st, justify="right")
            builtin = [src.value for src in ClipSource]
            for src in [*builtin, *sorted({src for src, _ in counts} - set(builtin))]:
                table.add_row(escape(src), *(str(counts.get((src, st), 0)) for st in states))
            console.print(table)
            console.print(
                f"cursor (media/changed since): {cur.since.isoformat() if cur else 'not yet listed'}"
            )
            if cur is not None and cur.since > datetime.now(UTC) + timedelta(minutes=5):
                console.print("[red]the cursor is in the future[/]: the next sync repairs it")
            console.print(f"archive size: {repo.archive_bytes(ses, a.id) / 1e6:.1f} MB")
            for c in repo.last_errors(ses, a.id):
                # names come from the server: no markup, no terminal escapes
                retry = f", next try {c.next_attempt_at:%Y-%m-%d %H:%M:%S}" if c.next_attempt_at else ""
                console.print(
                    f"[red]failed[/] {safe_markup(c.identity)} (attempts {c.attempts}{retry}): "
                    f"{safe_markup(c.last_error or '')}"
                )
