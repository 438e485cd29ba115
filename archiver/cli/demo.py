"""`archiver demo`: the whole product against the built-in simulator, no Blink account needed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from archiver.cli import STATE, app, fail, use_settings
from archiver.cli.commands import print_reports
from archiver.errors import ArchiverError

if TYPE_CHECKING:
    from archiver.config import Settings

DEMO_USER = "demo@example.com"
DEMO_PASSWORD = "demo-password"
DEMO_PIN = "123456"


@app.command()
def demo(
    folder: Annotated[Path, typer.Option(help="Where the demo archive and database go.")] = Path(
        "archiver-demo"
    ),
    clips: Annotated[int, typer.Option(min=1, max=500, help="Cloud clips per camera.")] = 3,
    serve: Annotated[
        bool, typer.Option("--serve", help="Then open the web UI on the demo archive (Ctrl-C stops).")
    ] = False,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port for --serve.")] = 8080,
) -> None:
    """Start the built-in Blink simulator, log in (with a 2FA PIN), sync into a demo folder."""
    from archiver.cli.progress import make_reporter
    from archiver.db.engine import open_engine
    from archiver.pipeline.runner import open_blink, sync_all
    from archiver.simulator import SimConfig, Simulator
    from archiver.simulator.settings import settings_for
    from archiver.util import aio

    with Simulator(
        SimConfig(username=DEMO_USER, password=DEMO_PASSWORD, pin=DEMO_PIN, two_factor=True)
    ) as sim:
        home = sim.add_network("Home", time_zone="America/Chicago")
        cabin = sim.add_network("Cabin", time_zone="Europe/Berlin")
        sm = sim.add_sync_module(cabin, "Cabin Sync Module", local_storage=True)
        for net, name in ((home, "Front Door"), (home, "Back Yard"), (cabin, "Porch")):
            cam = sim.add_camera(net, name)
            sim.add_clips(cam, clips, size=120_000)
            if net == cabin:  # older recordings that only the USB stick still has
                for hours in (30, 26):
                    sim.add_local_clip(
                        sm, cam, created_at=datetime.now(UTC) - timedelta(hours=hours), size=90_000
                    )
        folder = folder.resolve()
        try:
            s = use_settings(
                settings_for(
                    sim,
                    folder,
                    STATE.config,
                    blink={"max_requests_per_second": 20},
                    local_storage={"poll_interval_s": 0.2, "busy_pause_s": 0.2},
                    destinations=[],
                    accounts=[],
                )
            )
            engine = open_engine(s)
            typer.echo(f"simulated Blink cloud at {sim.url} (user {DEMO_USER}, PIN {DEMO_PIN})")
            account = s.account_list()[0]

            async def pin(_challenge: object) -> str:
                typer.echo(f"2FA: Blink 'sent' a PIN; the demo enters {DEMO_PIN}")
                return DEMO_PIN

            async def go() -> list:  # type: ignore[type-arg]
                sync = open_blink(s, engine, account)
                try:
                    await sync.login(DEMO_USER, DEMO_PASSWORD, pin)
                finally:
                    await sync.aclose()
                return await sync_all(s, engine, reporter_factory=make_reporter)

            reports = aio.run(go())
        except ArchiverError as exc:
            raise fail(exc) from None
        code = print_reports(reports)
        files = sorted(p for p in s.archive_dir.rglob("*") if p.is_file())
        typer.echo(f"\n{len(files)} files in {s.archive_dir}:")
        for p in files[:12]:
            typer.echo(f"  {p.relative_to(s.archive_dir)}")
        if len(files) > 12:
            typer.echo(f"  ... and {len(files) - 12} more")
        typer.echo(f"\nsee it with: ARCHIVER_DATA_DIR={folder} archiver status")
    if not serve:
        typer.echo(
            f"browse it with: ARCHIVER_DATA_DIR={folder} archiver serve  (then open http://127.0.0.1:8080/)"
        )
        typer.echo("  or run: archiver demo --serve")
        raise typer.Exit(code)
    serve_archive(s, port)


def serve_archive(s: Settings, port: int) -> None:
    """The web UI on the demo archive, on loopback (the simulator has stopped; the archive stays)."""
    from archiver.db.engine import open_engine
    from archiver.web.app import create_app
    from archiver.web.server import WebServer

    try:
        server = WebServer(create_app(s, open_engine(s)), s.server, "127.0.0.1", port)
    except ArchiverError as exc:
        raise fail(exc) from None
    typer.echo(f"\nthe demo archive in your browser: {server.url}/ (Ctrl-C stops)")
    server.run()
