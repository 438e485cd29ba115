"""keygen and copy: encryption keys, and moving an archive between destinations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from archiver.cli import app, fail, settings
from archiver.errors import ArchiverError, ConfigError, Unavailable


@app.command("keygen")
def keygen_cmd(
    file: Annotated[Path, typer.Argument(help="Where to write the new key (must not exist).")],
) -> None:
    """Write a new random encryption key (mode 0600) for [encryption] key_file.

    Keep a copy apart from the archive: without the key no encrypted object can be read again.
    """
    from archiver.destinations.crypt import keygen

    try:
        keygen(file)
    except FileExistsError:
        raise fail(ConfigError(f"{file} exists: a key is never overwritten (choose another name)")) from None
    except OSError as exc:
        raise fail(ConfigError(f"{file}: {exc.strerror}")) from None
    typer.echo(f"wrote a new key to {file}; set [encryption] key_file and keep a copy somewhere safe")


@app.command("copy")
def copy_cmd(
    source: Annotated[str, typer.Option("--from", help="Destination name to copy from.")],
    target: Annotated[str, typer.Option("--to", help="Destination name to copy to.")],
) -> None:
    """Copy every object of one destination that another lacks (resumable; verified; recorded).

    Adds a NAS to an existing archive, or turns encryption on: configure the new destination
    (encrypt = true), copy into it, then remove the old one from the config.
    """
    import sys

    from archiver.copy import copy_objects
    from archiver.db.engine import open_engine
    from archiver.destinations import DestinationError, build_destinations

    try:
        s = settings()
        dests = {d.name: d for d in build_destinations(s)}
        for name in (source, target):
            if name not in dests:
                raise ConfigError(f"no destination named {name!r} (configured: {', '.join(sorted(dests))})")
        engine = open_engine(s)
        bar = _Bar() if sys.stderr.isatty() else None
        try:
            report = copy_objects(
                engine,
                dests[source],
                dests[target],
                workdir=s.staging_dir,
                progress=bar.update if bar else _plain_progress,
            )
        finally:
            if bar is not None:
                bar.close()
    except DestinationError as exc:
        raise fail(ConfigError(str(exc)) if exc.config else Unavailable(str(exc))) from None
    except ArchiverError as exc:
        raise fail(exc) from None
    typer.echo(
        f"{source} -> {target}: {report.objects} objects, {report.copied} copied "
        f"({report.bytes / 1e6:.1f} MB), {report.present} already there, {len(report.failed)} failed"
    )
    for line in report.failed[:20]:
        typer.echo(f"  failed: {line}", err=True)
    raise typer.Exit(0 if report.ok else 1)


def _plain_progress(done: int, total: int, nbytes: int) -> None:
    if done == total or done % 100 == 0:
        typer.echo(f"  {done}/{total} objects, {nbytes / 1e6:.1f} MB", err=True)


class _Bar:  # a rich bar on a terminal
    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn("copy"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} objects"),
            TextColumn("{task.fields[mb]:.1f} MB"),
            TimeElapsedColumn(),
        )
        self.task = self.bar.add_task("copy", total=None, mb=0.0)
        self.bar.start()

    def update(self, done: int, total: int, nbytes: int) -> None:
        self.bar.update(self.task, completed=done, total=total, mb=nbytes / 1e6)

    def close(self) -> None:
        self.bar.stop()
