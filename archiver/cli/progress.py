"""Progress display: a rich bar on a terminal (log lines printed above it), plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from archiver.logs import route_through, safe_markup
from archiver.pipeline.report import Reporter

if TYPE_CHECKING:
    from rich.console import Console

    from archiver.db.models import Clip

log = logging.getLogger("archiver.sync")


class RichReporter(Reporter):
    """The total counts every source's clips; each settled clip (stored, failed, skipped) advances it."""

    def __init__(self, account: str, console: Console | None = None) -> None:
        # rich is loaded here, on a terminal only: a scheduled run (no TTY) logs plain lines without it
        from rich.console import Console
        from rich.logging import RichHandler
        from rich.markup import escape
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn(f"[bold]{escape(account)}[/]"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} clips"),
            TextColumn("{task.fields[mb]:.1f} MB"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.task = self.progress.add_task("sync", total=0, mb=0.0)
        self._bytes = 0
        self._undo_logging: Callable[[], None] | None = route_through(
            RichHandler(
                console=self.console,
                show_path=False,
                show_time=logging.getLogger().level <= logging.DEBUG,  # timestamps with -v only
                markup=False,
                rich_tracebacks=False,
            )
        )

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
            self.console.print(f"[red]failed[/] {safe_markup(clip.identity)}: {safe_markup(message)}")

    def clip_skipped(self, clip: Clip, reason: str) -> None:
        self.progress.advance(self.task)

    def close(self) -> None:
        self.progress.stop()
        if self._undo_logging is not None:
            self._undo_logging()
            self._undo_logging = None


class PlainReporter(Reporter):
    """No terminal: the summary ``print_reports`` prints after the run says it all (each failed clip
    included), so a failure is a log line of its own only with ``-v``."""

    def clip_done(self, clip: Clip, ok: bool, message: str = "") -> None:
        if ok:
            super().clip_done(clip, ok, message)
        else:
            log.info("failed clip=%s: %s", clip.identity, message)


def make_reporter(account: str) -> Reporter:
    if sys.stderr.isatty():
        return RichReporter(account)
    return PlainReporter()
