"""Login (OAuth2 authorization code + PKCE, or the legacy v5 flow), one refresh path, token reuse.

Credentials are a :class:`Credentials` value; whoever owns persistence (the database) receives every
change through ``on_change`` so a sync never logs in while a valid token exists.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import ValidationError

from archiver.blink.credentials import Credentials
from archiver.blink.http import BlinkHTTP
from archiver.blink.models import LegacyLogin, TierInfo, TokenResponse, TwoFactorChallenge
from archiver.config import BlinkSettings
from archiver.errors import AuthError, BlinkError, TwoFactorRequired
from archiver.logs import REDACTOR

REDIRECT_URI = "immedia-blink://applinks.blink.com/signin/callback"
OAUTH_BROWSER_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 26_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/26.1 Mobile/15E148 Safari/604.1"
)
TOKEN_UA = "Blink/2511191620 CFNetwork/3860.200.71 Darwin/25.1.0"

PinProvider = Callable[[TwoFactorChallenge], Awaitable[str | None]]


def pkce_pair() -> tuple[str, str]:
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


_CSRF_RE = re.compile(r'<script[^>]*id="oauth-args"[^>]*>(.*?)</script>', re.S)


def parse_csrf(page: str) -> str:
    m = _CSRF_RE.search(page)
    if m:
        try:
            token = json.loads(html.unescape(m.group(1))).get("csrf-token")
        except json.JSONDecodeError:
            token = None
        if token:
            return str(token)
    raise BlinkError("Blink's sign-in page changed: no csrf-token found")


def _json(resp: httpx.Response) -> dict:
    if "json" not in resp.headers.get("content-type", ""):
        return {}
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


class Authenticator:
    def __init__(
        self,
        http: BlinkHTTP,
        settings: BlinkSettings,
        credentials: Credentials,
        on_change: Callable[[Credentials], None],
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.http = http
        self.settings = settings
        self.creds = credentials
        self._on_change = on_change
        self._username = username
        self._password = password
        REDACTOR.add(password, credentials.access_token, credentials.refresh_token)
        self._lock = asyncio.Lock()
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
        self._on_change(creds)

    # -- request headers ---------------------------------------------------------------------------
    async def headers(self) -> dict[str, str]:
        await self.ensure()
        token = self.creds.access_token or ""
        if self.creds.auth_kind == "legacy":
            return {"TOKEN-AUTH": token}
        return {"Authorization": f"Bearer {token}"}

    async def ensure(self) -> None:
        """A valid token, by reuse, refresh, or (with a configured password) a fresh login."""
        if self.creds.valid():
            return
        async with self._lock:
            if not self.creds.valid():
                await self._renew_locked()

    async def refresh(self) -> None:
        """Called on a 401: refresh once (the startup path: ios client, UUID hardware_id in the body)."""
        stale = self.creds.access_token
        async with self._lock:
            if self.creds.access_token != stale and self.creds.valid():
                return  # another task refreshed while we waited
            await self._renew_locked()

    async def _renew_locked(self) -> None:
        """The one renewal path: the refresh token, else the configured password, else stop."""
        if self.creds.auth_kind == "oauth" and self.creds.refresh_token:
            try:
                await self._refresh_locked()
                return
            except AuthError:
                if not (self._username and self._password):
                    raise
        if self._username and self._password:
            await self.login(self._username, self._password, pin=None)
            return
        raise AuthError("no valid Blink session: run `archiver login` (or set blink.username/password)")

    async def _refresh_locked(self) -> None:
        resp = await self.http.request(
            "POST",
            f"{self.oauth_url}/oauth/token",
            authed=False,
            what="token refresh",
            data={
                "grant_type": "refresh_token",
                "refresh_token": self.creds.refresh_token or "",
                "client_id": "ios",
                "scope": "client",
                "hardware_id": self.creds.hardware_id,
            },
            headers={"User-Agent": TOKEN_UA},
        )
        if resp.status_code != 200:
            self._set(replace(self.creds, refresh_token=None))
            raise AuthError(f"token refresh refused by Blink (HTTP {resp.status_code})")
        token = self._token(resp)
        self._set(
            replace(
                self.creds,
                access_token=token.access_token,
                refresh_token=token.refresh_token or self.creds.refresh_token,
                expires_at=token.expires_at(),
            )
        )

    @staticmethod
    def _token(resp: httpx.Response) -> TokenResponse:
        try:
            return TokenResponse.model_validate(_json(resp))
        except ValidationError:
            raise BlinkError("Blink's token endpoint answered without an access token") from None

    # -- login -------------------------------------------------------------------------------------
    async def login(self, username: str, password: str, pin: PinProvider | None) -> Credentials:
        if self.settings.auth == "legacy":
            return await self._legacy_login(username, password, pin)
        return await self._oauth_login(username, password, pin)

    async def _oauth_login(self, username: str, password: str, pin: PinProvider | None) -> Credentials:
        http, base = self.http, self.oauth_url
        browser = {
            "User-Agent": OAUTH_BROWSER_UA,
            "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            "Accept-Language": "en-US,en;q=0.9",
        }
        verifier, challenge = pkce_pair()
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
            headers=browser,
            follow_redirects=True,
        )
        if resp.status_code != 200:
            raise AuthError(f"Blink refused the OAuth authorize step (HTTP {resp.status_code})")
        resp = await http.request(
            "GET", f"{base}/oauth/v2/signin", authed=False, what="OAuth sign-in page", headers=browser
        )
        if resp.status_code != 200:
            raise AuthError(f"Blink's sign-in page answered HTTP {resp.status_code}")
        csrf = parse_csrf(resp.text)
        form_headers = {
            **browser,
            "Origin": base,
            "Referer": f"{base}/oauth/v2/signin",
        }
        resp = await http.request(
            "POST",
            f"{base}/oauth/v2/signin",
            authed=False,
            what="OAuth sign-in",
            data={"username": username, "password": password, "csrf-token": csrf},
            headers=form_headers,
        )
        status = resp.status_code
        challenge_body = TwoFactorChallenge.model_validate(_json(resp))
        if status in (301, 302, 303, 307, 308):
            pass
        elif status == 412 or (status == 202 and challenge_body.is_challenge):
            code = await pin(challenge_body) if pin else None
            if not code:
                raise TwoFactorRequired()
            resp = await http.request(
                "POST",
                f"{base}/oauth/v2/2fa/verify",
                authed=False,
                what="2FA verify",
                data={"2fa_code": code.strip(), "csrf-token": csrf, "remember_me": "false"},
                headers=form_headers,
            )
            if resp.status_code not in (200, 201):
                raise AuthError("Blink rejected the 2FA PIN; run `archiver login` again for a new one")
        elif status in (400, 401, 403):
            raise AuthError("Blink rejected the username or password")
        else:
            raise AuthError(f"unexpected answer from Blink's sign-in (HTTP {status})")
        resp = await http.request(
            "GET",
            f"{base}/oauth/v2/authorize",
            authed=False,
            what="OAuth authorization code",
            headers={**browser, "Referer": f"{base}/oauth/v2/signin"},
        )
        location = resp.headers.get("location", "")
        code_values = parse_qs(urlsplit(location).query).get("code")
        if resp.status_code not in (301, 302, 303, 307, 308) or not code_values:
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
        )
        if resp.status_code != 200:
            raise AuthError(f"Blink refused the token exchange (HTTP {resp.status_code})")
        token = self._token(resp)
        creds = replace(
            self.creds,
            auth_kind="oauth",
            access_token=token.access_token,
            refresh_token=token.refresh_token,
            expires_at=token.expires_at(),
        )
        tier = await self._tier(creds.access_token or "")
        creds = replace(creds, tier=tier.tier, account_id=tier.account_id)
        self._set(creds)
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
            raise BlinkError("Blink's tier_info answer has no tier/account_id") from None

    async def _legacy_login(self, username: str, password: str, pin: PinProvider | None) -> Credentials:
        base = self.rest_prod_url
        resp = await self.http.request(
            "POST",
            f"{base}/api/v5/account/login",
            authed=False,
            what="legacy login",
            json={
                "email": username,
                "password": password,
                "unique_id": self.creds.hardware_id,
                "client_name": "blink-archiver",
                "reauth": True,
            },
        )
        if resp.status_code in (401, 403):
            raise AuthError("Blink rejected the username or password")
        if resp.status_code != 200:
            raise AuthError(f'the legacy login answered HTTP {resp.status_code}; try blink.auth = "oauth"')
        try:
            data = LegacyLogin.model_validate(_json(resp))
        except ValidationError:
            raise BlinkError("the legacy login answer has no account/token") from None
        acct = data.account
        creds = replace(
            self.creds,
            auth_kind="legacy",
            access_token=data.auth.token,
            refresh_token=None,
            expires_at=datetime.now(UTC) + timedelta(hours=24),
            tier=acct.tier,
            account_id=acct.account_id,
            user_id=acct.user_id,
            client_id=acct.client_id,
        )
        if acct.client_verification_required:
            code = await pin(TwoFactorChallenge(tsv_state="email")) if pin else None
            if not code:
                raise TwoFactorRequired()
            verify_base = self.settings.hosts(acct.tier)[2]
            resp = await self.http.request(
                "POST",
                f"{verify_base}/api/v4/account/{acct.account_id}/client/{acct.client_id}/pin/verify",
                authed=False,
                what="legacy PIN verify",
                json={"pin": code.strip()},
                headers={"TOKEN-AUTH": data.auth.token},
            )
            if resp.status_code != 200 or not _json(resp).get("valid", False):
                raise AuthError("Blink rejected the 2FA PIN; run `archiver login` again for a new one")
        self._set(creds)
        return creds
