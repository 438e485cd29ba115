"""`archiver serve`: the web UI on its own (the same app `archiver run` serves when [server] enabled)."""

from __future__ import annotations

from typing import Annotated

import typer

from archiver.cli import app, fail, settings
from archiver.errors import ArchiverError


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on; anything but loopback needs [server.auth].")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8080,
) -> None:
    """Browse and play the archive in a web browser (read-only), plus /healthz /readyz /metrics."""
    from archiver.db.engine import open_engine
    from archiver.web.app import create_app
    from archiver.web.server import WebServer

    try:
        s = settings(service=True)
        s = s.model_copy(update={"server": s.server.model_copy(update={"ui": True})})
        server = WebServer(create_app(s, open_engine(s)), s.server, host, port)
    except ArchiverError as exc:
        raise fail(exc) from None
    typer.echo(f"serving the archive on {server.url}/ (Ctrl-C stops)")
    server.run()
