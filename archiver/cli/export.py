"""`archiver export`: a selection of clips as a zip with checksums (for the police or an insurer), or as
one video with the camera and time burned in."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from archiver.cli import app, fail, release, settings
from archiver.errors import ArchiverError, ConfigError

if TYPE_CHECKING:
    from collections.abc import Callable


def _progress(total: float, label: str, unit: str) -> tuple[Callable[[int], None], Callable[[], None]]:
    """A rich progress bar on a terminal (stderr); nothing otherwise."""
    import sys

    if not sys.stderr.isatty():
        return (lambda _n: None), (lambda: None)
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn

    columns = [TextColumn(label), BarColumn(), DownloadColumn() if unit == "bytes" else MofNCompleteColumn()]
    bar = Progress(*columns, console=Console(stderr=True), transient=True)
    task = bar.add_task(label, total=total)
    bar.start()
    return (lambda n: bar.advance(task, n)), bar.stop


@app.command("export")
def export_cmd(
    camera: Annotated[
        list[str] | None, typer.Option("--camera", help="A camera's name (repeat for several).")
    ] = None,
    network: Annotated[str | None, typer.Option(help="Every camera of this network.")] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--from", help="2026-12-06 or 2026-12-06T01:00 (the network's local time) or with an offset."
        ),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="As --from; a date alone includes that whole day.")
    ] = None,
    source: Annotated[str | None, typer.Option(help="cloud or local (USB) clips only.")] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", help="Clips with this tag only (person, car...; repeat: any of them)."),
    ] = None,
    min_activity: Annotated[
        float | None,
        typer.Option(
            "--min-activity", min=0.0, max=1.0, help="Clips whose activity score is at least this (0-1)."
        ),
    ] = None,
    destination: Annotated[
        str | None, typer.Option(help="Read from this destination (default: the first configured).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write a zip: originals, thumbnails, sidecars, SHA256SUMS.")
    ] = None,
    video: Annotated[
        Path | None,
        typer.Option("--video", help="Write one MP4 of the clips with camera and time burned in."),
    ] = None,
) -> None:
    """Hand clips over: `--out FILE.zip` (the originals byte for byte, a manifest.csv and a SHA256SUMS that
    `sha256sum -c SHA256SUMS` checks) and/or `--video FILE.mp4`. Exit 2 for an empty or bad selection."""
    from sqlmodel import Session

    from archiver.db.engine import open_engine
    from archiver.destinations import build_destinations
    from archiver.export import (
        ExportIncomplete,
        Selection,
        parse_bound,
        pick_destination,
        plan,
        write_video,
        write_zip,
    )

    try:
        if out is None and video is None:
            raise ConfigError("say where to write: --out FILE.zip and/or --video FILE.mp4")
        if source is not None and source.lower() not in ("cloud", "local", "usb"):
            raise ConfigError(f"--source {source!r}: cloud or local")
        for path, suffix in ((out, ".zip"), (video, ".mp4")):
            if path is not None and path.exists() and path.is_dir():
                raise ConfigError(f"{path} is a folder: give a {suffix} file name")
            if path is not None and not path.parent.is_dir():
                raise ConfigError(f"{path.parent} does not exist")
        sel = Selection(
            cameras=list(camera or []),
            network=network,
            start=parse_bound(start, end=False) if start else None,
            end=parse_bound(end, end=True) if end else None,
            source={"usb": "local"}.get(source.lower(), source.lower()) if source else None,
            tags=list(tag or []),
            min_activity=min_activity,
        )
        s = settings()
        dest = pick_destination(build_destinations(s), destination)
        engine = open_engine(s)
        with Session(engine) as session:
            chosen = plan(session, sel, dest.name)
        release(engine)
        mb = chosen.total_bytes / 1e6
        typer.echo(f"{len(chosen.items)} clips ({sel.describe()}), {mb:.1f} MB, from {dest.name}")
        for m in chosen.missing:
            typer.echo(f"  not exported: {m}", err=True)
        problems = len(chosen.missing)
        if out is not None:
            import time

            part = out.with_name(out.name + ".part")
            advance, stop = _progress(chosen.total_bytes, "zip", "bytes")
            began = time.monotonic()
            try:
                with part.open("wb") as f:
                    result = write_zip(chosen, dest, f, selection=sel.describe(), progress=advance)
                part.replace(out)
            finally:
                stop()
                part.unlink(missing_ok=True)
            took = max(time.monotonic() - began, 1e-6)
            typer.echo(
                f"wrote {out}: {result.clips} clips, {result.files} files, {result.bytes / 1e6:.1f} MB "
                f"in {took:.1f} s ({result.bytes / 1e6 / took:.1f} MB/s)"
            )
            typer.echo(f"  check it: unzip '{out.name}' -d export && cd export && sha256sum -c SHA256SUMS")
            for p in result.problems:
                typer.echo(f"  problem: {p}", err=True)
            problems += len(result.problems)
        if video is not None:
            from archiver.media.ffmpeg import find_ffmpeg

            ffmpeg = find_ffmpeg(s.processing.ffmpeg)
            advance, stop = _progress(len(chosen.items), "video", "clips")
            try:
                vres = write_video(chosen, dest, str(video), ffmpeg=ffmpeg, progress=advance)
            finally:
                stop()
            typer.echo(f"wrote {video}: {vres.clips} clips, {vres.duration:.0f} s, in time order")
            for n in vres.notes:
                typer.echo(f"  note: {n}", err=True)
        if problems:
            raise ExportIncomplete(f"{problems} clips or files could not be exported as archived (see above)")
    except ArchiverError as exc:
        raise fail(exc) from None


def print_summaries(s: object, engine: object) -> None:
    """Build the due daily summaries and say what was made (a failure is a note, never an exit code)."""
    from archiver.summaries import run_summaries

    report = run_summaries(s, engine)  # type: ignore[arg-type]
    if report.built:
        made = f"{report.video_s:.0f} s of video, {report.cpu_s:.1f} s CPU"
        typer.echo(f"daily summaries: {len(report.built)} built ({made})")
    for line in report.failed:
        typer.echo(f"  summary not built: {line}", err=True)


@app.command("summaries")
def summaries_cmd() -> None:
    """Build the daily summary videos due now (a camera-day with clips archived since its summary)."""
    from archiver.db.engine import open_engine

    try:
        s = settings()
        engine = open_engine(s)
    except ArchiverError as exc:
        raise fail(exc) from None
    print_summaries(s, engine)
    release(engine)
