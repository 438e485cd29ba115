"""`archiver analyze`: run the detectors on clips archived before (backfill), resumable."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated

import typer

from archiver.cli import app, fail, release, settings
from archiver.errors import ArchiverError, ConfigError


@app.command("analyze")
def analyze_cmd(
    since: Annotated[
        str | None, typer.Option(help="Only clips recorded on or after this date (e.g. 2024-05-01).")
    ] = None,
    camera: Annotated[list[str] | None, typer.Option(help="Only these cameras (name or id).")] = None,
    detector: Annotated[
        str | None, typer.Option(help="Run only this detector (default: [analysis] detectors).")
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Also clips whose analysis failed before, now.")
    ] = False,
) -> None:
    """Analyse stored clips that have no result of the current detectors yet (reads them from a
    destination). Interrupt it any time: the next run goes on where it stopped. Exit 1 if some failed."""
    from datetime import UTC, datetime

    from archiver.analysis import build_detectors
    from archiver.analysis.runner import analyze_clip, pending_clips
    from archiver.db.engine import open_engine
    from archiver.destinations import build_destinations

    try:
        s = settings()
        start = None
        if since:
            try:
                start = datetime.fromisoformat(since)
            except ValueError:
                raise ConfigError(f"--since: {since!r} is not a date like 2024-05-01") from None
            start = start if start.tzinfo else start.replace(tzinfo=UTC)
        detectors = build_detectors(s.analysis, only=detector)
        engine = open_engine(s)
        destinations = build_destinations(s)
        ids = pending_clips(
            engine,
            detectors,
            max_attempts=s.analysis.max_attempts,
            since=start,
            cameras=camera or (),
            retry_failed=retry_failed,
        )
    except ArchiverError as exc:
        raise fail(exc) from None
    names = ", ".join(d.name for d in detectors)
    typer.echo(f"{len(ids)} clips to analyse with {names}")
    failed = 0
    progress = _progress(len(ids))
    try:
        for n, clip_id in enumerate(ids, 1):
            outcome = analyze_clip(s, engine, destinations, detectors, clip_id)
            if not outcome.ok:
                failed += 1
                typer.echo(f"  clip id={clip_id}: {outcome.error}", err=True)
            progress(n)
    except KeyboardInterrupt:
        typer.echo("interrupted: run it again to go on", err=True)
        raise typer.Exit(130) from None
    typer.echo(f"analysed {len(ids) - failed} clips, {failed} failed")
    release(engine)
    raise typer.Exit(1 if failed else 0)


def _progress(total: int) -> Callable[[int], None]:
    """A progress callback: a rich bar on a terminal, a line every 10 % otherwise."""
    if total and sys.stderr.isatty():
        from rich.progress import Progress

        bar = Progress(transient=True)
        task = bar.add_task("analysing", total=total)
        bar.start()

        def tick(n: int) -> None:
            bar.update(task, completed=n)
            if n >= total:
                bar.stop()

        return tick
    step = max(1, total // 10)

    def line(n: int) -> None:
        if n % step == 0 or n == total:
            typer.echo(f"  {n}/{total}", err=True)

    return line
