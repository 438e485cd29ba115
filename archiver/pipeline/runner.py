"""Run a sync for every configured account: build destinations, take the lease, report."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

import httpx
from sqlalchemy.engine import Engine

from archiver.config import AccountSettings, Settings
from archiver.db.engine import open_engine
from archiver.destinations import build_destinations
from archiver.pipeline.sync import AccountSync, Reporter, SyncReport

__all__ = ["make_account_sync", "open_engine", "sync_all"]

log = logging.getLogger("archiver.runner")


def make_account_sync(
    settings: Settings,
    engine: Engine,
    account: AccountSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    reporter: Reporter | None = None,
) -> AccountSync:
    from archiver.sources.local_storage import attach as attach_local_storage

    sync = AccountSync(
        settings,
        engine,
        account,
        build_destinations(settings),
        transport=transport,
        reporter=reporter,
        processor=_processor(settings),
    )
    attach_local_storage(sync)
    return sync


def _processor(settings: Settings) -> object:
    """Always present: even with every option off, USB clips (no Blink thumbnail) get a generated one.
    ffmpeg is only looked up when a job needs it."""
    from archiver.media.processor import MediaProcessor

    return MediaProcessor(settings.processing)


async def sync_all(
    settings: Settings,
    engine: Engine,
    *,
    accounts: list[str] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    reporter_factory: Callable[[str], Reporter] | None = None,
    rescan_from: datetime | None = None,
) -> list[SyncReport]:
    from archiver.db.lease import account_lease

    reports: list[SyncReport] = []
    for account in settings.account_list():
        if accounts and account.name not in accounts:
            continue
        with account_lease(engine, account.name) as held:
            if not held:
                reports.append(SyncReport(account=account.name, skipped_lease=True))
                continue
            sync = make_account_sync(
                settings,
                engine,
                account,
                transport=transport,
                reporter=reporter_factory(account.name) if reporter_factory else None,
            )
            sync.rescan_from = rescan_from
            try:
                reports.append(await sync.run())
            finally:
                await sync.aclose()
    if reports and settings.retention.configured and settings.retention.prune_after_sync:
        from archiver.maintenance import run_prune

        pruned = await asyncio.to_thread(run_prune, settings, engine)
        reports[0].pruned = pruned.pruned
        reports[0].errors.extend(f"prune: {e}" for e in pruned.errors)
    return reports
