"""`archiver status`: clips by source and state, the last sync, failed clips by camera and local time;
``--json`` prints the same as one ``archiver.status_report.Status`` document for scripts (stable keys).

Light at import (see ``archiver.cli``): the models and rich load inside the command."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from archiver.cli import app, fail, release, settings
from archiver.errors import ArchiverError
from archiver.logs import safe_markup

if TYPE_CHECKING:
    from rich.console import Console

    from archiver.db.summary import AccountSummary
    from archiver.last_sync import LastSync
    from archiver.status_report import FailedClipStatus, Status


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
    from archiver.status_report import Status, account_status

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
    if summaries:  # as before: an empty database (a first run) leaves through the usual teardown
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
    from archiver.status_report import local_time

    where = "/".join(n for n in (c.network, c.camera) if n) or "unknown camera"
    when = local_time(c.recorded_at, c.time_zone) if c.recorded_at else "unknown time"
    retry = f", next try {local_time(c.next_try, c.time_zone)}" if c.next_try else ", next try: next sync"
    return safe_markup(f"{where} {when} ({c.identity}, attempts {c.attempts}{retry}): {c.reason or ''}")
