"""Blink's OAuth sign-in as the simulator plays it: authorize with PKCE, the sign-in form with its CSRF
token, the PIN "texted" for 2FA, the code exchange, refresh tokens, the edge (Cloudflare) blocks and
refusal knobs, and the bearer check every REST call makes."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .common import UNAUTHORIZED, ApiError, Context, Part, is_uuid, pkce_challenge

REDIRECT_URI = "immedia-blink://applinks.blink.com/signin/callback"


@dataclass
class OAuthSession:
    sid: str
    client_id: str
    hardware_id: str
    challenge: str
    state: str
    csrf: str
    signed_in: bool = False
    needs_2fa: bool = False
    verified: bool = False
    pin: str | None = None
    created: float = field(default_factory=time.time)


@dataclass(frozen=True)
class SentPin:
    """A PIN the simulated Blink "texted": what a user reads on the phone."""

    to: str
    pin: str
    at: float


@dataclass
class AuthCode:
    code: str
    challenge: str
    client_id: str
    hardware_id: str
    expires: float


class OAuth(Part):
    """Sign-in sessions, authorization codes, access and refresh tokens, the PINs sent, the counters."""

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.sessions: dict[str, OAuthSession] = {}
        self.codes: dict[str, AuthCode] = {}
        self.access_tokens: dict[str, float] = {}
        self.refresh_tokens: set[str] = set()
        self.login_count = 0
        self.refresh_count = 0
        self.refresh_attempts = 0
        self.edge_refusals: list[str] = []  # the OAuth steps the edge_block knob refused, in order
        self.clock: Callable[[], float] = time.time  # token expiry (a test may set a controllable clock)
        self.sent_pins: list[SentPin] = []

    def _edge(self, step: str) -> None:
        """The edge_block knob: Cloudflare's answer to this OAuth step (a 406 with its HTML page)."""
        if step in self.config.edge_block:
            self.edge_refusals.append(step)
            ray = f"{secrets.token_hex(8)}-FRA"
            raise ApiError(
                406,
                "<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head><body>"
                "<h1>Sorry, you have been blocked</h1><p>You are unable to access api.oauth.blink.com</p>"
                f"<p>Cloudflare Ray ID: <strong>{ray.split('-')[0]}</strong></p></body></html>",
                headers={"cf-ray": ray, "Server": "cloudflare", "cf-cache-status": "DYNAMIC"},
                content_type="text/html; charset=UTF-8",
            )

    def _new_tokens(self, *, login: bool) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.access_tokens[access] = self.clock() + self.config.token_ttl_s
        self.refresh_tokens.add(refresh)
        if login:
            self.login_count += 1
        else:
            self.refresh_count += 1
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": self.config.token_ttl_s,
            "scope": "client",
        }

    def oauth_authorize_start(self, query: dict[str, str]) -> tuple[str, str]:
        """Start a login: returns (session id, redirect location)."""
        self._edge("authorize")
        if not is_uuid(query.get("hardware_id")):
            raise ApiError(406, "Not Acceptable", content_type="text/plain")
        challenge = query.get("code_challenge", "")
        if not challenge or query.get("code_challenge_method", "S256") != "S256":
            raise ApiError(400, {"error": "invalid_request", "error_description": "PKCE S256 required"})
        if query.get("response_type", "code") != "code":
            raise ApiError(400, {"error": "unsupported_response_type"})
        with self.lock:
            sid = secrets.token_urlsafe(24)
            self.sessions[sid] = OAuthSession(
                sid=sid,
                client_id=query.get("client_id", "ios"),
                hardware_id=query["hardware_id"],
                challenge=challenge,
                state=query.get("state") or secrets.token_urlsafe(8),
                csrf=secrets.token_urlsafe(24),
            )
            return sid, "/oauth/v2/signin"

    def _session(self, sid: str | None) -> OAuthSession:
        session = self.sessions.get(sid or "")
        if session is not None and time.time() > session.created + self.config.signin_session_ttl_s:
            raise ApiError(400, {"error": "invalid_request", "error_description": "Sign-in session expired"})
        if session is None:
            raise ApiError(
                400,
                {
                    "error": "bad_request",
                    "error_cause": "empty_cookies",
                    "error_description": "Empty Cookies.",
                },
            )
        return session

    def oauth_signin_page(self, sid: str | None) -> str:
        with self.lock:
            session = self._session(sid)
            return (
                "<!DOCTYPE html><html><head><title>Blink - Sign in</title>"
                '<script id="oauth-args" type="application/json">'
                f'{{"csrf-token": "{session.csrf}"}}</script></head>'
                '<body><form method="post" action="/oauth/v2/signin">'
                '<input name="username"><input name="password" type="password"></form></body></html>'
            )

    def oauth_signin(self, sid: str | None, form: dict[str, str]) -> tuple[int, dict[str, Any] | None]:
        """Returns (status, json body or None for a redirect)."""
        self._edge("signin")
        with self.lock:
            session = self._session(sid)
            if form.get("csrf-token") != session.csrf:
                raise ApiError(400, {"error": "invalid_request", "error_description": "Invalid CSRF token"})
            if (
                form.get("username", "").lower() != self.config.username.lower()
                or form.get("password") != self.config.password
            ):
                raise ApiError(
                    401, {"error": "invalid_grant", "error_description": "Invalid username or password"}
                )
            session.signed_in = True
            if not self.config.two_factor:
                return 302, None
            session.needs_2fa = True
            session.pin = self.config.pin or f"{secrets.randbelow(10**6):06d}"
            self.sent_pins.append(SentPin("+1xxxxxxx89", session.pin, time.time()))
            body = {
                "next_time_in_secs": 60,
                "phone": "+1xxxxxxx89",
                "tsv_methods": ["sms"],
                "tsv_state": "sms",
                "user_id": self.config.user_id,
            }
            return self.config.two_factor_status, body

    def oauth_verify_2fa(self, sid: str | None, form: dict[str, str]) -> dict[str, Any]:
        self._edge("verify")
        with self.lock:
            session = self._session(sid)
            if form.get("csrf-token") != session.csrf:
                raise ApiError(400, {"error": "invalid_request", "error_description": "Invalid CSRF token"})
            if not session.signed_in:
                raise ApiError(400, {"error": "invalid_request", "error_description": "Not signed in"})
            if form.get("2fa_code", "").strip() != session.pin:
                raise ApiError(401, {"error": "invalid_2fa_code", "error_description": "Invalid 2FA code"})
            session.verified = True
            return {"status": "auth-completed"}

    def oauth_authorize_code(self, sid: str | None) -> str:
        """Second authorize call (no query): returns the callback Location with a fresh code."""
        with self.lock:
            session = self._session(sid)
            if not session.signed_in or (session.needs_2fa and not session.verified):
                raise ApiError(400, {"error": "login_required", "error_description": "Sign in first"})
            code = secrets.token_urlsafe(24)
            self.codes[code] = AuthCode(
                code,
                session.challenge,
                session.client_id,
                session.hardware_id,
                time.time() + self.config.auth_code_ttl_s,
            )
            return f"{REDIRECT_URI}?code={code}&state={session.state}"

    def oauth_token(self, form: dict[str, str], hardware_header: str | None) -> dict[str, Any]:
        grant = form.get("grant_type", "")
        if hardware_header is not None and not is_uuid(hardware_header):
            raise ApiError(406, "Not Acceptable", content_type="text/plain")
        if "hardware_id" in form and not is_uuid(form["hardware_id"]):
            raise ApiError(406, "Not Acceptable", content_type="text/plain")
        with self.lock:
            if grant == "authorization_code":
                self._edge("token")
                code = self.codes.pop(form.get("code", ""), None)
                if code is None or code.expires < time.time():
                    raise ApiError(
                        400, {"error": "invalid_grant", "error_description": "Invalid authorization code"}
                    )
                if pkce_challenge(form.get("code_verifier", "")) != code.challenge:
                    raise ApiError(
                        400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
                    )
                if not is_uuid(form.get("hardware_id")):
                    raise ApiError(
                        400, {"error": "invalid_request", "error_description": "hardware_id required"}
                    )
                return self._new_tokens(login=True)
            if grant == "refresh_token":
                self.refresh_attempts += 1
                self._edge("refresh")
                self._refusal(self.config.refresh_refusal)
                token = form.get("refresh_token", "")
                if token not in self.refresh_tokens:
                    raise ApiError(
                        401, {"error": "invalid_grant", "error_description": "Invalid refresh token"}
                    )
                self.refresh_tokens.discard(token)
                return self._new_tokens(login=False)
            if grant == "password":
                raise ApiError(401, {"error": "unsupported_grant_type"})
            raise ApiError(400, {"error": "unsupported_grant_type"})

    @staticmethod
    def _refusal(kind: str | None) -> None:
        if kind == "edge-406":
            raise ApiError(406, "Not Acceptable", content_type="text/plain")
        if kind == "invalid_grant":
            raise ApiError(400, {"error": "invalid_grant", "error_description": "Invalid refresh token"})
        if kind == "forbidden":
            raise ApiError(403, "<html><body>Forbidden</body></html>", content_type="text/html")
        if kind == "server-error":
            raise ApiError(503, {"message": "Service Unavailable", "code": 503})
        if kind == "upgrade":  # this app version is no longer accepted
            raise ApiError(426, {"message": "Upgrade Required", "code": 426})

    def last_pin(self) -> str | None:
        """The PIN of the latest "SMS" (None when none was sent)."""
        with self.lock:
            return self.sent_pins[-1].pin if self.sent_pins else None

    def expire_tokens(self) -> None:
        with self.lock:
            for token in self.access_tokens:
                self.access_tokens[token] = 0.0

    # ------------------------------------------------------------------ REST auth
    def check_auth(self, bearer: str | None) -> None:
        now = self.clock()
        with self.lock:
            if bearer is not None:
                expires = self.access_tokens.get(bearer)
                if expires is not None and expires > now:
                    return
        raise ApiError(401, UNAUTHORIZED)

    def check_account(self, account_id: int) -> None:
        if account_id != self.config.account_id:
            raise ApiError(403, {"message": "Forbidden: account mismatch", "code": 103})
