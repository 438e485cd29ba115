"""prune, verify and reindex."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from archiver.cli import app, fail, settings
from archiver.errors import ArchiverError

if TYPE_CHECKING:
    from archiver.retention import PruneReport


@app.command("prune")
def prune_cmd(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what would go; change nothing.")] = False,
) -> None:
    """Apply the [retention] policy: delete objects first, rows only after the delete succeeded."""
    import asyncio

    from archiver.db.engine import open_engine
    from archiver.db.lease import job_lease
    from archiver.maintenance import run_prune

    try:
        s = settings()
        if not s.retention.configured:
            typer.echo("no [retention] rule is configured: nothing is ever deleted")
            raise typer.Exit(0)
        engine = open_engine(s)
        with job_lease(engine, "prune") as held:  # the lease `archiver sync` and the worker prune under
            if not held:
                raise ArchiverError("another process is pruning right now; try again later")
            report = run_prune(s, engine, dry_run=dry_run)
    except ArchiverError as exc:
        raise fail(exc) from None
    if report.deleted_anything and s.mqtt.enabled:  # Home Assistant's archive size follows
        from archiver.homeassistant.oneshot import publish_states_with_mqtt
        from archiver.logs import REDACTOR
        from archiver.util import one_line

        try:
            asyncio.run(publish_states_with_mqtt(s, engine))
        except Exception as exc:  # the prune is done; HA catches up at the next sync
            typer.echo(f"  mqtt: the states were not published: {REDACTOR.scrub(one_line(exc))}", err=True)
    if dry_run:
        summary = f"would delete {report.clips} clips, {report.bytes / 1e6:.1f} MB"
    else:  # only what is really gone: a destination that refused keeps its objects and says so below
        freed = sum(d.bytes for d in report.destinations.values())
        summary = f"deleted {report.pruned} clips, {freed / 1e6:.1f} MB"
        if report.pruned < report.clips:
            summary += f" ({report.clips - report.pruned} of {report.clips} to forget are kept for now)"
    typer.echo(f"{report.candidates} stored clips checked; {summary}")
    if dry_run and report.groups:
        _print_groups(report)
    for name, d in report.destinations.items():
        typer.echo(f"  {name}: {d.objects} objects, {d.bytes / 1e6:.1f} MB")
    for e in report.errors:
        typer.echo(f"  error: {e}", err=True)
    raise typer.Exit(0 if report.ok else 1)


def _print_groups(report: PruneReport) -> None:
    """What a dry run would delete: one line per camera and local day, then the total."""
    from archiver.logs import escape_controls

    names = [escape_controls(g.camera) for g in report.groups]
    width = max(len("total"), *(len(n) for n in names))
    for name, g in zip(names, report.groups, strict=True):
        typer.echo(f"  {name:<{width}}  {g.day.isoformat()}  {_clips(g.clips):>11}  {_mb(g.bytes):>10}")
    typer.echo(f"  {'total':<{width}}  {'':10}  {_clips(report.clips):>11}  {_mb(report.bytes):>10}")


def _clips(n: int) -> str:
    return f"{n} clip{'s' if n != 1 else ''}"


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


@app.command("verify")
def verify_cmd(
    sample: Annotated[int | None, typer.Option(min=1, help="Check a random sample of N objects.")] = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Queue clips whose objects are missing or corrupt for the next sync (while Blink still "
            "has them), else copy them back from another destination.",
        ),
    ] = False,
) -> None:
    """Re-read stored objects against the database; report missing, corrupt and stray objects."""
    from archiver.db.engine import open_engine
    from archiver.maintenance import run_verify

    try:
        s = settings()
        report = run_verify(s, open_engine(s), sample=sample, repair=repair)
    except ArchiverError as exc:
        raise fail(exc) from None
    typer.echo(
        f"checked {report.checked} objects: {report.verified} intact, {len(report.missing)} missing, "
        f"{len(report.corrupt)} corrupt, {len(report.stray)} stray"
    )
    for label, problems in (
        ("missing", report.missing),
        ("corrupt", report.corrupt),
        ("stray", report.stray),
    ):
        for p in problems[:20]:
            typer.echo(f"  {label}: {p.destination}:{p.key} {p.detail}".rstrip(), err=True)
        if len(problems) > 20:
            typer.echo(f"  ... and {len(problems) - 20} more {label}", err=True)
    if not repair and (report.missing or report.corrupt):
        n = len({(p.destination, p.key) for p in [*report.missing, *report.corrupt]})
        typer.echo(
            f"{n} object{'s' if n != 1 else ''} can be repaired: run `archiver verify --repair` to fetch "
            "them again while Blink still has them, or copy them back from another destination",
            err=True,
        )
    if repair:
        typer.echo(
            f"repair: {report.requeued} clips queued for the next sync, {report.copied} objects copied back, "
            f"{len(report.unrepairable)} cannot be repaired"
        )
        for p in report.unrepairable[:20]:
            typer.echo(f"  unrepairable: {p.destination}:{p.key} (no source has it)", err=True)
    for e in report.errors:
        typer.echo(f"  error: {e}", err=True)
    raise typer.Exit(0 if report.ok else 1)


@app.command("reindex")
def reindex_cmd(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be recorded; change nothing.")
    ] = False,
    destination: Annotated[
        str | None,
        typer.Option("--destination", help="The destination to read (default: the first configured one)."),
    ] = None,
    verify: Annotated[
        bool, typer.Option("--verify", help="Also re-read every file and check its sha256.")
    ] = False,
) -> None:
    """Rebuild the database from the archive: record every clip whose sidecar a destination holds."""
    import sys

    from archiver.db.engine import open_engine
    from archiver.reindex import run_reindex

    bar = _ReindexBar() if sys.stderr.isatty() else None
    try:
        s = settings()
        engine = open_engine(s)
        report = run_reindex(
            s,
            engine,
            destination=destination,
            verify=verify,
            dry_run=dry_run,
            progress=bar.update if bar else None,
        )
    except ArchiverError as exc:
        raise fail(exc) from None
    finally:
        if bar is not None:
            bar.close()
    would = "would be " if dry_run else ""
    typer.echo(
        f"{report.destination}: {report.found} clips found; {report.added + report.completed} {would}added"
        f"{f' ({report.completed} the database had yet to fetch)' if report.completed else ''}, "
        f"{report.known} already known, {len(report.problems) + len(report.conflicts)} problems"
    )
    elsewhere = "".join(f", {n} in {name!r}" for name, n in report.elsewhere.items())
    typer.echo(f"  objects {would}recorded: {report.objects}{elsewhere}")
    if report.analyses:
        typer.echo(f"  analyses restored (activity, tags): {report.analyses}")
    for name in report.accounts:
        typer.echo(f"  account {name!r} {would}created")
    for name, since in report.cursors.items():
        starts = "would start" if dry_run else "starts"
        typer.echo(f"  account {name!r}: the cloud listing {starts} at {since.isoformat(timespec='seconds')}")
    for label, lines in (("conflict", report.conflicts), ("problem", report.problems)):
        for line in lines[:20]:
            typer.echo(f"  {label}: {line}", err=True)
        if len(lines) > 20:
            typer.echo(f"  ... and {len(lines) - 20} more {label}s", err=True)
    raise typer.Exit(0 if report.ok else 1)


class _ReindexBar:
    """A rich progress bar of the sidecars read (on a terminal only)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]reindex[/]"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} sidecars"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
        )
        self.task = self.progress.add_task("reindex", total=0)
        self.progress.start()

    def update(self, done: int, total: int) -> None:
        self.progress.update(self.task, completed=done, total=total)

    def close(self) -> None:
        self.progress.stop()
