"""Progress display: a rich bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from archiver.db.models import Clip
from archiver.logs import safe_markup
from archiver.pipeline.sync import Reporter


class RichReporter(Reporter):
    def __init__(self, account: str, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn(f"[bold]{account}[/]"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} clips"),
            TextColumn("{task.fields[mb]:.1f} MB"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.task = self.progress.add_task("sync", total=0, mb=0.0)
        self._bytes = 0

    def planned(self, total: int) -> None:
        self.progress.update(self.task, total=total)
        if total:
            self.progress.start()

    def bytes_fetched(self, n: int) -> None:
        self._bytes += n
        self.progress.update(self.task, mb=self._bytes / 1e6)

    def clip_done(self, clip: Clip, ok: bool, message: str = "") -> None:
        self.progress.advance(self.task)
        if not ok:
            self.progress.console.print(
                f"[red]failed[/] {safe_markup(clip.identity)}: {safe_markup(message)}"
            )

    def close(self) -> None:
        self.progress.stop()


def make_reporter(account: str) -> Reporter:
    if sys.stderr.isatty():
        return RichReporter(account)
    return Reporter()
