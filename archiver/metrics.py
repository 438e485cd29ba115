"""Prometheus metrics (own registry) and the readiness check behind /readyz (served by archiver.web).

Everything is labelled by account. Run counters are fed by the worker after each sync; the clip backlog
and the cursor lag are read from the database at scrape time; ``blink_request_seconds`` is fed by the
worker's httpx event hooks on each Blink client (``blink.http.metrics_hooks``; the account comes
from a context variable the worker sets per sync).
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.engine import Engine

log = logging.getLogger("archiver.metrics")

CURRENT_ACCOUNT: contextvars.ContextVar[str] = contextvars.ContextVar("archiver_account", default="unknown")

_DIGITS = re.compile(r"\d+")


def request_label(what: str) -> str:
    """Keep the ``what`` label's cardinality bounded: ids and page numbers become ``N``."""
    return _DIGITS.sub("N", what)[:60]


class DatabaseCollector(Collector):
    """clips_pending{account,state} and cursor_lag_seconds{account}, read at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from sqlmodel import select

        from archiver.db import repo
        from archiver.db.engine import session_scope
        from archiver.db.models import Account

        pending = GaugeMetricFamily(
            "archiver_clips_pending", "Clips not yet stored, by state", labels=["account", "state"]
        )
        lag = GaugeMetricFamily(
            "archiver_cursor_lag_seconds", "Now minus the account's cloud listing cursor", labels=["account"]
        )
        ahead = GaugeMetricFamily(  # > 0: the cursor is in the future (the next sync repairs it)
            "archiver_cursor_ahead_seconds",
            "How far the cloud listing cursor is ahead of the local clock (0 = not ahead)",
            labels=["account"],
        )
        try:
            now = datetime.now(UTC)
            with session_scope(self.engine) as s:
                for acct in s.exec(select(Account)).all():
                    assert acct.id is not None
                    counts = repo.state_counts(s, acct.id)
                    for state in repo.PENDING_STATES:
                        n = sum(v for (_src, st), v in counts.items() if st == state.value)
                        pending.add_metric([acct.name, state.value], n)
                    cur = repo.get_cursor(s, acct.id)
                    if cur is not None:
                        lag.add_metric([acct.name], max(0.0, (now - cur.since).total_seconds()))
                        ahead.add_metric([acct.name], max(0.0, (cur.since - now).total_seconds()))
        except Exception as exc:  # a scrape must not fail because the database hiccups
            log.warning("metrics: database gauges unavailable: %s", exc)
        yield pending
        yield lag
        yield ahead


class SilenceCollector(Collector):
    """``archiver_silence_alerts{account,kind,name}`` = 1 per open alert, read at scrape time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from sqlmodel import select

        from archiver.db.engine import session_scope
        from archiver.db.models import Account, SilenceAlert

        family = GaugeMetricFamily(
            "archiver_silence_alerts",
            "Open silence-watch alerts (camera silent, Sync Module offline, USB storage inactive)",
            labels=["account", "kind", "name"],
        )
        try:
            with session_scope(self.engine) as s:
                names = {a.id: a.name for a in s.exec(select(Account))}
                for r in s.exec(select(SilenceAlert)):
                    family.add_metric([names.get(r.account_id, "?"), r.kind, r.name], 1.0)
        except Exception as exc:  # a scrape never fails on the database
            log.debug("silence metrics unavailable: %s", exc)
        yield family


class Metrics:
    def __init__(self, engine: Engine | None = None) -> None:
        self.registry = CollectorRegistry()
        r, acc = self.registry, ["account"]
        self.clips_listed = Counter("archiver_clips_listed", "Clips seen in listings", acc, registry=r)
        self.clips_new = Counter("archiver_clips_new", "Newly discovered clips", acc, registry=r)
        self.clips_stored = Counter("archiver_clips_stored", "Clips downloaded and stored", acc, registry=r)
        self.clips_failed = Counter("archiver_clips_failed", "Clip attempts that failed", acc, registry=r)
        self.bytes_stored = Counter("archiver_bytes_stored", "Bytes stored", acc, registry=r)
        self.throttled = Counter("archiver_blink_throttled", "HTTP 429 answers from Blink", acc, registry=r)
        self.cursor_repairs = Counter(
            "archiver_cursor_repairs", "Listing cursors found in the future and moved back", acc, registry=r
        )
        self.syncs = Counter(
            "archiver_syncs",
            "Sync runs by result (ok, failed, error, skipped)",
            ["account", "result"],
            registry=r,
        )
        self.last_success = Gauge(
            "archiver_last_success_timestamp_seconds", "End of the last good sync", acc, registry=r
        )
        self.last_duration = Gauge(
            "archiver_last_run_duration_seconds", "Duration of the last sync", acc, registry=r
        )
        self.requests = Histogram(
            "archiver_blink_request_seconds",
            "Blink request latency (to response headers)",
            ["account", "what", "status"],
            registry=r,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        if engine is not None:
            r.register(DatabaseCollector(engine))
            r.register(SilenceCollector(engine))  # archiver_silence_alerts (archiver.silence)

    def observe_request(self, what: str, status: int, seconds: float) -> None:
        """Called by the httpx event hooks of the worker's Blink clients (``blink.http.metrics_hooks``)."""
        self.requests.labels(CURRENT_ACCOUNT.get(), request_label(what), str(status)).observe(seconds)

    def record_sync(self, report: Any, result: str) -> None:
        """Count one run; ``report`` is a SyncReport or None (the run raised before reporting)."""
        account = report.account if report is not None else CURRENT_ACCOUNT.get()
        self.syncs.labels(account, result).inc()
        if report is None or report.skipped_lease:
            return
        self.clips_listed.labels(account).inc(report.listed)
        self.clips_new.labels(account).inc(report.new)
        self.clips_stored.labels(account).inc(report.stored)
        self.clips_failed.labels(account).inc(report.failed)
        self.bytes_stored.labels(account).inc(report.bytes)
        self.throttled.labels(account).inc(report.throttled)
        if report.cursor_repair is not None:
            self.cursor_repairs.labels(account).inc()
        self.last_duration.labels(account).set(report.duration_s)
        if result == "ok":
            self.last_success.labels(account).set_to_current_time()

    def render(self) -> bytes:
        return generate_latest(self.registry)


ReadyCheck = Callable[[], tuple[bool, str]]


def database_ready(engine: Engine, timeout_s: float = 3.0) -> tuple[bool, str]:
    """``SELECT 1`` within ``timeout_s`` (a hung connection attempt must not hang the probe)."""

    def ping() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    pool = ThreadPoolExecutor(max_workers=1)
    try:
        pool.submit(ping).result(timeout=timeout_s)
        return True, "ok"
    except FutureTimeout:
        return False, f"database did not answer within {timeout_s:g} s"
    except Exception as exc:
        return False, f"database unavailable: {type(exc).__name__}"
    finally:
        pool.shutdown(wait=False)
