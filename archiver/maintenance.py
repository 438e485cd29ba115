"""Start-up checks, prune and verify against the configured destinations (shared by the CLI, the sync and
the worker)."""

from __future__ import annotations

import contextlib
import errno
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from archiver.config import Settings
from archiver.db.engine import session_scope
from archiver.destinations import Capability, Destination, DestinationError, build_destinations
from archiver.errors import ConfigError, MediaError, Unavailable, os_reason
from archiver.retention import PruneReport, prune
from archiver.verify import VerifyReport, database_problems, verify

log = logging.getLogger("archiver.maintenance")


def check_destinations(destinations: Sequence[Destination]) -> list[str]:
    """Every destination's preflight, in config order. Raises ConfigError (exit 2) for a destination that
    cannot work as configured (no such bucket, access denied, not a folder) and Unavailable (exit 1) for
    one that is down or full; returns notes worth logging (aborted uploads)."""
    notes: list[str] = []
    outage: str | None = None
    for i, dest in enumerate(destinations):
        try:
            notes.extend(dest.preflight())
        except DestinationError as exc:
            if exc.config:
                raise ConfigError(f"destinations[{i}]: {exc}") from None
            outage = outage or f"destinations[{i}]: {exc}"
        except Exception as exc:  # a backend bug: the destination cannot be trusted this run
            outage = outage or f"destinations[{i}]: {dest.name!r}: {type(exc).__name__}: {exc}"
    if outage is not None:
        raise Unavailable(f"{outage}; nothing was downloaded (clips stay queued for the next run)")
    for note in notes:
        log.info("%s", note)
    return notes


def check_ffmpeg(settings: Settings) -> None:
    """ffmpeg is there (processing.ffmpeg, PATH or imageio-ffmpeg) and has the transcode's encoder.

    Looked for whenever something may run it: a transcode or a preview, a configured ``processing.ffmpeg``,
    or no PyAV (then probes and the thumbnails every USB clip gets run ffmpeg). With PyAV and neither,
    nothing does, and finding imageio-ffmpeg's binary (it runs ``ffmpeg -version``) is skipped.
    """
    from importlib.util import find_spec

    from archiver.media.ffmpeg import find_ffmpeg

    p = settings.processing
    if p.ffmpeg is None and p.transcode == "off" and p.preview == "off" and find_spec("av") is not None:
        return
    try:
        exe = find_ffmpeg(p.ffmpeg)
    except MediaError as exc:
        raise ConfigError(str(exc)) from None  # names processing.ffmpeg
    if p.transcode != "off":
        from archiver.media.transcode import get_profile

        try:
            get_profile(p.transcode).pick_encoder(exe)
        except MediaError as exc:
            raise ConfigError(f"processing.transcode: {exc}") from None


def preflight(settings: Settings, destinations: Sequence[Destination] | None = None) -> list[str]:
    """Checks before the first download of a sync, so nothing is fetched that cannot be kept: the staging
    folder takes a file, ffmpeg is there when processing needs it, every destination works."""
    from archiver.destinations.disk import probe_folder

    staging = settings.staging_dir
    try:
        staging.mkdir(mode=0o700, parents=True, exist_ok=True)  # clips wait here: private too
        probe_folder(staging, 0o600)
    except OSError as exc:  # full: an outage the next run may not meet (exit 1); else the setting (exit 2)
        outage = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO)
        raise (Unavailable if outage else ConfigError)(
            f"sync.staging_dir: {staging}: {os_reason(exc)}"
            + ("; nothing was downloaded (clips stay queued for the next run)" if outage else "")
        ) from None
    check_ffmpeg(settings)
    return check_destinations(destinations if destinations is not None else build_destinations(settings))


def run_prune(settings: Settings, engine: Engine, *, dry_run: bool = False) -> PruneReport:
    dests = {d.name: d for d in build_destinations(settings)}
    with session_scope(engine) as s:
        return prune(s, dests, settings.retention, datetime.now(UTC), dry_run=dry_run)


def run_verify(
    settings: Settings, engine: Engine, *, sample: int | None = None, repair: bool = False
) -> VerifyReport:
    """Verify (and with ``repair`` queue or copy back what is missing or corrupt). Interrupted uploads of
    killed runs are aborted first; a destination that is down is reported by verify itself."""
    built = build_destinations(settings)
    for dest in built:
        if Capability.incomplete_uploads in dest.capabilities:  # never a disk preflight: it makes the root
            with contextlib.suppress(DestinationError):  # verify reports a destination that is down
                for note in dest.preflight():
                    log.info("%s", note)
    dests = {d.name: d for d in built}
    with session_scope(engine) as s:
        report = verify(s, dests, sample=sample)
        report.errors.extend(database_problems(s))
        if repair:
            from archiver.verify import repair as repair_objects

            repair_objects(s, dests, report, settings.staging_dir / "repair")
        return report
