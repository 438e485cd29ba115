"""The `archiver` command (typer). Exit codes: 0 all good, 1 some clips failed (retried next run),
2 configuration or authentication error.

Start-up time: this package and the command modules import only typer and the small archiver modules
(errors, logs) at the top. Settings (pydantic), the database (SQLAlchemy), the Blink client (httpx) and
the pipeline are imported inside the command functions that use them, so ``archiver --help`` and the
light commands start in a fraction of a second. A new command module follows the same rule.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

# pydantic looks up third-party plugins (package entry points) when the first model is built: 20-40 ms
# of every command's start. The archiver uses none; PYDANTIC_DISABLE_PLUGINS set (even empty) wins.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

import typer

from archiver.errors import ArchiverError, ConfigError, describe
from archiver.logs import REDACTOR, escape_controls, setup_logging

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from archiver.config import Settings

app = typer.Typer(
    name="archiver",
    help="Archive every Blink clip (cloud and Sync Module USB) to disk or S3, exactly once.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts name config sections like [retention]: print them as written
)
log = logging.getLogger("archiver.cli")

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file (or ARCHIVER_CONFIG).", show_default=False),
]


class State:
    config: Path | None = None
    verbose: bool = False
    settings: Settings | None = None  # once loaded: names the keys in errors raised later
    released: bool = False  # the command let go of everything it held: main() may leave at once


STATE = State()


@app.callback()
def _root(
    config: ConfigOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    STATE.config = config
    STATE.verbose = verbose


def settings(*, service: bool = False, **overrides: object) -> Settings:
    from archiver.config import load_settings

    return use_settings(load_settings(STATE.config, **overrides), service=service)


def use_settings(s: Settings, *, service: bool = False) -> Settings:
    """Set up logging and keep the config's passwords out of every message.

    A service (``run``, ``serve``) logs as ``[log]`` says, with timestamps. Every other command prints
    its own human output: its log lines go to stderr only with ``-v`` (timestamped, DEBUG); without it,
    only warnings, as ``warning: …`` lines. A ``[log] level`` or ``json = true`` set in the config is
    honoured as written (a CronJob that collects JSON lines keeps them)."""
    STATE.settings = s
    explicit = bool({"level", "json_format"} & s.log.model_fields_set)
    if STATE.verbose:
        setup_logging("DEBUG", s.log.json_format)
    elif service or explicit:
        setup_logging(s.log.level, s.log.json_format)
    else:
        setup_logging("WARNING", human=True)
    REDACTOR.add(s.blink.password.get_secret_value() if s.blink.password else None)
    for acct in s.accounts:
        REDACTOR.add(acct.password.get_secret_value() if acct.password else None)
    for dest in s.destinations:  # NAS passwords, fsspec tokens, S3 secret keys
        for secret in dest.secrets():
            REDACTOR.add(secret)
    return s


def release(engine: Engine) -> None:
    """The command is done with the database (its connections are closed, SQLite's WAL folded back into
    the file) and holds nothing else: ``main`` may then end the process without tearing the interpreter
    down, which costs more CPU than a no-op sync's own work (~0.15 s of SQLAlchemy and pydantic objects)."""
    engine.dispose()
    STATE.released = True


def _leave(code: int) -> NoReturn:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def error_text(exc: BaseException) -> str:
    """``error: <message>``, redacted, controls escaped; a message listing several problems (all the
    bad settings at once) keeps its own line breaks."""
    return "error: " + "\n".join(escape_controls(REDACTOR.scrub(line)) for line in str(exc).splitlines())


def fail(exc: ArchiverError) -> typer.Exit:
    typer.echo(error_text(exc), err=True)
    return typer.Exit(exc.exit_code)


def _explain(exc: BaseException) -> ArchiverError | None:
    """What a failure that escaped a command means for the user, naming the setting when one is to blame."""
    known = describe(exc)
    if known is not None and "address already in use" in str(known) and STATE.settings is not None:
        srv = STATE.settings.server
        return ConfigError(f"server.port: {srv.host}:{srv.port} is already in use (another archiver?)")
    return known


def main() -> None:
    from archiver.cli import (  # noqa: F401  (registers the commands)
        analyze,
        commands,
        demo,
        export,
        maintenance,
        status,
        storage,
        web,
        worker,
    )

    try:
        app()
    except SystemExit as exc:
        if STATE.released and (exc.code is None or isinstance(exc.code, int)):
            _leave(exc.code or 0)
        raise
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # anything not handled by a command: one line; details with -v
        known = _explain(exc)
        if STATE.verbose:  # the traceback goes through the redacting log handler, never raw
            if not logging.getLogger().handlers:
                setup_logging("DEBUG")
            log.error("%s", type(exc).__name__, exc_info=exc)
        if known is not None:
            typer.echo(error_text(known), err=True)
            sys.exit(known.exit_code)
        typer.echo(
            f"error: unexpected {type(exc).__name__}: {escape_controls(REDACTOR.scrub(_first_line(exc)))} "
            "(run with -v for details)",
            err=True,
        )
        sys.exit(1)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else ""
