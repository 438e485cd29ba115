"""Narrow unit tests of the one request path (respx), the limiter and naming."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx

from archiver.blink.http import BlinkHTTP, RateLimiter
from archiver.config import BlinkSettings
from archiver.errors import AccountBlocked, AuthError

URL = "https://rest-u1.example/api/x"


def _http(**kw: object) -> BlinkHTTP:
    return BlinkHTTP(BlinkSettings(max_requests_per_second=0, backoff_max_s=0.05, retries=3, **kw))


@respx.mock
def test_5xx_is_retried_until_success() -> None:
    route = respx.get(URL).mock(side_effect=[httpx.Response(503), httpx.Response(502), httpx.Response(200)])

    async def go() -> int:
        async with _http() as http:
            return (await http.request("GET", URL, authed=False)).status_code

    assert asyncio.run(go()) == 200 and route.call_count == 3


@respx.mock
def test_429_waits_at_least_retry_after_and_slows_the_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    respx.get(URL).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "0.3"}), httpx.Response(200)]
    )
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(s: float) -> None:
        slept.append(s)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)

    async def go() -> BlinkHTTP:
        async with BlinkHTTP(BlinkSettings(max_requests_per_second=4, backoff_max_s=5)) as http:
            await http.request("GET", URL, authed=False)
            return http

    http = asyncio.run(go())
    assert max(slept) >= 0.3
    assert http.stats.throttled == 1 and http.limiter.rate < 4


@respx.mock
def test_repeated_403_trips_the_breaker_and_stops_sending() -> None:
    route = respx.get(URL).mock(return_value=httpx.Response(403))

    async def go() -> None:
        async with _http(breaker_threshold=3) as http:
            for _ in range(3):
                with pytest.raises(AuthError):
                    await http.request("GET", URL, authed=False)
            with pytest.raises(AccountBlocked):
                await http.request("GET", URL, authed=False)

    asyncio.run(go())
    assert route.call_count == 3


@respx.mock
def test_401_refreshes_once_and_retries_once() -> None:
    route = respx.get(URL).mock(side_effect=[httpx.Response(401), httpx.Response(200)])
    refreshed: list[int] = []

    async def headers() -> dict[str, str]:
        return {"Authorization": f"Bearer t{len(refreshed)}"}

    async def refresh() -> None:
        refreshed.append(1)

    async def go() -> None:
        async with _http() as http:
            http.use_auth(headers, refresh)
            assert (await http.request("GET", URL)).status_code == 200

    asyncio.run(go())
    assert refreshed == [1] and route.calls[-1].request.headers["Authorization"] == "Bearer t1"


@respx.mock
def test_second_401_after_refresh_is_an_auth_error() -> None:
    respx.get(URL).mock(return_value=httpx.Response(401))

    async def noop() -> None:
        return None

    async def headers() -> dict[str, str]:
        return {}

    async def go() -> None:
        async with _http() as http:
            http.use_auth(headers, noop)
            with pytest.raises(AuthError, match="archiver login"):
                await http.request("GET", URL)

    asyncio.run(go())


def test_rate_limiter_spaces_request_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]

    async def fake_sleep(s: float) -> None:
        now[0] += s

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    limiter = RateLimiter(4, clock=lambda: now[0])

    async def go() -> None:
        for _ in range(9):
            await limiter.acquire()

    asyncio.run(go())
    assert now[0] == pytest.approx(2.0)  # 9 starts at 4/s: the 9th at t=2 s
