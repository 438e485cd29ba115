"""Request pacing that finds Blink's real limit, and a transfer count that follows the link.

:class:`RateLimiter` spaces request *starts* (all tasks share one instance) inside ``[floor, maximum]``
and learns from 429 answers, additive-increase / multiplicative-decrease with a memory:

- **429**: every caller pauses for the server's ``Retry-After`` (5 s when it names none). The rate at
  which it happened is remembered as the *ceiling*: the pace at the time, or, when fewer requests
  succeeded in the second before, that count (a server that allows 4/s lets about 4 through in a
  second). The pace drops just under the ceiling (``margin``). A second 429 soon after the first means
  the estimate was too high: the pace halves, as in classic AIMD. 429s of requests that started before
  the last drop belong to the same episode and count once.
- **Recovery**: while no 429 comes, the pace climbs back towards ``margin x ceiling`` in halving steps
  (each step covers half the remaining gap, once per ``step_s``); after ``calm_s`` without a 429 it
  probes above: 1 % per step up to the ceiling, then in growing steps, the ceiling moving up with it
  (the limit was raised). Each probe that meets a 429 again doubles ``calm_s``.
- **Memory**: :meth:`learned` / :meth:`restore` carry the pace and ceiling from one run to the next
  (the database keeps them per account), so a CronJob starts where the last run ended instead of
  rediscovering the limit with a burst of 429s.

``maximum == 0`` means "no limit configured": requests are not paced until the first 429, then the
limiter paces like above (with no upper bound but the learned ceiling).

:class:`TransferGate` bounds concurrent transfers. It starts at the configured count and adds a slot
each time a finished transfer moved its bytes about as fast as the fastest one seen (the link is not
shared out yet), and removes one when transfers slow to under half that speed (the link is full and
they are splitting it). The request pace still bounds how often any of them starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from pydantic import BaseModel

DEFAULT_PAUSE_S = 5.0  # a 429 without Retry-After


class LearnedRate(BaseModel):
    """What one run learned about an account's limit (persisted between runs)."""

    rate: float  # requests/s to start the next run with
    ceiling: float  # requests/s at which Blink last answered 429
    updated_at: datetime | None = None


class RateLimiter:
    """Paces request starts; learns the server's limit from 429s (see the module docstring)."""

    def __init__(
        self,
        maximum: float,
        *,
        floor: float = 0.2,
        margin: float = 0.9,
        step_s: float = 1.0,
        calm_s: float = 30.0,
        probe: float = 0.01,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.maximum = maximum if maximum > 0 else math.inf
        self.floor = min(floor, self.maximum)
        self.margin = margin
        self.step_s = step_s
        self.calm_s = calm_s  # grows each time a probe above the ceiling meets a 429
        self.probe = probe
        self.rate = self.maximum  # inf: not paced
        self.ceiling: float | None = None
        self.drops = 0
        self._clock = clock
        self._next = 0.0
        self._lock = asyncio.Lock()
        self._starts: deque[float] = deque()  # start times of recent requests (minus those throttled)
        self._last_drop = -math.inf
        self._last_step = clock()
        self._since_drop = 0  # successes since the last drop
        self._probe_steps = 0  # probes above the target since the last drop: each one a bigger step
        self._delayed = False

    # -- pacing ----------------------------------------------------------------------------------------
    @property
    def interval(self) -> float:
        return 0.0 if math.isinf(self.rate) else 1.0 / self.rate

    async def acquire(self) -> float:
        """Wait for this request's turn; returns its start time (pass it back to ok()/throttled())."""
        async with self._lock:
            self._delayed = False
            while (wait := self._next - self._clock()) > 0:  # again if a 429 paused everyone meanwhile
                self._delayed = True
                await asyncio.sleep(wait)
            now = self._clock()
            self._next = now + self.interval
            self._starts.append(now)
            while self._starts and self._starts[0] < now - 2.0:
                self._starts.popleft()
            return now

    @property
    def bound(self) -> bool:
        """True when the last request had to wait for its turn (the pace, not the link, is the limit)."""
        return self._delayed

    def pause(self, seconds: float) -> None:
        """Hold every caller for ``seconds`` from now."""
        self._next = max(self._next, self._clock() + seconds)

    # -- learning --------------------------------------------------------------------------------------
    def ok(self, started: float) -> None:
        """A request that started at ``started`` was not throttled."""
        self._since_drop += 1
        self._recover()

    def throttled(self, started: float, retry_after: float | None) -> None:
        """A request that started at ``started`` got a 429."""
        now = self._clock()
        self.pause(retry_after if retry_after is not None else DEFAULT_PAUSE_S)
        with contextlib.suppress(ValueError):
            self._starts.remove(started)  # it did not count against the server's limit
        if started < self._last_drop:
            return  # sent at the old pace: this episode was already answered
        # what the server let through in the second before (answered or still in flight)
        recent = sum(1 for t in self._starts if started - 1.0 <= t < started)
        soon = self._since_drop < 10 or now - self._last_drop < self.calm_s
        if self.ceiling is not None and self.rate > self.margin * self.ceiling:
            self.calm_s = min(600.0, self.calm_s * 2)  # probing found the limit again: probe less often
        at = self._finite(self.rate)
        if recent >= 1:
            at = min(at, float(recent))
        if self.drops and soon and self.ceiling is not None:
            # the last estimate was too high: halve, and remember the lower point
            self.ceiling = min(self.ceiling, max(at, self.floor))
            self.rate = max(self.floor, self._finite(self.rate) / 2)
        else:
            self.ceiling = max(at, self.floor)
            self.rate = max(self.floor, min(self.maximum, self.margin * self.ceiling))
        self.drops += 1
        self._last_drop = now
        self._last_step = now
        self._since_drop = 0
        self._probe_steps = 0

    def _finite(self, rate: float) -> float:
        """The pace as a number: when unpaced, what the recent successes show (at least the floor)."""
        if not math.isinf(rate):
            return rate
        now = self._clock()
        return max(self.floor, float(sum(1 for t in self._starts if t >= now - 1.0)))

    def _recover(self) -> None:
        if self.ceiling is None:
            return
        now = self._clock()
        if now - self._last_step < self.step_s:
            return
        self._last_step = now
        target = min(self.maximum, self.margin * self.ceiling)
        if self.rate < target:
            self.rate = min(target, self.rate + max((target - self.rate) / 2, 0.05 * target))
        elif now - self._last_drop >= self.calm_s and self.rate < self.maximum:
            # calm for a while: probe above the target. Up to the remembered ceiling in small steps (a
            # 429 there is likely); past it without a 429 the limit has risen, so in growing steps (up
            # to 10 %), and the ceiling moves up with the pace
            if self.rate < self.ceiling:
                step = self.probe
            else:
                step = min(0.1, self.probe * 2**self._probe_steps)
                self._probe_steps += 1
            self.rate = min(self.maximum, self.rate * (1 + step))
            self.ceiling = max(self.ceiling, self.rate)

    # -- memory ----------------------------------------------------------------------------------------
    def learned(self) -> LearnedRate | None:
        """What to persist: None while no 429 was ever seen (nothing learned)."""
        if self.ceiling is None or math.isinf(self.rate):
            return None
        return LearnedRate(rate=self.rate, ceiling=self.ceiling)

    def restore(self, learned: LearnedRate | None) -> None:
        """Start from an earlier run's pace (never above today's maximum, never below the floor)."""
        if learned is None or learned.ceiling <= 0 or learned.rate <= 0:
            return
        self.ceiling = learned.ceiling
        self.rate = max(self.floor, min(self.maximum, learned.rate))
        self._last_step = self._last_drop = self._clock()  # calm first, then probe


class TransferGate:
    """How many transfers run at once, following the link (see the module docstring)."""

    def __init__(self, start: int, maximum: int, *, minimum: int = 1, min_bytes: int = 64 * 1024) -> None:
        self.maximum = max(1, maximum)
        self.minimum = max(1, min(minimum, self.maximum))
        self.limit = max(self.minimum, min(start, self.maximum))
        self.min_bytes = min_bytes
        self.active = 0
        self.peak = self.limit
        self.best = 0.0  # fastest bytes/s of one transfer so far
        self._cond: asyncio.Condition | None = None
        self._waiting = 0
        self._held: dict[asyncio.Task[object] | None, float] = {}

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one transfer slot; how long it was held is kept for :meth:`observe_last`."""
        cond = self._condition()
        async with cond:
            self._waiting += 1
            try:
                await cond.wait_for(lambda: self.active < self.limit)
            finally:
                self._waiting -= 1
            self.active += 1
        began = time.monotonic()
        try:
            yield
        finally:
            self._held[asyncio.current_task()] = time.monotonic() - began
            async with cond:
                self.active -= 1
                cond.notify_all()

    def observe_last(self, nbytes: int, pace_bound: bool = False) -> None:
        """The slot this task just released moved ``nbytes``."""
        held = self._held.pop(asyncio.current_task(), None)
        if held is not None:
            self.observe(nbytes, held, pace_bound)

    def observe(self, nbytes: int, seconds: float, pace_bound: bool = False) -> None:
        """One finished transfer: ``nbytes`` in ``seconds`` (slot taken → released)."""
        if nbytes < self.min_bytes or seconds <= 0:
            return
        speed = nbytes / seconds
        self.best = max(self.best, speed)
        wanted = self._waiting > 0 or self.active >= self.limit - 1  # every slot in use
        if speed >= 0.7 * self.best and not pace_bound and wanted:
            self.limit = min(self.maximum, self.limit + 1)  # full and still as fast: room for one more
        elif speed < 0.5 * self.best:
            self.limit = max(self.minimum, self.limit - 1)  # transfers are sharing the link
        self.peak = max(self.peak, self.limit)
        # waiters re-check the new limit when a slot is released (every release notifies)
