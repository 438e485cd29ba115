"""`archiver run`: the long-running worker (schedule, health/metrics server, notifications)."""

from __future__ import annotations

import typer

from archiver.cli import app, fail, settings
from archiver.errors import ArchiverError


@app.command()
def run() -> None:
    """Run as a worker: sync on [schedule] (first sync at once), prune/verify, serve /healthz /readyz
    /metrics when [server] enabled; stops cleanly on SIGTERM/SIGINT (exit 0)."""
    from archiver.db.engine import open_engine
    from archiver.worker import run_worker

    try:
        s = settings(service=True)
        for url in s.notify.urls:
            from archiver.logs import REDACTOR

            REDACTOR.add(url.get_secret_value())
        engine = open_engine(s)
        code = run_worker(s, engine)
    except ArchiverError as exc:
        raise fail(exc) from None
    raise typer.Exit(code)
