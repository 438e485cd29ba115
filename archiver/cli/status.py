"""`archiver status`: clips by source and state, the last sync, failed clips by camera and local time;
``--json`` prints the same as one :class:`Status` document for scripts (its keys are stable)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import BaseModel, Field

from archiver.cli import app, fail, release, settings
from archiver.errors import ArchiverError
from archiver.last_sync import LastSync
from archiver.logs import REDACTOR, safe_markup

if TYPE_CHECKING:
    from rich.console import Console

    from archiver.db.summary import AccountSummary, FailedClip

JSON_VERSION = 1


class FailedClipStatus(BaseModel):
    identity: str  # cloud:<media id>, local:…
    source: str
    network: str | None = None
    camera: str | None = None
    recorded_at: datetime | None = None  # UTC
    recorded_local: str | None = None  # ISO 8601 in the network's time zone, with its offset
    time_zone: str | None = None  # that zone (IANA); None: unknown, times are UTC
    attempts: int = 0
    reason: str | None = None
    next_try: datetime | None = None  # UTC; None: tried at the next sync


class AccountStatus(BaseModel):
    name: str
    logged_in: bool
    tier: str | None = None
    login_needed: str | None = None  # why a person must run `archiver login`
    signin_blocked_until: datetime | None = None
    clips: dict[str, dict[str, int]] = Field(default_factory=dict)  # source -> state -> count
    cursor: datetime | None = None  # where the next cloud listing starts
    archive_bytes: int = 0
    last_sync: LastSync | None = None
    failed: list[FailedClipStatus] = Field(default_factory=list)  # the newest few


class Status(BaseModel):
    version: int = JSON_VERSION
    accounts: list[AccountStatus] = Field(default_factory=list)


def _zone(name: str | None) -> tzinfo:
    from zoneinfo import ZoneInfo

    if name:
        try:
            return ZoneInfo(name)
        except (ValueError, OSError, KeyError):
            pass
    return UTC


def local_time(ts: datetime, zone: str | None) -> str:
    """``2026-12-06 23:14:05 CET``: the clip's network's local time, labelled with its zone."""
    local = ts.astimezone(_zone(zone))
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname() or 'UTC'}"


def failed_status(c: FailedClip) -> FailedClipStatus:
    local = c.created_at.astimezone(_zone(c.time_zone)).isoformat() if c.created_at else None
    return FailedClipStatus(
        identity=c.identity,
        source=c.source,
        network=c.network_name,
        camera=c.camera_name,
        recorded_at=c.created_at,
        recorded_local=local,
        time_zone=c.time_zone,
        attempts=c.attempts,
        reason=REDACTOR.scrub(c.last_error) if c.last_error else None,
        next_try=c.next_attempt_at,
    )


def account_status(a: AccountSummary, last: LastSync | None) -> AccountStatus:
    from archiver.db.summary import SOURCES, STATES

    sources = [*SOURCES, *sorted({src for src, _ in a.counts} - set(SOURCES))]
    return AccountStatus(
        name=a.name,
        logged_in=a.logged_in,
        tier=a.tier,
        login_needed=a.login_needed_reason,
        signin_blocked_until=a.signin_blocked_until,
        clips={src: {st: a.counts.get((src, st), 0) for st in STATES} for src in sources},
        cursor=a.cursor,
        archive_bytes=a.archive_bytes,
        last_sync=last,
        failed=[failed_status(c) for c in a.failed],
    )


@app.command()
def status(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document (stable keys, see the README).")
    ] = False,
) -> None:
    """Clips by source and state (duplicates: stored once from another source), the last sync, failed
    clips by camera and local time, archive size."""
    from archiver import last_sync
    from archiver.db.engine import open_engine
    from archiver.db.summary import account_summaries  # Core: no ORM

    try:
        s = settings()
        engine = open_engine(s)
    except ArchiverError as exc:
        raise fail(exc) from None
    summaries = account_summaries(engine)
    runs = last_sync.read(s.data_dir)
    doc = Status(accounts=[account_status(a, runs.get(a.name)) for a in summaries])
    if as_json:
        typer.echo(doc.model_dump_json(indent=2))
    elif not summaries:
        typer.echo("no account yet: run `archiver login` (or `archiver demo` to try it)")
    else:
        _print(doc, summaries)
    release(engine)


def _print(doc: Status, summaries: list[AccountSummary]) -> None:
    from rich.console import Console
    from rich.table import Table

    from archiver.cli.commands import _print_login_state
    from archiver.db.summary import STATES, source_label

    console = Console(highlight=False)
    for a, summary in zip(doc.accounts, summaries, strict=True):
        logged_in = "yes" if a.logged_in else "no"
        table = Table(title=safe_markup(f"account {a.name} (logged in: {logged_in}, tier {a.tier or '?'})"))
        table.add_column("source")
        for st in STATES:
            table.add_column(st, justify="right")
        for src, counts in a.clips.items():
            table.add_row(safe_markup(source_label(src)), *(str(counts.get(st, 0)) for st in STATES))
        console.print(table)
        _print_last_sync(console, a.last_sync)
        cursor = a.cursor.isoformat() if a.cursor else "not yet listed"
        console.print(f"cursor (media/changed since): {cursor}")
        if a.cursor is not None and a.cursor > datetime.now(UTC) + timedelta(minutes=5):
            console.print("[red]the cursor is in the future[/]: the next sync repairs it")
        console.print(f"archive size: {a.archive_bytes / 1e6:.1f} MB")
        _print_login_state(console, summary)
        for c in a.failed:
            console.print(f"[red]failed[/] {_failed_line(c)}")


def _print_last_sync(console: Console, last: LastSync | None) -> None:
    if last is None:
        console.print("last sync: none recorded yet")
        return
    local = last.finished_at.astimezone()  # it ran on this machine: its local time
    when = f"{local:%Y-%m-%d %H:%M:%S} {local.tzname() or ''}".rstrip()
    what = {
        "ok": "ok",
        "failed": "some clips failed",
        "error": "stopped",
        "skipped": "skipped (another run held the lease)",
    }[last.result]
    line = (
        f"last sync: {when}, {what} (exit {last.exit_code}): stored {last.stored}, failed {last.failed}, "
        f"{last.bytes / 1e6:.1f} MB in {last.duration_s:.1f} s"
    )
    if last.error:
        line += f"; {last.error}"
    console.print(safe_markup(line))


def _failed_line(c: FailedClipStatus) -> str:
    """``Home/Front Door 2026-12-06 23:14:05 CET (cloud:123, attempts 3, next try …): reason``."""
    from archiver.db.summary import source_label

    where = "/".join(n for n in (c.network, c.camera) if n) or "unknown camera"
    when = local_time(c.recorded_at, c.time_zone) if c.recorded_at else "unknown time"
    retry = f", next try {local_time(c.next_try, c.time_zone)}" if c.next_try else ", next try: next sync"
    return safe_markup(
        f"{where} {when} ({source_label(c.source)} {c.identity}, attempts {c.attempts}{retry}): "
        f"{c.reason or ''}"
    )
