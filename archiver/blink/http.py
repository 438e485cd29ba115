"""The one place every Blink request goes through.

Auth header, timeouts, a global request-rate limit shared by every concurrent transfer (adaptive: it
learns Blink's limit from 429s, see ``archiver.blink.ratelimit``), retries with
exponential backoff and jitter (honouring Retry-After) on connection errors, 5xx and 429, one refresh
on a 401, and a circuit breaker that stops the run on repeated 401/403/426 instead of hammering.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from archiver.blink.ratelimit import RateLimiter
from archiver.blink.transport import asyncio_transport
from archiver.config import BlinkSettings, LimitsSettings
from archiver.errors import AccountBlocked, AuthError, BlinkError, EdgeBlocked, MediaError, SessionRejected

log = logging.getLogger("archiver.blink")

USER_AGENT = "blink-archiver/0.1 (+https://github.com/blink-archiver)"


class RetryableError(BlinkError):
    """A transient failure (5xx, 429, reset, truncated body) worth another try."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class HttpStats:
    requests: int = 0
    retries: int = 0
    throttled: int = 0


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class _Wait:
    """Exponential backoff with jitter, but never shorter than the server's Retry-After."""

    def __init__(self, maximum: float) -> None:
        self._exp = wait_exponential_jitter(multiplier=0.2, max=maximum, jitter=0.5)
        self._max = maximum

    def __call__(self, state: RetryCallState) -> float:
        base = self._exp(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RetryableError) and exc.retry_after is not None:
            return min(max(base, exc.retry_after), self._max)
        return base


class Refused(AuthError):
    """Blink refused the request outright (403, 426): counted by the circuit breaker."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class MediaRefused(MediaError):
    """A media GET refused (403 and the like): that clip fails, the run and the breaker are untouched."""


class BodyTooLarge(BlinkError):
    """An answer larger than its configured cap (counted after decompression, while streaming)."""


MAX_REDIRECTS = 5
_RAY = re.compile(r"[A-Za-z0-9-]{1,48}")


def edge_refusal(resp: httpx.Response) -> str | None:
    """``"HTTP 406, cf-ray …"`` when Blink's edge (Cloudflare) refused the request before Blink read it:
    a 406 (what Cloudflare answers Blink's OAuth host since mid-2026), a challenge (``cf-mitigated:
    challenge``), or a 403 that is Cloudflare's HTML page (``cf-ray``) rather than Blink's JSON. A 5xx
    stays an outage (retried), a 429 a rate limit. None: not the edge."""
    status = resp.status_code
    if status < 400 or status >= 500 or status == 429:
        return None
    ray = resp.headers.get("cf-ray", "").strip()
    html = resp.headers.get("content-type", "").lower().startswith("text/html")
    challenge = resp.headers.get("cf-mitigated", "").lower() == "challenge"
    if status == 406 or challenge or (status == 403 and ray and html):
        return f"HTTP {status}" + (f", cf-ray {ray}" if ray and _RAY.fullmatch(ray) else "")
    return None


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    port = url.port or {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, port


def blink_origins(settings: BlinkSettings) -> tuple[set[tuple[str, str, int | None]], re.Pattern[str]]:
    """The configured Blink hosts (the only origins that ever see the token and cookies): the OAuth,
    rest-prod and server_url bases, plus any host the regional template can produce."""
    bases = [settings.oauth_url, settings.rest_url, *([settings.server_url] if settings.server_url else [])]
    fixed = {_origin(httpx.URL(b)) for b in bases}
    template = httpx.URL(settings.rest_url_template.replace("{tier}", "tierplaceholder"))
    host = re.escape(template.host.lower()).replace("tierplaceholder", "[a-z0-9-]{1,32}")
    port = template.port or {"http": 80, "https": 443}.get(template.scheme)
    pattern = re.compile(rf"{re.escape(template.scheme)}://{host}:{port}")
    return fixed, pattern


async def read_capped(resp: httpx.Response, cap: int, what: str) -> bytes:
    """The decoded body, refusing it once it passes ``cap`` bytes (a gzip bomb never fills memory)."""
    declared = resp.headers.get("content-length")
    if declared and declared.isdigit() and "content-encoding" not in resp.headers and int(declared) > cap:
        raise BodyTooLarge(f"{what}: answer of {int(declared):,} bytes is over the {cap:,}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.aiter_bytes():
        size += len(chunk)
        if size > cap:
            raise BodyTooLarge(f"{what}: answer is over the {cap:,}-byte limit (after decompression)")
        chunks.append(chunk)
    return b"".join(chunks)


TokenSource = Callable[[], Awaitable[dict[str, str]]]
Refresher = Callable[[], Awaitable[None]]
EventHooks = Mapping[
    str, list[Callable[[Any], Any]]
]  # httpx's event_hooks: {"request": [...], "response": [...]}
WHAT = "archiver.what"  # request extension: what the request is for ("media/changed", "OAuth sign-in", …)
STARTED = "archiver.started"  # request extension: time.monotonic() when it was sent


def metrics_hooks(observe: Callable[[str, int, float], None]) -> dict[str, list[Callable[[Any], Any]]]:
    """httpx event hooks that call ``observe(what, status, seconds)`` for every response (headers
    received); an observer that fails never breaks a request."""

    async def on_request(request: httpx.Request) -> None:
        request.extensions[STARTED] = time.monotonic()

    async def on_response(response: httpx.Response) -> None:
        request = response.request
        started = request.extensions.get(STARTED)
        what = request.extensions.get(WHAT) or request.url.path
        with suppress(Exception):
            observe(str(what), response.status_code, time.monotonic() - started if started else 0.0)

    return {"request": [on_request], "response": [on_response]}


class BlinkHTTP:
    """Owns the httpx client (cookies kept: the OAuth flow needs them) and the request policy.

    ``event_hooks`` are httpx's, installed on this instance's clients (the worker's metrics:
    :func:`metrics_hooks`); each request carries what it is for in its ``archiver.what`` extension."""

    def __init__(
        self,
        settings: BlinkSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        limits: LimitsSettings | None = None,
        event_hooks: EventHooks | None = None,
    ) -> None:
        self.settings = settings
        self.limits = limits or LimitsSettings()
        self._origins, self._regional = blink_origins(settings)
        limits_ = httpx.Limits(max_connections=32, max_keepalive_connections=16)
        self._transport = transport  # a test's; else each client gets httpx's on asyncio streams
        # one TLS context for both clients (building one loads the CA bundle: ~20 ms each); same checks
        self._tls = httpx.create_ssl_context() if transport is None else None
        self._foreign: httpx.AsyncClient | None = None
        self._hooks = {k: list(v) for k, v in (event_hooks or {}).items()}
        self.client = httpx.AsyncClient(
            transport=self._transport_for(limits_),
            verify=self._tls or True,
            timeout=httpx.Timeout(settings.timeout_s, connect=min(10.0, settings.timeout_s)),
            headers={"User-Agent": USER_AGENT},
            limits=limits_,
            follow_redirects=False,
            event_hooks=self._hooks,
        )
        self.limiter = RateLimiter(settings.max_requests_per_second)
        self.stats = HttpStats()
        self._auth_headers: TokenSource | None = None
        self._refresh: Refresher | None = None
        self._strikes = 0
        self._blocked: str | None = None

    def use_auth(self, headers: TokenSource, refresh: Refresher | None) -> None:
        self._auth_headers = headers
        self._refresh = refresh

    def _transport_for(self, limits: httpx.Limits) -> httpx.AsyncBaseTransport:
        if self._transport is not None:
            return self._transport
        assert self._tls is not None
        return asyncio_transport(self._tls, limits)

    @property
    def foreign(self) -> httpx.AsyncClient:
        """The client for hops off Blink's hosts (a CDN, a pre-signed URL): no cookie jar shared, no auth,
        no user agent. Made on first use: most runs never leave Blink's hosts."""
        if self._foreign is None:
            self._foreign = httpx.AsyncClient(
                transport=self._transport_for(httpx.Limits()),
                verify=self._tls or True,
                timeout=httpx.Timeout(self.settings.timeout_s, connect=min(10.0, self.settings.timeout_s)),
                follow_redirects=False,
                event_hooks=self._hooks,
            )
        return self._foreign

    async def aclose(self) -> None:
        await self.client.aclose()
        if self._foreign is not None:
            await self._foreign.aclose()

    def is_blink(self, url: httpx.URL) -> bool:
        """True for the configured Blink hosts only: nothing else ever gets the token or cookies."""
        if _origin(url) in self._origins:
            return True
        scheme, host, port = _origin(url)
        return self._regional.fullmatch(f"{scheme}://{host.lower()}:{port}") is not None

    def _build(
        self, method: str, url: str | httpx.URL, **kwargs: Any
    ) -> tuple[httpx.AsyncClient, httpx.Request]:
        target = httpx.URL(url)
        if self.is_blink(target):
            return self.client, self.client.build_request(method, target, **kwargs)
        self.foreign.cookies.clear()
        return self.foreign, self.foreign.build_request(method, target, **kwargs)

    async def __aenter__(self) -> BlinkHTTP:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- policy -----------------------------------------------------------------------------------
    def retrying(self, attempts: int | None = None) -> AsyncRetrying:
        n = (self.settings.retries if attempts is None else attempts) + 1

        def before_sleep(state: RetryCallState) -> None:
            self.stats.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            log.info("retrying after: %s (attempt %d)", exc, state.attempt_number)

        return AsyncRetrying(
            retry=retry_if_exception_type((RetryableError, httpx.TransportError)),
            wait=_Wait(self.settings.backoff_max_s),
            stop=stop_after_attempt(n),
            before_sleep=before_sleep,
            reraise=True,
        )

    def _strike(self, reason: str) -> None:
        self._strikes += 1
        if self._strikes >= self.settings.breaker_threshold:
            self._blocked = reason

    def _check_status(
        self, resp: httpx.Response, what: str, turn: float | None = None, signin: bool = False
    ) -> None:
        status = resp.status_code
        if signin and (refusal := edge_refusal(resp)) is not None:
            if turn is not None:
                self.limiter.ok(turn)
            ray = resp.headers.get("cf-ray")
            raise EdgeBlocked(
                f"{what}: Blink's edge (Cloudflare) refused the request ({refusal})",
                what=what,
                status=status,
                ray=ray if ray and _RAY.fullmatch(ray) else None,
            )
        if status == 429:
            self.stats.throttled += 1
            delay = _retry_after(resp)
            self.limiter.throttled(time.monotonic() if turn is None else turn, delay)
            raise RetryableError(f"{what}: throttled by Blink (HTTP 429)", retry_after=delay)
        if turn is not None and status < 500:
            self.limiter.ok(turn)
        if status >= 500:
            raise RetryableError(
                f"{what}: Blink server error (HTTP {status})", retry_after=_retry_after(resp)
            )
        if status in (403, 426):
            self._strike(f"HTTP {status}")
            hint = "an app update is required" if status == 426 else "access refused"
            raise Refused(f"{what}: Blink refused the request ({hint}, HTTP {status})", status)
        if status < 400:
            self._strikes = 0

    # -- sending -----------------------------------------------------------------------------------
    async def _send(
        self,
        request: httpx.Request,
        *,
        stream: bool,
        authed: bool,
        what: str,
        follow_redirects: bool = False,
        media: bool = False,
        signin: bool = False,
    ) -> httpx.Response:
        if self._blocked:
            raise AccountBlocked(
                f"stopped after repeated refusals from Blink ({self._blocked}); "
                "check the account in the Blink app, then run `archiver login`"
            )
        refreshed = False
        blink = self.is_blink(request.url)
        authed = authed and blink  # the token never leaves Blink's hosts
        client = self.client if blink else self.foreign
        while True:
            if authed and self._auth_headers is not None:
                request.headers.update(await self._auth_headers())
            turn = await self.limiter.acquire()
            self.stats.requests += 1
            request.extensions[WHAT] = what
            resp = await client.send(request, stream=stream, follow_redirects=follow_redirects and blink)
            if resp.status_code == 401 and authed:
                await resp.aclose()
                if not refreshed and self._refresh is not None:
                    refreshed = True
                    await self._refresh()
                    continue
                self._strike("HTTP 401")
                raise SessionRejected(f"{what}: Blink rejected the token (HTTP 401); run `archiver login`")
            if media and resp.status_code in (401, 403) and not (authed and resp.status_code == 401):
                await resp.aclose()
                raise MediaRefused(f"{what}: refused (HTTP {resp.status_code})")
            try:
                self._check_status(resp, what, turn, signin)
            except BaseException:
                await resp.aclose()
                raise
            return resp

    async def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        authed: bool = True,
        what: str | None = None,
        attempts: int | None = None,
        signin: bool = False,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send with retries; the body is read. Non-retryable 4xx answers are returned to the caller.
        ``signin``: a sign-in, PIN or token step: Blink's edge refusing it raises :class:`EdgeBlocked`."""
        what = what or f"{method} {httpx.URL(url).path}"
        follow = bool(kwargs.pop("follow_redirects", False))
        async for attempt in self.retrying(attempts):
            with attempt:
                _client, request = self._build(method, url, **kwargs)
                resp = await self._send(
                    request, stream=True, authed=authed, what=what, follow_redirects=follow, signin=signin
                )
                try:
                    body = await read_capped(resp, self.limits.max_json_bytes, what)
                except httpx.HTTPError as exc:
                    raise RetryableError(f"{what}: connection lost while reading ({exc})") from exc
                finally:
                    await resp.aclose()
                headers = [
                    (k, v)
                    for k, v in resp.headers.multi_items()
                    if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
                ]
                resp = httpx.Response(resp.status_code, headers=headers, content=body, request=resp.request)
        return resp

    @asynccontextmanager
    async def stream(
        self, method: str, url: str | httpx.URL, *, what: str | None = None, **kwargs: Any
    ) -> AsyncIterator[httpx.Response]:
        """One attempt of a streamed media request (status checked, 401 refreshed). Callers wrap the
        whole download in ``retrying()`` so a body cut mid-way is retried from the start.

        Redirects (a CDN, a pre-signed URL) are followed here, hop by hop: the token and cookies go
        only to Blink's hosts. A 403 fails this media only (``MediaRefused``), never the run."""
        what = what or f"{method} {httpx.URL(url).path}"
        target = httpx.URL(url)
        for _hop in range(MAX_REDIRECTS + 1):
            _client, request = self._build(method, target, **kwargs)
            resp = await self._send(request, stream=True, authed=True, what=what, media=True)
            location = resp.headers.get("location")
            if resp.status_code in (301, 302, 303, 307, 308) and location:
                await resp.aclose()
                try:
                    target = resp.url.join(location)
                except (httpx.InvalidURL, ValueError):
                    raise MediaError(f"{what}: unusable redirect") from None
                if target.scheme not in ("http", "https"):
                    raise MediaError(f"{what}: redirect to a {target.scheme!r} URL refused")
                method = "GET" if resp.status_code == 303 else method
                continue
            try:
                yield resp
            finally:
                await resp.aclose()
            return
        raise MediaError(f"{what}: more than {MAX_REDIRECTS} redirects")
