"""Refresh once per token life, over HTTP against the simulator: the margin scales with the token's
lifetime, requests due together share one refresh, and a token is never refreshed again within the first
half of its life. Time is a controllable clock shared by the archiver and the simulator (no waiting)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import make_settings

from archiver.blink.api import BlinkAPI
from archiver.blink.auth import Authenticator
from archiver.blink.credentials import REFRESH_MARGIN, Credentials, PendingSignIn, new_hardware_id
from archiver.blink.http import BlinkHTTP
from archiver.errors import RefreshRefused
from archiver.simulator import SimConfig, Simulator


class Clock:
    """Seconds since the epoch that move only when told (or per request the simulator sees)."""

    def __init__(self) -> None:
        self.t = time.time()
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self.t

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.t += seconds


class MemoryStore:
    account = "default"

    def __init__(self) -> None:
        self.saved: list[Credentials] = []

    def save(self, creds: Credentials) -> None:
        self.saved.append(creds)

    def save_pending(self, pending: PendingSignIn | None) -> None:
        pass

    def load_pending(self) -> PendingSignIn | None:
        return None


@pytest.fixture
def sim() -> Simulator:  # type: ignore[misc]
    with Simulator(SimConfig(two_factor=False, token_ttl_s=50)) as s:
        yield s  # type: ignore[misc]


@asynccontextmanager
async def client(
    tmp_path: Path, sim: Simulator, clock: Clock
) -> AsyncIterator[tuple[BlinkAPI, Authenticator]]:
    settings = make_settings(tmp_path, sim)
    sim.state.clock = clock.time
    http = BlinkHTTP(settings.blink, limits=settings.limits)
    auth = Authenticator(
        http, settings.blink, Credentials(hardware_id=new_hardware_id()), MemoryStore(), clock=clock.now
    )
    try:
        await auth.login(sim.config.username, sim.config.password, None)
        yield BlinkAPI(http, auth), auth
    finally:
        await http.aclose()


def test_fifty_second_tokens_sixty_requests_at_most_three_refreshes(tmp_path: Path, sim: Simulator) -> None:
    """The re-test's storm: 60 requests over 67 s with 50 s tokens caused 66 refreshes."""
    clock = Clock()
    sim.on_request = lambda method, path: clock.advance(1.1)  # every request takes 1.1 s of the clock

    async def go() -> None:
        async with client(tmp_path, sim, clock) as (api, _auth):
            started = clock.time()
            for _ in range(60):
                await api.homescreen()
            assert clock.time() - started >= 66  # the token expired (and was renewed) on the way

    asyncio.run(go())
    assert 1 <= sim.refresh_count <= 3, sim.refresh_count
    assert sim.request_count("/homescreen") == 60  # no request failed and was repeated


def test_requests_that_find_the_token_due_together_share_one_refresh(tmp_path: Path, sim: Simulator) -> None:
    clock = Clock()

    async def go() -> None:
        async with client(tmp_path, sim, clock) as (api, _auth):
            clock.advance(46)  # inside the 5 s margin of the 50 s token
            await asyncio.gather(*(api.homescreen() for _ in range(20)))

    asyncio.run(go())
    assert sim.refresh_count == 1


def test_a_young_token_blink_rejects_is_not_refreshed_again(tmp_path: Path, sim: Simulator) -> None:
    clock = Clock()

    async def go() -> None:
        async with client(tmp_path, sim, clock) as (api, auth):
            clock.advance(46)
            await api.homescreen()  # renewed: a fresh token
            assert sim.refresh_count == 1 and auth.creds.young(clock.now())
            sim.expire_tokens()  # Blink rejects it at once
            with pytest.raises(RefreshRefused) as err:
                await asyncio.gather(*(api.homescreen() for _ in range(5)))
            assert err.value.exit_code == 1 and "first half of its life" in str(err.value)
            assert sim.refresh_count == 1
            clock.advance(26)  # past its half-life: a 401 is answered with one refresh again
            await api.homescreen()
            assert sim.refresh_count == 2

    asyncio.run(go())


def test_the_margin_is_a_tenth_of_the_lifetime_at_most_a_minute() -> None:
    now = datetime.now(UTC)

    def creds(life_s: float) -> Credentials:
        return Credentials(
            hardware_id="HW",
            access_token="t",
            account_id=1,
            issued_at=now,
            expires_at=now + timedelta(seconds=life_s),
        )

    assert creds(50).margin() == timedelta(seconds=5)
    assert creds(14400).margin() == REFRESH_MARGIN
    assert creds(50).valid(now + timedelta(seconds=44)) and not creds(50).valid(now + timedelta(seconds=45.5))
    assert creds(50).young(now + timedelta(seconds=24)) and not creds(50).young(now + timedelta(seconds=25))
    # read back from the database: the lifetime is unknown, the whole minute applies, never "young"
    stored = Credentials(
        hardware_id="HW", access_token="t", account_id=1, expires_at=now + timedelta(seconds=90)
    )
    assert stored.margin() == REFRESH_MARGIN and not stored.young(now)
