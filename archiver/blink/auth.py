"""Login (OAuth2 authorization code + PKCE) in one or two phases, one refresh path, token reuse.

Account safety rules (every sign-in may make Blink text the user a PIN):
- the credentials POST and the PIN POST are sent once, never retried automatically;
- a sign-in that stops at a PIN challenge is kept (cookies, CSRF token, PKCE verifier) so a person can
  finish it later with ``archiver login --pin``, without a second sign-in (and a second PIN);
- a refresh token is discarded only when Blink says it is invalid (``invalid_grant`` and the like); a 406,
  another 4xx, a 5xx or a connection error keep it and stop the run;
- when an automatic sign-in (configured password) ends at a PIN, or at a refused password, the account
  is marked "login needed": no machine contacts the sign-in host again until a person runs
  ``archiver login``. So without a person asking, at most one PIN is ever sent;
- when Blink's edge (Cloudflare) refuses a sign-in, PIN or token request (a 406, a challenge page), the
  account's automatic renewals back off: none before 15 minutes, doubling per refusal up to a day, with
  jitter (``Account.signin_blocked_until``). So the password is sent at most a few times a day until it
  works or a person runs ``archiver login`` (which tries at once);
- a token is renewed a tenth of its lifetime (at most a minute) before it expires, by one refresh that
  every waiting request shares, and never again within the first half of its life.

Whoever owns persistence (the database) implements :class:`CredentialStore`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import ValidationError

from archiver.blink.credentials import (
    PENDING_TTL,
    Credentials,
    PendingCookie,
    PendingSignIn,
    SignInBlock,
    login_hint,
)
from archiver.blink.http import BlinkHTTP, Refused, RetryableError
from archiver.blink.models import OAuthError, TierInfo, TokenResponse, TwoFactorChallenge, TwoFactorVerify
from archiver.config import BlinkSettings
from archiver.errors import (
    AuthError,
    BadCredentials,
    BlinkError,
    EdgeBlocked,
    LoginNeeded,
    PinNeeded,
    RefreshRefused,
    RefreshUnavailable,
    SessionRejected,
)
from archiver.logs import REDACTOR

log = logging.getLogger("archiver.blink")

REDIRECT_URI = "immedia-blink://applinks.blink.com/signin/callback"
OAUTH_BROWSER_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 26_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/26.1 Mobile/15E148 Safari/604.1"
)
TOKEN_UA = "Blink/2511191620 CFNetwork/3860.200.71 Darwin/25.1.0"
# OAuth errors that mean "this refresh token is dead": only these discard it
INVALID_TOKEN_ERRORS = frozenset({"invalid_grant", "invalid_token", "expired_token", "token_expired"})
REDIRECTS = (301, 302, 303, 307, 308)

PinProvider = Callable[[TwoFactorChallenge], Awaitable[str | None]]
Clock = Callable[[], datetime]
EDGE_BACKOFF_FIRST = timedelta(minutes=15)
EDGE_BACKOFF_MAX = timedelta(hours=24)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def edge_backoff(refusals: int, jitter: Callable[[], float] = random.random) -> timedelta:
    """How long automatic sign-ins wait after the ``refusals``-th edge refusal in a row: 15 minutes,
    doubling, at most a day; up to a quarter more (jitter: machines refused together do not return
    together), never past the day."""
    exponent = min(max(refusals - 1, 0), 20)
    base = min(EDGE_BACKOFF_FIRST * 2**exponent, EDGE_BACKOFF_MAX)
    return min(base * (1 + 0.25 * jitter()), EDGE_BACKOFF_MAX)


class CredentialStore(Protocol):
    """Persistence of one account's credentials and its pending sign-in."""

    account: str  # the account's name in the config (for the messages)

    def save(self, creds: Credentials) -> None: ...

    def save_pending(self, pending: PendingSignIn | None) -> None: ...

    def load_pending(self) -> PendingSignIn | None: ...


def pkce_pair() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class _OAuthArgs(HTMLParser):
    """Collects the text of ``<script id="oauth-args">`` (linear in the page size, any quoting)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.inside = False
        self.found: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and self.found is None and ("id", "oauth-args") in attrs:
            self.inside, self.found = True, []

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self.inside = False

    def handle_data(self, data: str) -> None:
        if self.inside and self.found is not None:
            self.found.append(data)


_MAX_TAG = 1024  # how far before "oauth-args" its <script tag may start
_MAX_ARGS = 256 * 1024  # the longest oauth-args element read


def _oauth_args_elements(page: str) -> Iterator[str]:
    """Each ``<script …oauth-args…>…</script>`` candidate, found with linear scans only (the stdlib
    HTML parser itself is quadratic on some broken pages, so it only ever sees these short pieces)."""
    lower = page.lower()
    pos = 0
    while (i := lower.find("oauth-args", pos)) != -1:
        start = lower.rfind("<script", max(0, i - _MAX_TAG), i)
        close = lower.find("</script", i)
        if close == -1:
            return
        pos = close + 8  # every later candidate starts after this element: each character is read once
        if start != -1 and close - start <= _MAX_ARGS:
            yield page[start : close + 9]


def parse_csrf(page: str) -> str:
    for element in _oauth_args_elements(page):
        parser = _OAuthArgs()
        parser.feed(element)
        parser.close()
        raw = "".join(parser.found or ())
        for text in (raw, html.unescape(raw)):
            try:
                doc = json.loads(text)
            except json.JSONDecodeError:
                continue
            token = doc.get("csrf-token") if isinstance(doc, dict) else None
            if token:
                return str(token)
    raise BlinkError("Blink's sign-in page changed: no csrf-token found")


def _body(resp: httpx.Response) -> dict[str, Any] | None:
    """The JSON object in the body whatever the Content-Type says (None: not a JSON object)."""
    try:
        data = json.loads(resp.content or b"null")
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _json(resp: httpx.Response) -> dict[str, Any]:
    return _body(resp) or {}


class Authenticator:
    def __init__(
        self,
        http: BlinkHTTP,
        settings: BlinkSettings,
        credentials: Credentials,
        store: CredentialStore,
        username: str | None = None,
        password: str | None = None,
        clock: Clock = _utcnow,
    ) -> None:
        self.http = http
        self._clock = clock
        self.settings = settings
        self.creds = credentials
        self.store = store
        self._username = username
        self._password = password
        REDACTOR.add(password, credentials.access_token, credentials.refresh_token)
        self._lock = asyncio.Lock()
        self._stopped: AuthError | None = None  # a failed renewal stops the run: never try twice
        http.use_auth(self.headers, self.refresh)

    # -- hosts -------------------------------------------------------------------------------------
    @property
    def oauth_url(self) -> str:
        return self.settings.hosts(self.creds.tier)[0]

    @property
    def rest_prod_url(self) -> str:
        return self.settings.hosts(self.creds.tier)[1]

    @property
    def base_url(self) -> str:
        return self.settings.hosts(self.creds.tier)[2]

    def _set(self, creds: Credentials) -> None:
        REDACTOR.add(creds.access_token, creds.refresh_token)
        self.creds = creds
        self.store.save(creds)

    def _login_hint(self) -> str:
        return login_hint(self.store.account)

    # -- Blink's edge ------------------------------------------------------------------------------
    def _edge_blocked(self, exc: EdgeBlocked) -> EdgeBlocked:
        """Record an edge refusal (the back-off grows) and return the one line that says so."""
        now = self._clock()
        count = (self.creds.block.count if self.creds.block else 0) + 1
        reason = f"{exc.what}: HTTP {exc.status}" + (f", cf-ray {exc.ray}" if exc.ray else "")
        reason += f", at {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        block = SignInBlock(until=now + edge_backoff(count), count=count, reason=reason)
        self._set(replace(self.creds, block=block))
        line = block.line(self._login_hint())
        log.debug("%s", line)  # the caller reports it once (the CLI's error line, the worker's log)
        return EdgeBlocked(line, what=exc.what, status=exc.status, ray=exc.ray)

    def clear_block(self) -> None:
        """A person is signing in: the edge back-off does not hold them up (a new refusal starts it again)."""
        if self.creds.block is not None:
            self._set(replace(self.creds, block=None))

    # -- request headers ---------------------------------------------------------------------------
    async def headers(self) -> dict[str, str]:
        await self.ensure()
        return {"Authorization": f"Bearer {self.creds.access_token or ''}"}

    async def ensure(self) -> None:
        """A valid token, by reuse, refresh, or (with a configured password) a fresh login. Requests that
        find the token due together wait for one renewal and share it."""
        if self.creds.valid(self._clock()):
            return
        async with self._lock:
            if not self.creds.valid(self._clock()):
                await self._renew_locked()

    async def refresh(self) -> None:
        """Called on a 401: refresh once (the startup path: ios client, UUID hardware_id in the body).
        A token a refresh gave, in the first half of its life, is not refreshed again: Blink refusing a
        token it has just issued is not cured by another one (that is how refresh storms start). A
        sign-in's token gets its one refresh (Blink revoked it, or the clock is off)."""
        stale = self.creds.access_token
        async with self._lock:
            now = self._clock()
            if self.creds.access_token != stale and self.creds.valid(now):
                return  # another task refreshed while we waited
            if self.creds.refreshed and self.creds.young(now) and self.creds.issued_at is not None:
                age = (now - self.creds.issued_at).total_seconds()
                raise RefreshRefused(
                    f"Blink rejected a token it issued {age:.0f} s ago (HTTP 401); it is not refreshed "
                    "again within the first half of its life, and the next run tries again"
                )
            await self._renew_locked()

    async def _renew_locked(self) -> None:
        if self._stopped is not None:
            raise self._stopped
        try:
            await self._renew()
        except AuthError as exc:
            self._stopped = exc
            raise

    async def _renew(self) -> None:
        """The one renewal path: the refresh token, else the configured password, else stop. While
        Blink's edge keeps refusing, neither is tried before the back-off ends."""
        if self.creds.login_needed:
            raise LoginNeeded(self._login_needed_line(self.creds.login_needed))
        block = self.creds.block
        if block is not None and block.active(self._clock()):
            raise EdgeBlocked(block.line(self._login_hint()))
        try:
            if self.creds.refresh_token and await self._refresh_locked():
                return
            if self._username and self._password:
                await self._automatic_sign_in(self._username, self._password)
                return
        except EdgeBlocked as exc:
            raise self._edge_blocked(exc) from None
        raise SessionRejected(
            f"no valid Blink session: run `{self._login_hint()}` (or set blink.username/password)"
        )

    def _login_needed_line(self, reason: str) -> str:
        hint = self._login_hint()
        pending = self.store.load_pending()
        if pending is not None and not pending.expired():
            how = f"`{hint} --pin <PIN>` before {pending.until()}, or `{hint}`"
        else:
            how = f"`{hint}`"
        return f"login needed: {reason}; no sign-in is tried again until you run {how}"

    async def _automatic_sign_in(self, username: str, password: str) -> None:
        """A machine signing in with the configured password: never twice without a person."""
        pending = self.store.load_pending()
        if pending is not None and not pending.expired():
            raise LoginNeeded(
                f"a sign-in is waiting for its PIN (sent {pending.sent_to}): run "
                f"`{self._login_hint()} --pin <PIN>` before {pending.until()}"
            )
        when = self._clock().astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        try:
            await self._sign_in(username, password, pin=None)
        except PinNeeded as exc:
            reason = f"Blink asked for a 2FA PIN at {when} (sent {exc.sent_to})"
        except BadCredentials:
            reason = f"Blink rejected the configured username or password at {when}"
        else:
            return
        log.debug("automatic sign-in stopped: %s; no machine signs in again until `archiver login`", reason)
        self._set(
            replace(self.creds, access_token=None, refresh_token=None, expires_at=None, login_needed=reason)
        )
        raise LoginNeeded(self._login_needed_line(reason))

    async def _refresh_locked(self) -> bool:
        """True: new tokens. False: Blink says the refresh token is dead (discarded). Raises otherwise,
        keeping the token for the next run."""
        try:
            resp = await self.http.request(
                "POST",
                f"{self.oauth_url}/oauth/token",
                authed=False,
                what="token refresh",
                attempts=0,  # a consumed single-use token must not be replayed; the next run tries again
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": self.creds.refresh_token or "",
                    "client_id": "ios",
                    "scope": "client",
                    "hardware_id": self.creds.hardware_id,
                },
                headers={"User-Agent": TOKEN_UA},
                signin=True,
            )
        except EdgeBlocked:
            raise
        except (RetryableError, httpx.TransportError) as exc:
            why = str(exc) if isinstance(exc, RetryableError) else f"{type(exc).__name__}"
            raise RefreshUnavailable(
                f"could not refresh the Blink token ({why}); the refresh token is kept and the next run "
                "tries again"
            ) from None
        except Refused as exc:  # 403/426 from the request policy
            if exc.status == 426:  # this app version is refused: no later run fixes that by itself
                raise AuthError(
                    f"Blink refused the token refresh ({exc}); the refresh token is kept: update the "
                    "archiver (its Blink app version is no longer accepted)"
                ) from None
            raise RefreshRefused(
                f"Blink refused the token refresh ({exc}); the refresh token is kept and the next run "
                "tries again"
            ) from None
        status = resp.status_code
        if status == 200:
            try:
                token = TokenResponse.model_validate(_json(resp))
            except ValidationError:
                raise RefreshUnavailable(
                    "Blink's token refresh answered without an access token; the refresh token is kept "
                    "and the next run tries again"
                ) from None
            now = self._clock()
            self._set(
                replace(
                    self.creds,
                    access_token=token.access_token,
                    refresh_token=token.refresh_token or self.creds.refresh_token,
                    expires_at=token.expires_at(now),
                    issued_at=now,
                    refreshed=True,
                    block=None,
                )
            )
            return True
        err = OAuthError.model_validate(_json(resp))
        if status in (400, 401) and (err.error or "").lower() in INVALID_TOKEN_ERRORS:
            log.debug("Blink says the refresh token is no longer valid (%s); it is discarded", err.error)
            self._set(replace(self.creds, access_token=None, refresh_token=None, expires_at=None))
            return False
        detail = f"HTTP {status}" + (f" {err.error}" if err.error else "")
        raise RefreshRefused(
            f"Blink refused the token refresh ({detail}); the refresh token is kept and the next run "
            "tries again"
        )

    @staticmethod
    def _token(resp: httpx.Response) -> TokenResponse:
        try:
            return TokenResponse.model_validate(_json(resp))
        except ValidationError:
            raise BlinkError("Blink's token endpoint answered without an access token") from None

    # -- login -------------------------------------------------------------------------------------
    def _browser(self) -> dict[str, str]:
        return {
            "User-Agent": OAUTH_BROWSER_UA,
            "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "Accept-Language": "en-US,en;q=0.9",
        }

    def _form_headers(self) -> dict[str, str]:
        base = self.oauth_url
        return {**self._browser(), "Origin": base, "Referer": f"{base}/oauth/v2/signin"}

    async def _once(self, url: str, what: str, data: dict[str, str]) -> httpx.Response:
        """A POST that may make Blink text a PIN (or burn one): sent once, never retried."""
        try:
            return await self.http.request(
                "POST",
                url,
                authed=False,
                what=what,
                attempts=0,
                data=data,
                headers=self._form_headers(),
                signin=True,
            )
        except httpx.TransportError as exc:
            raise BlinkError(
                f"{what}: could not reach Blink ({type(exc).__name__}); not retried automatically"
            ) from None

    async def login(self, username: str, password: str, pin: PinProvider | None) -> Credentials:
        """A person signs in (``archiver login``): the edge back-off is cleared first. At a PIN challenge
        the sign-in is saved as pending first; then ``pin`` is asked (a terminal) and the sign-in
        finished, or, without a PIN, :class:`PinNeeded` is raised."""
        self.clear_block()
        try:
            return await self._sign_in(username, password, pin)
        except EdgeBlocked as exc:
            raise self._edge_blocked(exc) from None

    async def _sign_in(self, username: str, password: str, pin: PinProvider | None) -> Credentials:
        REDACTOR.add(password)
        http, base = self.http, self.oauth_url
        verifier, challenge = pkce_pair()
        REDACTOR.add(verifier)
        params = {
            "app_brand": "blink",
            "app_version": "50.1",
            "client_id": "ios",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "device_brand": "Apple",
            "device_model": "iPhone16,1",
            "device_os_version": "26.1",
            "hardware_id": self.creds.hardware_id,
            "redirect_uri": REDIRECT_URI,
            "response_type": "code",
            "scope": "client",
        }
        http.client.cookies.clear()
        resp = await http.request(
            "GET",
            f"{base}/oauth/v2/authorize",
            authed=False,
            what="OAuth authorize",
            params=params,
            headers=self._browser(),
            follow_redirects=True,
            signin=True,
        )
        if resp.status_code != 200:
            raise AuthError(f"Blink refused the OAuth authorize step (HTTP {resp.status_code})")
        resp = await http.request(
            "GET",
            f"{base}/oauth/v2/signin",
            authed=False,
            what="OAuth sign-in page",
            headers=self._browser(),
            signin=True,
        )
        if resp.status_code != 200:
            raise AuthError(f"Blink's sign-in page answered HTTP {resp.status_code}")
        csrf = parse_csrf(resp.text)
        REDACTOR.add(csrf)
        resp = await self._once(
            f"{base}/oauth/v2/signin",
            "OAuth sign-in",
            {"username": username, "password": password, "csrf-token": csrf},
        )
        status, body = resp.status_code, _body(resp)
        ch = TwoFactorChallenge.model_validate(body or {})
        # 412, or a 202 whose body is a challenge or not JSON at all (the Content-Type is unpublished)
        if status == 412 or (status == 202 and (body is None or ch.is_challenge)):
            now = self._clock()
            pending = PendingSignIn(
                username=username,
                hardware_id=self.creds.hardware_id,
                csrf=csrf,
                verifier=verifier,
                cookies=self._cookies(),
                sent_to=ch.sent_to,
                started_at=now,
                expires_at=now + PENDING_TTL,
            )
            self.store.save_pending(pending)
            code = await pin(ch) if pin else None
            if not code:
                raise PinNeeded(
                    f"Blink sent a 2FA PIN {pending.sent_to}: run `{self._login_hint()} --pin <PIN>` "
                    f"before {pending.until()} (the sign-in stays open "
                    f"{int(PENDING_TTL.total_seconds() // 60)} minutes)",
                    sent_to=pending.sent_to,
                )
            return await self._complete_pin(pending, code)
        if status in REDIRECTS:
            return await self._finish(verifier)
        if status in (400, 401, 403):
            raise BadCredentials("Blink rejected the username or password")
        raise AuthError(f"unexpected answer from Blink's sign-in (HTTP {status})")

    def _cookies(self) -> list[PendingCookie]:
        out = [
            PendingCookie(name=c.name, value=c.value or "", domain=c.domain, path=c.path)
            for c in self.http.client.cookies.jar
        ]
        REDACTOR.add(*(c.value for c in out))
        return out

    async def complete_pin(self, pending: PendingSignIn, code: str) -> Credentials:
        """A person finishes a saved sign-in with the PIN Blink sent for it (``archiver login --pin``).
        A refused PIN keeps it for another try."""
        self.clear_block()
        try:
            return await self._complete_pin(pending, code)
        except EdgeBlocked as exc:
            raise self._edge_blocked(exc) from None

    async def _complete_pin(self, pending: PendingSignIn, code: str) -> Credentials:
        code = code.strip()
        REDACTOR.add(code, *pending.secrets())
        hint = self._login_hint()
        if pending.expired():
            self.store.save_pending(None)
            raise AuthError(
                f"the sign-in waiting for a PIN expired at {pending.until()}: run `{hint}` again "
                "(Blink sends a new PIN)"
            )
        if pending.hardware_id != self.creds.hardware_id:
            self.store.save_pending(None)
            raise AuthError(f"the waiting sign-in belongs to another device id: run `{hint}` again")
        self.http.client.cookies.clear()
        for c in pending.cookies:
            self.http.client.cookies.set(c.name, c.value, domain=c.domain, path=c.path)
        resp = await self._once(
            f"{self.oauth_url}/oauth/v2/2fa/verify",
            "2FA verify",
            {"2fa_code": code, "csrf-token": pending.csrf, "remember_me": "false"},
        )
        answer = TwoFactorVerify.model_validate(_json(resp))
        if resp.status_code not in (200, 201) or not answer.completed:
            err = OAuthError.model_validate(_json(resp))
            detail = f"HTTP {resp.status_code}" + (f" {err.error}" if err.error else "")
            raise AuthError(
                f"Blink did not accept the PIN ({detail}); the sign-in stays open until {pending.until()}: "
                f"run `{hint} --pin <PIN>` with the PIN of the latest message, or `{hint}` for a new one"
            )
        return await self._finish(pending.verifier)

    async def _finish(self, verifier: str) -> Credentials:
        """After the sign-in (and its PIN): authorization code → tokens → tier."""
        http, base = self.http, self.oauth_url
        resp = await http.request(
            "GET",
            f"{base}/oauth/v2/authorize",
            authed=False,
            what="OAuth authorization code",
            headers={**self._browser(), "Referer": f"{base}/oauth/v2/signin"},
            signin=True,
        )
        location = resp.headers.get("location", "")
        code_values = parse_qs(urlsplit(location).query).get("code")
        if resp.status_code not in REDIRECTS or not code_values:
            raise AuthError(f"Blink did not hand out an authorization code (HTTP {resp.status_code})")
        resp = await http.request(
            "POST",
            f"{base}/oauth/token",
            authed=False,
            what="OAuth token",
            data={
                "app_brand": "blink",
                "client_id": "ios",
                "code": code_values[0],
                "code_verifier": verifier,
                "grant_type": "authorization_code",
                "hardware_id": self.creds.hardware_id,
                "redirect_uri": REDIRECT_URI,
                "scope": "client",
            },
            headers={"User-Agent": TOKEN_UA},
            signin=True,
        )
        if resp.status_code != 200:
            raise AuthError(f"Blink refused the token exchange (HTTP {resp.status_code})")
        token = self._token(resp)
        REDACTOR.add(token.access_token, token.refresh_token)
        now = self._clock()
        creds = replace(
            self.creds,
            auth_kind="oauth",
            access_token=token.access_token,
            refresh_token=token.refresh_token,
            expires_at=token.expires_at(now),
            issued_at=now,
            refreshed=False,
            login_needed=None,
            block=None,
        )
        tier = await self._tier(creds.access_token or "")
        creds = replace(creds, tier=tier.tier, account_id=tier.account_id)
        self._stopped = None
        self._set(creds)
        self.store.save_pending(None)  # a sign-in that was waiting for a PIN is done, or replaced
        return creds

    async def _tier(self, access_token: str) -> TierInfo:
        resp = await self.http.request(
            "GET",
            f"{self.rest_prod_url}/api/v1/users/tier_info",
            authed=False,
            what="tier_info",
            headers={"Authorization": f"Bearer {access_token}"},
        )
        if resp.status_code != 200:
            raise AuthError(f"Blink's tier_info answered HTTP {resp.status_code}")
        try:
            return TierInfo.model_validate(_json(resp))
        except ValidationError:
            raise BlinkError(
                "Blink's tier_info answer has no usable tier (a short token) or account_id"
            ) from None
