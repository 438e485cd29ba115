"""Run a sync for every configured account: build destinations, take the lease, report. Prune is a step
of its own (``prune_after_sync``), run by the CLI after a sync and by the worker's prune job."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import httpx
from sqlalchemy.engine import Engine

from archiver.blink.api import BlinkAPI
from archiver.blink.auth import Authenticator, PinProvider
from archiver.blink.http import BlinkHTTP, EventHooks
from archiver.config import AccountSettings, Settings
from archiver.db import repo
from archiver.db.engine import open_engine
from archiver.destinations import build_destinations
from archiver.errors import ArchiverError
from archiver.media.processor import MediaProcessor
from archiver.media.steps import build_steps
from archiver.pipeline.job import JobRepo, SyncJob
from archiver.pipeline.report import AccountsFailed, Reporter, SyncReport
from archiver.pipeline.select import Selection
from archiver.sources import SOURCES
from archiver.sources.base import SourceContext, SourceFactory
from archiver.util import one_line

if TYPE_CHECKING:
    from archiver.retention import PruneReport  # retention loads only when it runs

__all__ = ["build_job", "open_blink", "open_engine", "prune_after_sync", "sync_all", "sync_and_prune"]

log = logging.getLogger("archiver.runner")


@dataclass
class BlinkSession:
    """An account's Blink client (HTTP, sign-in, API) over its database row: what `archiver login` needs,
    and what a job's Blink sources use. No sync job is built for it."""

    account_id: int
    http: BlinkHTTP
    auth: Authenticator
    api: BlinkAPI

    async def login(self, username: str, password: str, pin: PinProvider | None) -> None:
        await self.auth.login(username, password, pin)

    async def aclose(self) -> None:
        await self.http.aclose()


def open_blink(
    settings: Settings,
    engine: Engine,
    account: AccountSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    http_hooks: EventHooks | None = None,
) -> BlinkSession:
    """The account's row (created on first use), its stored credentials and the request rate earlier runs
    learned, wired into a Blink client."""
    row = repo.get_or_create_account(engine, account.name, account.username, settings.blink.auth)
    assert row.id is not None
    http = BlinkHTTP(settings.blink, transport=transport, limits=settings.limits, event_hooks=http_hooks)
    store = repo.AccountCredentialStore(
        engine, row.id, account.name, settings.data_dir / f".unsaved-credentials-{row.id}.json"
    )
    http.limiter.restore(repo.learned_rate(engine, row.id))  # the last run's pace
    auth = Authenticator(
        http,
        settings.blink,
        store.load(row),
        store,
        username=account.username,
        password=account.password.get_secret_value() if account.password else None,
    )
    return BlinkSession(row.id, http, auth, BlinkAPI(http, auth))


def build_job(
    settings: Settings,
    engine: Engine,
    account: AccountSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    reporter: Reporter | None = None,
    rescan_from: datetime | None = None,
    retry_failed: bool = False,
    sources: Mapping[str, SourceFactory] | None = None,
    http_hooks: EventHooks | None = None,
) -> SyncJob:
    """The sync job of one account from its parts: the Blink session, every enabled source (``sources``:
    the registry, by default :data:`~archiver.sources.SOURCES`), the configured destinations and
    processing steps. The media processor is always present: even with every option off, USB clips (no
    Blink thumbnail) get a generated one; ffmpeg is only looked up when a step needs it."""
    destinations = build_destinations(settings)
    processor = MediaProcessor(settings.processing)  # no thread until a step runs
    steps = build_steps(settings.processing.steps, processor)
    blink = open_blink(settings, engine, account, transport=transport, http_hooks=http_hooks)
    registry = SOURCES if sources is None else sources
    context = SourceContext(
        account_id=blink.account_id,
        account=account,
        settings=settings,
        engine=engine,
        api=blink.api,
        selection=Selection.of(account),
        rescan_from=rescan_from,
    )
    built = [s for make in registry.values() if (s := make(context)) is not None]
    return SyncJob(
        blink.api,
        built,
        destinations,
        JobRepo(engine, blink.account_id),
        steps,
        reporter,
        settings=settings,
        account=account,
        order=list(registry),  # a source listed earlier wins a duplicate
        retry_failed=retry_failed,
        processor=processor,
    )


async def clean_cloud(job: SyncJob, report: SyncReport) -> None:
    """The opt-in cloud cleanup of one account, after its sync got through (beside the job, not in it):
    deletes from Blink only clips every destination was re-read to hold."""
    if not (job.settings.cloud_cleanup.enabled and job.completed):
        return
    from archiver.cloud_cleanup import cloud_cleanup

    try:
        deleted, errors = await cloud_cleanup(job.api, job.repo.engine, job.account_id, job.destinations)
    except httpx.HTTPError as exc:
        report.errors.append(f"cannot reach Blink: {one_line(exc)} ({type(exc).__name__})")
        return
    report.cloud_deleted += deleted
    report.errors.extend(errors)


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
            job = build_job(
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
                report = await job.run()
                await clean_cloud(job, report)
                reports.append(report)
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
