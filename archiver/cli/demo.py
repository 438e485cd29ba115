"""`archiver demo`: the whole product against the built-in simulator, no Blink account needed."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from archiver.cli import STATE, app, fail, use_settings
from archiver.cli.commands import print_reports
from archiver.errors import ArchiverError

if TYPE_CHECKING:
    from archiver.config import Settings
    from archiver.simulator import Simulator

DEMO_USER = "demo@example.com"
DEMO_PASSWORD = "demo-password"
DEMO_PIN = "123456"


@app.command()
def demo(
    folder: Annotated[Path, typer.Option(help="Where the demo archive and database go.")] = Path(
        "archiver-demo"
    ),
    clips: Annotated[int, typer.Option(min=1, max=500, help="Cloud clips per camera.")] = 6,
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

    folder = folder.resolve()
    with Simulator(
        SimConfig(username=DEMO_USER, password=DEMO_PASSWORD, pin=DEMO_PIN, two_factor=True)
    ) as sim:
        rendered = populate(sim, folder, clips)
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
                    log={"level": "WARNING"},  # the summary below says what happened; -v for the details
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
        from archiver import last_sync

        last_sync.record(s.data_dir, {r.account: last_sync.of_report(r) for r in reports})  # for `status`
        code = print_reports(reports)
        files = sorted(p for p in s.archive_dir.rglob("*") if p.is_file())
        typer.echo(f"\n{len(files)} files in {s.archive_dir}:")
        for p in files[:12]:
            typer.echo(f"  {p.relative_to(s.archive_dir)}")
        if len(files) > 12:
            typer.echo(f"  ... and {len(files) - 12} more")
        if not rendered:
            typer.echo("(clips are the plain test card: no ffmpeg with drawtext and a font to draw them)")
        exe = _command_name()
        env = f"ARCHIVER_DATA_DIR={shlex.quote(str(folder))}"
        typer.echo(f"\nsee it with: {env} {exe} status")
    if not serve:
        typer.echo(f"browse it with: {env} {exe} serve  (then open http://127.0.0.1:8080/timeline)")
        again = "" if folder == Path("archiver-demo").resolve() else f" --folder {shlex.quote(str(folder))}"
        typer.echo(f"  or run: {exe} demo --serve{again}")
        raise typer.Exit(code)
    serve_archive(s, port)


DEMO_CAMERAS = (("Home", "Front Door", 0.0), ("Home", "Back Yard", 120.0), ("Cabin", "Porch", 240.0))
DEMO_DAYS = 4  # cloud clips are spread over the last few days and hours


def _command_name() -> str:
    """How the user ran this command (``.venv/bin/archiver`` as the README does), for the hints."""
    import sys

    argv0 = sys.argv[0] if sys.argv else ""
    if Path(argv0).name == "archiver" and "/" in argv0:
        cwd = Path.cwd()
        path = Path(argv0).absolute()
        shown = str(path.relative_to(cwd)) if path.is_relative_to(cwd) else str(path)
        return shlex.quote(shown)
    return ".venv/bin/archiver" if Path(".venv/bin/archiver").exists() else "archiver"


def _anchor(folder: Path) -> datetime:
    """The instant the demo's recordings are timed from, kept in the folder: a second `archiver demo`
    offers the same USB recordings (same instants), which are then not stored again."""
    mark = folder / ".demo-anchor"
    try:
        return datetime.fromisoformat(mark.read_text().strip())
    except (OSError, ValueError):
        pass
    anchor = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    folder.mkdir(parents=True, exist_ok=True)
    mark.write_text(anchor.isoformat() + "\n")
    return anchor


def populate(sim: Simulator, folder: Path, clips: int) -> bool:
    """Three cameras in two networks: cloud clips at varied hours over the last days, two older USB
    clips; each clip drawn with its camera's name and local time when ffmpeg can (True)."""
    import random
    from zoneinfo import ZoneInfo

    from archiver.simulator import media

    media.clear_renders()
    anchor = _anchor(folder)
    zones = {"Home": "America/Chicago", "Cabin": "Europe/Berlin"}
    nets = {name: sim.add_network(name, time_zone=tz) for name, tz in zones.items()}
    sm = sim.add_sync_module(nets["Cabin"], "Cabin Sync Module", local_storage=True)
    drawn = True

    def add(cam: int, name: str, net: str, hue: float, at: datetime, local_clip: bool) -> None:
        nonlocal drawn
        caption = f"{name} · {at.astimezone(ZoneInfo(zones[net])):%Y-%m-%d %H:%M:%S %Z}"
        art = media.render_clip(caption, hue=hue) if drawn else None
        drawn = art is not None
        size = len(art[0]) + 4_000 if art else (90_000 if local_clip else 120_000)
        if local_clip:
            clip_id = sim.add_local_clip(sm, cam, created_at=at, size=size)
            key = f"local:{sim.state.local_aliases[clip_id]}"
        else:
            key = f"cloud:{sim.add_clip(cam, created_at=at, size=size)}"
        if art:
            media.install_render(key, art)

    for net, name, hue in DEMO_CAMERAS:
        cam = sim.add_camera(nets[net], name)
        rng = random.Random(f"{name}-{anchor.isoformat()}")
        minutes = sorted(rng.randrange(10, DEMO_DAYS * 24 * 60) for _ in range(clips))
        for m in reversed(minutes):
            add(cam, name, net, hue + rng.uniform(-50, 50), anchor - timedelta(minutes=m), False)
        if net == "Cabin":  # older recordings that only the USB stick still has
            for hours in (30, 26):
                add(cam, name, net, hue, anchor - timedelta(hours=hours, minutes=17), True)
    return drawn


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
