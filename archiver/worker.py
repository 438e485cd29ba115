"""`archiver run`: a long-running worker. APScheduler (asyncio) drives sync, prune and verify jobs; a
daemon thread serves the web UI, /healthz, /readyz and /metrics (archiver.web on uvicorn); Apprise
tells a person when an account keeps failing.

Stopping (SIGTERM/SIGINT): no new jobs start, the sync in flight is cancelled (staging files are
cleaned and a clip is only marked stored once durable, so this is safe), the account lease is released
by its context manager, and the process exits 0 well within a Kubernetes grace period.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import Engine

from archiver import last_sync
from archiver.blink.credentials import login_hint
from archiver.blink.http import metrics_hooks
from archiver.config import Settings, parse_duration
from archiver.db.repo import login_needed, signin_blocked
from archiver.errors import ArchiverError, describe
from archiver.logs import REDACTOR
from archiver.metrics import CURRENT_ACCOUNT, Metrics, database_ready
from archiver.notify import AlertTracker, Notifier, needs_login
from archiver.util import aio, one_line

if TYPE_CHECKING:
    from archiver.db.models import Account
    from archiver.homeassistant.bridge import HomeAssistant
    from archiver.pipeline.report import Reporter, SyncReport
    from archiver.retention import PruneReport
    from archiver.verify import VerifyReport
    from archiver.web.server import WebServer

log = logging.getLogger("archiver.worker")

MIN_SYNC_GAP_S = 59.0  # never start syncs more often than once a minute (cron + the immediate first run)
STOP_GRACE_S = 8.0  # how long a cancelled job may take to unwind before we give up waiting


def _one_line(text: str) -> str:
    return REDACTOR.scrub(one_line(text, 300))


def sync_trigger(settings: Settings) -> IntervalTrigger | CronTrigger:
    if settings.schedule.cron:
        return CronTrigger.from_crontab(settings.schedule.cron)
    seconds = max(60.0, parse_duration(settings.schedule.interval).total_seconds())
    return IntervalTrigger(seconds=seconds)


class Worker:
    def __init__(self, settings: Settings, engine: Engine, *, transport: Any = None) -> None:
        self.settings = settings
        self.engine = engine
        self.transport = transport  # tests can route Blink traffic through an httpx transport
        self.metrics = Metrics(engine)
        # every Blink client this worker makes reports its requests to the metrics (httpx event hooks)
        self.http_hooks = metrics_hooks(self.metrics.observe_request)
        self.alerts = AlertTracker.from_settings(settings.notify, Notifier(settings.notify))
        self.unhealthy_after = parse_duration(settings.server.unhealthy_after)
        self.server: WebServer | None = None
        self._sync_started: float | None = None  # wall time the sync in flight started
        self._login_needed: dict[str, str] = {}  # account -> the error that asked for a new login
        self.scheduler: AsyncIOScheduler | None = None
        self._stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_sync_start: float | None = None
        self._lock = threading.Lock()
        self.stopping = False
        self.ha: HomeAssistant | None = None  # [mqtt]: Home Assistant discovery, events, "sync now"

    # -- readiness -------------------------------------------------------------------------------------
    def ready(self) -> tuple[bool, str]:
        ok, reason = database_ready(self.engine)
        if not ok:
            return False, reason
        limit = self.unhealthy_after.total_seconds()
        now = time.time()
        running = self._sync_started
        if running is not None and now - running > limit:
            return False, f"a sync has been running for {(now - running) / 60:.0f} min"
        for acct in self.settings.account_list():
            if (reason := login_needed(self.engine, acct.name)) is not None:
                return False, f"account {acct.name}: login needed: {reason}"
            if (blocked := signin_blocked(self.engine, acct.name)) is not None:
                return False, f"account {acct.name}: {blocked}"
            since = self.alerts.failing_since(acct.name)
            if since is not None and now - since > limit:
                return False, f"account {acct.name}: syncs failing for {(now - since) / 60:.0f} min"
        return True, "ok"

    # -- jobs ------------------------------------------------------------------------------------------
    def _track(self) -> asyncio.Task[Any] | None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return task

    async def sync_job(self) -> None:
        if self.stopping:
            return
        now = time.monotonic()
        if self._last_sync_start is not None and now - self._last_sync_start < MIN_SYNC_GAP_S:
            log.info(
                "sync skipped: the previous one started %.0f s ago (at most one a minute)",
                now - self._last_sync_start,
            )
            return
        self._last_sync_start = now
        self._track()
        self._sync_started = time.time()
        try:
            for account in self.settings.account_list():
                if self.stopping:
                    break
                await self.sync_account(account.name)
            if (
                not self.stopping
            ):  # which camera went quiet (archiver.silence): raised once, cleared by a clip
                await self._silence_check()
            retention = self.settings.retention
            if not self.stopping and retention.configured and retention.prune_after_sync:
                try:  # once per tick, under the job:prune lease
                    await self._after_prune(await asyncio.to_thread(self.prune_once))
                except Exception as exc:  # prune trouble never stops the worker
                    log.warning("prune after sync failed: %s", _one_line(str(exc)))
            if not self.stopping and self.settings.summaries.daily:  # never fails the sync
                from archiver.summaries import run_summaries

                await asyncio.to_thread(run_summaries, self.settings, self.engine)
        except asyncio.CancelledError:
            if not self.stopping:
                raise  # not our doing
        finally:
            self._sync_started = None

    async def _silence_check(self) -> None:
        from archiver.silence import check

        try:
            report = await asyncio.to_thread(check, self.engine, self.settings.silence, self.alerts.notifier)
            if self.ha is not None and (report.raised or report.cleared):  # HA's "<camera> silent" follows
                await self.ha.publish_states()
        except Exception as exc:  # the watch never stops the worker
            log.warning("silence watch failed: %s", _one_line(str(exc)))

    def login_needed(self, account: Account) -> str | None:
        """For the web UI's status page: what the database says, or the last sync's login error."""
        from archiver.web.queries import login_needed

        return login_needed(account) or self._login_needed.get(account.name)

    async def sync_account(self, name: str) -> None:
        token = CURRENT_ACCOUNT.set(name)
        started_wall, started = time.time(), time.monotonic()
        log.info("sync start account=%s", name)
        try:
            reports = await self._sync_all(name)  # sync_all runs the preflight first
        except asyncio.CancelledError:
            log.info("sync cancelled account=%s (stopping)", name)
            raise
        except ArchiverError as exc:
            msg = _one_line(str(exc))
            log.error("sync failed account=%s: %s", name, msg)
            if needs_login(exc):
                hint = login_hint(name)
                self._login_needed[name] = msg if hint in msg else f"{msg} (run `{hint}`)"
            self.metrics.record_sync(None, "error")
            self.metrics.last_duration.labels(name).set(time.monotonic() - started)
            last_sync.record(self.settings.data_dir, {name: last_sync.of_error(msg, exc.exit_code)})
            await asyncio.to_thread(
                self.alerts.record, name, False, started=started_wall, message=msg, error=exc
            )
            return
        except Exception as exc:  # a bug: keep the worker alive, count it as a failure
            known = describe(exc)  # a database or network failure: one line, no traceback
            msg = (
                _one_line(str(known)) if known else f"unexpected {type(exc).__name__}: {_one_line(str(exc))}"
            )
            if known is not None:
                log.error("sync failed account=%s: %s", name, msg)
            else:
                log.exception("sync crashed account=%s", name)
            self.metrics.record_sync(None, "error")
            last_sync.record(self.settings.data_dir, {name: last_sync.of_error(msg, 1)})
            await asyncio.to_thread(self.alerts.record, name, False, started=started_wall, message=msg)
            return
        finally:
            CURRENT_ACCOUNT.reset(token)
        self._login_needed.pop(name, None)
        last_sync.record(self.settings.data_dir, {r.account: last_sync.of_report(r) for r in reports})
        for r in reports:
            if r.skipped_lease:
                log.info("sync skipped account=%s: another run holds the lease", r.account)
                self.metrics.record_sync(r, "skipped")
                continue
            result = "ok" if r.exit_code == 0 else "failed"
            self.metrics.record_sync(r, result)
            problems = [_one_line(e) for e in r.errors] + [_one_line(e) for e in r.clip_errors[:3]]
            log.log(
                logging.INFO if result == "ok" else logging.WARNING,
                "sync done account=%s result=%s listed=%d new=%d stored=%d failed=%d bytes=%d requests=%d "
                "throttled=%d duration_s=%.1f%s",
                r.account,
                result,
                r.listed,
                r.new,
                r.stored,
                r.failed,
                r.bytes,
                r.requests,
                r.throttled,
                r.duration_s,
                f" errors={'; '.join(problems)}" if problems else "",
            )
            await asyncio.to_thread(
                self.alerts.record,
                r.account,
                result == "ok",
                started=started_wall,
                message="; ".join(problems),
                stored=r.stored,
                bytes_=r.bytes,
                failed=r.failed,
                cursor_repair=r.cursor_repair,
            )

    async def _sync_all(self, name: str) -> list[SyncReport]:
        from archiver.analysis.runner import with_analysis
        from archiver.pipeline.runner import sync_all

        def run(inner: Callable[[str], Reporter] | None) -> Awaitable[list[SyncReport]]:
            # stored clips are analysed beside the sync (archiver.analysis), before the states go out
            return with_analysis(
                self.settings,
                self.engine,
                lambda factory: sync_all(
                    self.settings,
                    self.engine,
                    accounts=[name],
                    transport=self.transport,
                    reporter_factory=factory,
                    http_hooks=self.http_hooks,
                ),
                inner,
            )

        if self.ha is None:
            return await run(None)
        return await self.ha.observe_sync([name], run)

    async def sync_now(self, name: str) -> None:
        """Home Assistant's "sync now" button (debounced by the bridge; the account lease still rules)."""
        if self.stopping:
            return
        self._track()
        try:
            await self.sync_account(name)
        except asyncio.CancelledError:
            if not self.stopping:
                raise

    def prune_once(self) -> PruneReport | None:
        """The retention prune under the ``job:prune`` lease (the same one `archiver sync` and `archiver
        prune` take); None when another run (or this worker's other prune path) holds it."""
        from archiver.db.lease import job_lease
        from archiver.maintenance import run_prune

        with job_lease(self.engine, "prune") as held:
            if not held:
                log.info("prune skipped: another process is pruning")
                return None
            report = run_prune(self.settings, self.engine)
        log.info("prune done clips=%s pruned=%s errors=%d", report.clips, report.pruned, len(report.errors))
        return report

    def verify_once(self) -> VerifyReport:
        from archiver.maintenance import run_verify

        report = run_verify(self.settings, self.engine, sample=self.settings.schedule.verify_sample or None)
        log.log(
            logging.INFO if report.ok else logging.WARNING,
            "verify done checked=%s ok=%s",
            report.checked,
            report.ok,
        )
        if not report.ok:
            counts = {
                "missing": len(report.missing),
                "corrupt": len(report.corrupt),
                "stray": len(report.stray),
                "errors": len(report.errors),
            }
            self.alerts.notifier.send(
                "blink-archiver: verify found problems", " ".join(f"{k}={v}" for k, v in counts.items())
            )
        return report

    async def _in_thread(self, name: str, fn: Any) -> Any:
        """Blocking jobs run in a daemon thread, so a stop never waits for them. Returns what ``fn``
        returned (None when it failed or the worker is stopping)."""
        if self.stopping:
            return None
        self._track()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()

        def target() -> None:
            result = None
            try:
                result = fn()
            except Exception:
                log.exception("%s job failed", name)
            loop.call_soon_threadsafe(lambda: fut.done() or fut.set_result(result))

        threading.Thread(target=target, name=f"job-{name}", daemon=True).start()
        try:
            return await fut
        except asyncio.CancelledError:
            if not self.stopping:
                raise
            log.info("%s job abandoned (stopping)", name)
            return None

    async def prune_job(self) -> None:
        await self._after_prune(await self._in_thread("prune", self.prune_once))

    async def _after_prune(self, report: PruneReport | None) -> None:
        """Home Assistant's "Archive size" and "Failed clips" follow a prune that deleted something."""
        if self.ha is None or report is None or not report.deleted_anything or self.stopping:
            return
        try:
            await self.ha.publish_states()
        except Exception:  # never let the HA side fail a job
            log.exception("mqtt: publishing states after the prune failed")

    async def verify_job(self) -> None:
        await self._in_thread("verify", self.verify_once)

    async def summary_job(self) -> None:
        await asyncio.to_thread(self.alerts.daily_summary)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def request_stop(self, signame: str = "stop") -> None:
        if self._stop is None or self._stop.is_set():
            return
        log.info("received %s: stopping (the sync in flight is cancelled safely)", signame)
        self.stopping = True
        self._stop.set()

    def _schedule(self, scheduler: AsyncIOScheduler) -> None:
        s = self.settings.schedule
        common: dict[str, Any] = {"max_instances": 1, "coalesce": True, "misfire_grace_time": None}
        scheduler.add_job(
            self.sync_job,
            sync_trigger(self.settings),
            id="sync",
            name="sync",
            next_run_time=datetime.now(UTC),
            **common,
        )
        if self.settings.retention.configured:
            scheduler.add_job(
                self.prune_job,
                IntervalTrigger(seconds=parse_duration(s.prune_interval).total_seconds()),
                id="prune",
                name="prune",
                **common,
            )
        if s.verify_interval:
            scheduler.add_job(
                self.verify_job,
                IntervalTrigger(seconds=parse_duration(s.verify_interval).total_seconds()),
                id="verify",
                name="verify",
                **common,
            )
        if self.settings.notify.daily_summary and self.alerts.notifier.enabled:
            scheduler.add_job(
                self.summary_job, CronTrigger(hour=0, minute=5), id="summary", name="summary", **common
            )

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with suppress(NotImplementedError, RuntimeError):  # not the main thread / Windows
                loop.add_signal_handler(sig, self.request_stop, sig.name)
        logging.getLogger("apscheduler").setLevel(logging.WARNING)  # job start/stop lines are ours
        srv = self.settings.server
        if srv.enabled:
            from archiver.web.app import create_app
            from archiver.web.server import WebServer

            app = create_app(
                self.settings,
                self.engine,
                metrics=self.metrics,
                ready=self.ready,
                login_check=self.login_needed,
            )
            self.server = WebServer(app, srv).start()
            log.info(
                "%s on %s (/healthz /readyz /metrics)",
                "web UI, health and metrics" if srv.ui else "health and metrics",
                self.server.url,
            )
        if self.settings.mqtt.enabled:
            from archiver.homeassistant.bridge import HomeAssistant

            self.ha = HomeAssistant(self.settings, self.engine, sync_now=self.sync_now)
            await self.ha.start()  # connects in the background: a broker that is down never blocks
        self.scheduler = AsyncIOScheduler(event_loop=loop, timezone=UTC)
        self._schedule(self.scheduler)
        self.scheduler.start()
        names = ",".join(a.name for a in self.settings.account_list())
        log.info(
            "worker started: accounts=%s sync=%s",
            names,
            self.settings.schedule.cron or self.settings.schedule.interval,
        )
        try:
            await self._stop.wait()
        finally:
            await self._shutdown()
        return 0

    async def _shutdown(self) -> None:
        self.stopping = True
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        tasks = [t for t in self._tasks if not t.done()]
        for t in tasks:
            t.cancel()
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
            if pending:
                log.warning(
                    "%d job(s) did not stop within %.0f s; exiting anyway", len(pending), STOP_GRACE_S
                )
        if self.ha is not None:
            await self.ha.close(offline=True)
        if self.server is not None:
            self.server.stop()
        log.info("worker stopped")


def run_worker(settings: Settings, engine: Engine) -> int:
    return aio.run(Worker(settings, engine).run())
