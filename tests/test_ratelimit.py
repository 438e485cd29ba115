"""The adaptive request pace and the transfer gate (archiver.blink.ratelimit), on a fake clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from helpers import make_settings, run_sync

from archiver.blink.ratelimit import LearnedRate, RateLimiter, TransferGate
from archiver.db import repo
from archiver.db.engine import open_database
from archiver.simulator import Simulator


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _start(limiter: RateLimiter, clock: Clock) -> float:
    """One acquire() on the fake clock (its waits advance the clock instead of sleeping)."""

    async def go() -> float:
        return await limiter.acquire()

    real = asyncio.sleep

    async def fake_sleep(seconds: float) -> None:
        clock.now += seconds
        await real(0)

    asyncio.sleep = fake_sleep  # type: ignore[assignment]
    try:
        return asyncio.run(go())
    finally:
        asyncio.sleep = real  # type: ignore[assignment]


def _run_at(
    limiter: RateLimiter, clock: Clock, seconds: float, *, throttle_above: float | None = None
) -> int:
    """Send requests one after another at the limiter's pace for ``seconds``; a server allowing
    ``throttle_above`` per sliding second answers 429 past it. Returns how many 429s came."""
    sent: list[float] = []
    throttled = 0
    end = clock.now + seconds
    while clock.now < end:
        started = _start(limiter, clock)
        window = [t for t in sent if started - 1.0 < t <= started]
        clock.now += 0.05  # the answer takes 50 ms
        if throttle_above is not None and len(window) >= throttle_above:
            throttled += 1
            limiter.throttled(started, 2.0)
        else:
            sent.append(started)
            limiter.ok(started)
    return throttled


def test_a_429_drops_the_pace_below_where_it_happened() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock=clock)
    for _ in range(4):
        limiter.ok(_start(limiter, clock))
    limiter.throttled(_start(limiter, clock), None)
    # 4 got through in the second before: that is the ceiling, the pace goes just under it
    assert limiter.ceiling == 4
    assert limiter.rate == pytest.approx(3.6)


def test_a_second_429_soon_after_halves_the_pace() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock=clock)
    limiter.throttled(clock.now, 1.0)
    first = limiter.rate
    clock.now += 1.5
    limiter.throttled(clock.now, 1.0)
    assert limiter.rate == pytest.approx(first / 2)


def test_429s_of_requests_sent_before_the_drop_count_once() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock=clock)
    early = clock.now
    clock.now += 0.1
    limiter.throttled(clock.now, 1.0)
    rate = limiter.rate
    limiter.throttled(early, 1.0)  # in flight when the first 429 came
    assert limiter.rate == rate and limiter.drops == 1


def test_the_pace_comes_back_up_step_by_step_while_no_429_comes() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock=clock)
    limiter.ceiling = 8.0
    limiter.rate = 1.0
    limiter._last_drop = clock.now
    seen = [limiter.rate]
    for _ in range(10):
        clock.now += 1.0
        limiter.ok(clock.now)
        seen.append(limiter.rate)
    assert seen == sorted(seen) and len(set(seen)) > 3  # several steps, never down
    assert seen[-1] == pytest.approx(0.9 * 8.0)  # back just under the ceiling
    # calm for long enough: it probes above, and the ceiling follows
    for _ in range(60):
        clock.now += 1.0
        limiter.ok(clock.now)
    assert limiter.rate > 0.9 * 8.0 and limiter.ceiling is not None and limiter.ceiling > 8.0


def test_the_pace_never_goes_above_the_maximum() -> None:
    clock = Clock()
    limiter = RateLimiter(5, clock=clock)
    limiter.restore(LearnedRate(rate=50, ceiling=60))
    assert limiter.rate == 5
    for _ in range(200):
        clock.now += 1.0
        limiter.ok(clock.now)
        assert limiter.rate <= 5


def test_retry_after_holds_every_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)
        clock.now += s

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    limiter = RateLimiter(0, clock=clock)  # no configured limit: not paced until a 429

    async def go() -> list[float]:
        starts = [await limiter.acquire() for _ in range(3)]
        limiter.throttled(starts[-1], 2.5)
        assert not slept
        starts += [await limiter.acquire() for _ in range(2)]
        return starts

    starts = asyncio.run(go())
    assert starts[:3] == [100.0, 100.0, 100.0]  # unpaced until the 429
    assert starts[3] - starts[2] >= 2.5  # Retry-After
    assert starts[4] - starts[3] == pytest.approx(limiter.interval)  # then the learned pace
    assert limiter.rate < float("inf")


def test_a_429_without_retry_after_pauses_five_seconds() -> None:
    clock = Clock()
    limiter = RateLimiter(2, clock=clock)
    limiter.throttled(clock.now, None)
    assert limiter._next - clock.now >= 5.0


def test_against_a_server_limit_the_pace_settles_under_it_with_few_429s() -> None:
    clock = Clock()
    limiter = RateLimiter(10, clock=clock)
    throttled = _run_at(limiter, clock, 60, throttle_above=4)
    assert throttled <= 3
    assert 3.0 <= limiter.rate <= 4.0


def test_the_learned_pace_persists_across_runs(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'a.db'}")
    account = repo.get_or_create_account(engine, "default", "u@example.com", "oauth")
    assert account.id is not None
    assert repo.learned_rate(engine, account.id) is None

    clock = Clock()
    first = RateLimiter(10, clock=clock)
    assert _run_at(first, clock, 20, throttle_above=4) >= 1
    repo.save_learned_rate(engine, account.id, first.learned())

    second = RateLimiter(10, clock=clock)
    second.restore(repo.learned_rate(engine, account.id))
    assert second.rate == pytest.approx(first.rate) and second.ceiling == first.ceiling
    assert _run_at(second, clock, 20, throttle_above=4) == 0  # starts at the learned pace: no 429

    repo.save_learned_rate(engine, account.id, RateLimiter(10).learned())  # nothing learned: kept
    kept = repo.learned_rate(engine, account.id)
    assert kept is not None and kept.ceiling == first.ceiling
    engine.dispose()


def test_transfer_gate_adds_slots_while_transfers_stay_fast_and_gives_them_back_when_they_slow() -> None:
    gate = TransferGate(2, 8)

    async def go() -> None:
        async with gate.slot(), gate.slot():
            for _ in range(10):
                gate.active = gate.limit  # the gate is full
                gate.observe(1_000_000, 0.25)
        assert gate.limit == 8  # never above the maximum
        gate.observe(1_000_000, 1.0)  # a quarter of the best speed: the link is shared
        assert gate.limit == 7

    asyncio.run(go())


def test_transfer_gate_does_not_grow_when_the_request_pace_is_the_limit() -> None:
    gate = TransferGate(3, 16)
    for _ in range(5):
        gate.active = gate.limit
        gate.observe(1_000_000, 0.25, pace_bound=True)
    assert gate.limit == 3


def test_transfer_gate_bounds_concurrent_holders() -> None:
    gate = TransferGate(2, 2)
    peak = 0

    async def one() -> None:
        nonlocal peak
        async with gate.slot():
            peak = max(peak, gate.active)
            await asyncio.sleep(0.001)

    async def go() -> None:
        await asyncio.gather(*(one() for _ in range(8)))

    asyncio.run(go())
    assert peak == 2 and gate.active == 0


def test_a_sync_finds_the_simulators_limit_and_the_next_run_starts_at_it(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    """End to end against the simulator's rate-limit knob: the user allows 40/s, the server 10/s."""
    sim.faults.rate_limit_rps = 10
    sim.faults.retry_after_s = 1
    # 24 clips: about 30 requests with one request per clip (the generated thumbnail), enough to find
    # the limit and settle under it
    sim.add_clips(camera, 24, size=10_000)
    settings = make_settings(tmp_path, sim, blink={"max_requests_per_second": 40})
    first = run_sync(settings)
    assert first.exit_code == 0 and first.stored == 24
    assert 1 <= first.throttled <= 4

    engine = open_database(settings.database_url)
    account = repo.get_or_create_account(engine, "default", None, "oauth")
    assert account.id is not None
    learned = repo.learned_rate(engine, account.id)
    engine.dispose()
    assert learned is not None and learned.rate < 10 and learned.ceiling < 20  # found, well under 40

    sim.add_clips(camera, 12, size=10_000)
    second = run_sync(settings)
    assert second.exit_code == 0 and second.stored == 12
    assert second.throttled <= 1  # it starts at the learned pace instead of 40/s
