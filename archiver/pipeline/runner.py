"""Run a sync for every configured account: build destinations, take the lease, report. Prune is a step
of its own (``prune_after_sync``), run by the CLI after a sync and by the worker's prune job."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import httpx
from sqlalchemy.engine import Engine

from archiver.blink.http import EventHooks
from archiver.config import AccountSettings, Settings
from archiver.db.engine import open_engine
from archiver.destinations import build_destinations
from archiver.errors import ArchiverError
from archiver.media.processor import MediaProcessor
from archiver.media.steps import build_steps
from archiver.pipeline.job import SyncJob
from archiver.pipeline.report import AccountsFailed, Reporter, SyncReport
from archiver.util import one_line

if TYPE_CHECKING:
    from archiver.retention import PruneReport  # retention loads only when it runs

__all__ = ["make_account_sync", "open_engine", "prune_after_sync", "sync_all", "sync_and_prune"]

log = logging.getLogger("archiver.runner")


def make_account_sync(
    settings: Settings,
    engine: Engine,
    account: AccountSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    reporter: Reporter | None = None,
    rescan_from: datetime | None = None,
    retry_failed: bool = False,
    http_hooks: EventHooks | None = None,
) -> SyncJob:
    """The sync job of one account with the configured destinations and every enabled source. The media
    processor is always present: even with every option off, USB clips (no Blink thumbnail) get a generated
    one; ffmpeg is only looked up when a job needs it."""
    processor = MediaProcessor(settings.processing)
    return SyncJob(
        settings,
        engine,
        account,
        build_destinations(settings),
        transport=transport,
        reporter=reporter,
        processor=processor,
        steps=build_steps(settings.processing.steps, processor),
        rescan_from=rescan_from,
        retry_failed=retry_failed,
        http_hooks=http_hooks,
    )


async def sync_all(
    settings: Settings,
    engine: Engine,
    *,
    accounts: list[str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    reporter_factory: Callable[[str], Reporter] | None = None,
    rescan_from: datetime | None = None,
    retry_failed: bool = False,
    http_hooks: EventHooks | None = None,
) -> list[SyncReport]:
    """Every (selected) account in turn, each under its lease. Every entry point (CLI, worker, demo,
    Home Assistant) comes through here, so the preflight runs here, once, before the first download:
    nothing is fetched that cannot be kept (ConfigError exit 2, Unavailable exit 1).

    An account that cannot be synced (a login needed, a wrong password, Blink unreachable) does not stop
    the others: with one account its error is raised as it is; with several, the others are synced first,
    then ``AccountsFailed`` names the failed ones and carries the reports of the rest."""
    from archiver.db.lease import account_lease
    from archiver.maintenance import preflight
    from archiver.reindex import reindex_before_sync

    await asyncio.to_thread(preflight, settings)
    await asyncio.to_thread(reindex_before_sync, settings, engine, accounts)  # an archive the DB lacks
    reports: list[SyncReport] = []
    failures: list[tuple[str, ArchiverError]] = []
    selected = [a for a in settings.account_list() if not accounts or a.name in accounts]
    for account in selected:
        with account_lease(engine, account.name) as held:
            if not held:
                reports.append(SyncReport(account=account.name, skipped_lease=True))
                continue
            job = make_account_sync(
                settings,
                engine,
                account,
                transport=transport,
                reporter=reporter_factory(account.name) if reporter_factory else None,
                rescan_from=rescan_from,
                retry_failed=retry_failed,
                http_hooks=http_hooks,
            )
            try:
                reports.append(await job.run())
            except ArchiverError as exc:
                if len(selected) == 1:
                    raise
                log.warning("sync failed account=%s: %s (the others go on)", account.name, one_line(exc))
                failures.append((account.name, exc))
            finally:
                await job.aclose()
    if failures:
        raise AccountsFailed(failures, reports)
    return reports


async def prune_after_sync(settings: Settings, engine: Engine) -> PruneReport | None:
    """Retention after a sync, when configured (``retention.prune_after_sync``), under the ``job:prune``
    lease; None when off or when another process is pruning."""
    if not (settings.retention.configured and settings.retention.prune_after_sync):
        return None
    from archiver.db.lease import job_lease
    from archiver.maintenance import run_prune

    def prune() -> PruneReport | None:
        with job_lease(engine, "prune") as held:  # the worker's and `archiver prune`'s lease too
            if not held:
                log.info("prune skipped: another process is pruning")
                return None
            return run_prune(settings, engine)

    return await asyncio.to_thread(prune)


async def sync_and_prune(
    settings: Settings,
    engine: Engine,
    *,
    accounts: list[str] | None = None,
    reporter_factory: Callable[[str], Reporter] | None = None,
    rescan_from: datetime | None = None,
    retry_failed: bool = False,
) -> list[SyncReport]:
    """`archiver sync`: every account, then one prune (its outcome on the first report). When some
    accounts failed (``AccountsFailed``), the prune still runs after the others, then the error is raised."""
    try:
        reports = await sync_all(
            settings,
            engine,
            accounts=accounts,
            reporter_factory=reporter_factory,
            rescan_from=rescan_from,
            retry_failed=retry_failed,
        )
    except AccountsFailed as exc:
        await _prune_into(settings, engine, exc.reports)
        raise
    await _prune_into(settings, engine, reports)
    return reports


async def _prune_into(settings: Settings, engine: Engine, reports: list[SyncReport]) -> None:
    if reports and (pruned := await prune_after_sync(settings, engine)) is not None:
        reports[0].pruned = pruned.pruned
        reports[0].errors.extend(f"prune: {e}" for e in pruned.errors)
