"""Notifications through Apprise (optional dependency): failing accounts, PIN needed, daily summary.

One notification per failure streak: an account that keeps failing for longer than ``failing_for`` is
reported once; the next notification comes only after a good sync ended the streak and a new streak
lasted long enough. Every text goes through the log redactor, so no password or token leaves the process.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from archiver.blink.credentials import login_hint
from archiver.config import NotifySettings, parse_duration
from archiver.errors import AuthError, EdgeBlocked
from archiver.logs import REDACTOR

if TYPE_CHECKING:
    from archiver.sources.base import CursorRepair

log = logging.getLogger("archiver.notify")


def needs_login(exc: BaseException | None) -> bool:
    """A PIN / fresh login is needed: only a person can fix this, so say so at once. The error says
    so itself (``AuthError.login_required``); a refused refresh or an edge block does not: the token is
    kept and a later run tries again (a long streak is reported as failing)."""
    return isinstance(exc, AuthError) and exc.login_required


class Notifier:
    """Sends through Apprise; a no-op (logged once) when no URL is configured or Apprise is missing."""

    def __init__(self, settings: NotifySettings) -> None:
        self._apprise = None
        urls = [u.get_secret_value() for u in settings.urls if u.get_secret_value()]
        REDACTOR.add(*urls)
        if not urls:
            return
        try:
            import apprise
        except ImportError:
            log.warning(
                "notify: apprise is not installed (pip install 'blink-archiver[notify]'); "
                "notifications are off"
            )
            return
        ap = apprise.Apprise()
        for url in urls:
            if not ap.add(url):
                log.warning("notify: one notification URL is not understood by apprise; skipped")
        self._apprise = ap if len(ap) else None

    @property
    def enabled(self) -> bool:
        return self._apprise is not None

    def send(self, title: str, body: str) -> bool:
        if self._apprise is None:
            return False
        title, body = REDACTOR.scrub(title), REDACTOR.scrub(body)
        try:
            ok = bool(self._apprise.notify(title=title, body=body))
        except Exception as exc:  # a notification problem must never stop the worker
            log.warning("notify: sending failed: %s", REDACTOR.scrub(str(exc)))
            return False
        if not ok:
            log.warning("notify: apprise could not deliver %r", title)
        else:
            log.info("notify: sent %r", title)
        return ok


@dataclass
class _Streak:
    failing_since: float | None = None  # time.time() at the start of the first failed run
    failures: int = 0
    notified: bool = False
    login_notified: bool = False
    edge_notified: bool = False


@dataclass
class _Totals:
    stored: int = 0
    bytes: int = 0
    failed: int = 0
    failed_runs: int = 0
    runs: int = 0


@dataclass
class AlertTracker:
    """Decides what to send after each run (failure streaks, recoveries) and sends it through ``notifier``;
    thread-safe."""

    notifier: Notifier
    failing_for: timedelta
    _streaks: dict[str, _Streak] = field(default_factory=dict)
    _totals: dict[str, _Totals] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_settings(cls, settings: NotifySettings, notifier: Notifier | None = None) -> AlertTracker:
        return cls(notifier or Notifier(settings), parse_duration(settings.failing_for))

    def failing_since(self, account: str) -> float | None:
        with self._lock:
            st = self._streaks.get(account)
            return st.failing_since if st else None

    def record(
        self,
        account: str,
        ok: bool,
        *,
        started: float,
        message: str = "",
        error: BaseException | None = None,
        stored: int = 0,
        bytes_: int = 0,
        failed: int = 0,
        cursor_repair: CursorRepair | None = None,
        now: float | None = None,
    ) -> list[tuple[str, str]]:
        """Update the account's streak with one run's outcome; send (and return) the notifications due.
        A listing cursor the run found in the future (``cursor_repair``) is said once, with that run."""
        now = time.time() if now is None else now
        out: list[tuple[str, str]] = []
        if cursor_repair is not None:
            out.append(
                (
                    f"blink-archiver: account {account}: the listing cursor was in the future",
                    f"{cursor_repair.note()}. Blink's clock (or a proxy's) was wrong; clips of that time "
                    "are listed again now. Check `archiver status` after the next sync.",
                )
            )
        with self._lock:
            tot = self._totals.setdefault(account, _Totals())
            tot.runs += 1
            tot.stored += stored
            tot.bytes += bytes_
            tot.failed += failed
            st = self._streaks.setdefault(account, _Streak())
            if ok:
                if st.notified:
                    out.append(
                        (
                            f"blink-archiver: account {account} recovered",
                            f"Syncs of account {account} succeed again after {st.failures} failed run(s).",
                        )
                    )
                self._streaks[account] = _Streak()
            else:
                tot.failed_runs += 1
                st.failures += 1
                if st.failing_since is None:
                    st.failing_since = started
                if needs_login(error) and not st.login_notified:
                    st.login_notified = True
                    out.append(
                        (
                            f"blink-archiver: account {account} needs `archiver login`",
                            f"Blink wants a new login for account {account} "
                            f"(2FA PIN or expired session); its syncs do not sign in again until you "
                            f"run `{login_hint(account)}`. Last error: {message}",
                        )
                    )
                elif isinstance(error, EdgeBlocked) and not st.edge_notified:
                    st.edge_notified = True  # said once per streak: the back-off's later ticks are quiet
                    out.append(
                        (
                            f"blink-archiver: account {account}: Blink's edge refused the sign-in",
                            f"{message} The archiver waits before it tries again (15 minutes, doubling up "
                            f"to a day); nothing is needed from you unless it keeps happening. "
                            f"`{login_hint(account)}` tries at once.",
                        )
                    )
                elif not st.notified and now - st.failing_since >= self.failing_for.total_seconds():
                    st.notified = True
                    minutes = (now - st.failing_since) / 60
                    out.append(
                        (
                            f"blink-archiver: account {account} is failing",
                            f"Syncs of account {account} have failed for {minutes:.1f} min "
                            f"({st.failures} run(s)). Last error: {message}",
                        )
                    )
                if st.login_notified or st.edge_notified:
                    st.notified = True  # the login message already told the story for this streak
        for title, body in out:
            self.notifier.send(title, body)
        return out

    def daily_summary(self) -> tuple[str, str] | None:
        with self._lock:
            totals, self._totals = self._totals, {}
        if not totals:
            return None
        lines = [
            f"{name}: {t.stored} clip(s) archived, {t.bytes / 1e6:.1f} MB, {t.failed} clip failure(s), "
            f"{t.failed_runs} of {t.runs} run(s) failed"
            for name, t in sorted(totals.items())
        ]
        msg = ("blink-archiver: daily summary", "\n".join(lines))
        self.notifier.send(*msg)
        return msg
