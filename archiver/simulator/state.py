"""The stateful model behind the fake Blink cloud.

Everything here is plain Python: the HTTP layer (``server.py``) parses requests, calls a ``SimState``
method and turns its return value (a JSON-able dict, a media body) or a raised ``ApiError`` into an
HTTP response. Every public method takes ``SimState.lock`` so the model can be used from the request
threads and from test code at the same time.

Clock rules: token expiry uses ``SimState.clock`` (the wall clock, ``time.time``, unless a test sets
its own to move time without waiting); the local-storage delays (manifest
ready, command complete, upload ready) use ``time.monotonic``. All timestamps written to JSON are UTC
with whole seconds, formatted ``YYYY-MM-DDTHH:MM:SS+00:00``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
import random
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .media import ClipBody, min_clip_size, thumbnail_bytes, thumbnail_sha256
from .quirks import MediaQuirks

REDIRECT_URI = "immedia-blink://applinks.blink.com/signin/callback"
UNAUTHORIZED = {"message": "Unauthorized Access", "code": 101}
MEDIA_NOT_FOUND = {"message": "Media not found", "code": 700}
BUSY = {"message": "System is busy, please wait", "code": 307}
SM_OFFLINE = {"message": "Sync Module is offline", "code": 1007}
MANIFEST_PENDING = {"message": "Manifest is not ready yet, please retry later", "code": 2}


class ApiError(Exception):
    """An error answer: ``status`` plus a JSON body (or text when ``content_type`` says so)."""

    def __init__(
        self,
        status: int,
        body: dict[str, Any] | str,
        headers: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.content_type = content_type


@dataclass
class Faults:
    """Fault injection knobs; all off by default and mutable while the server runs.

    Every injected fault is drawn per request from one ``random.Random(seed)``, so a retry eventually
    succeeds and a run is reproducible for a given request order.
    """

    latency_s: float = 0.0
    bandwidth_bps: float = 0.0
    error_rate: float = 0.0
    reset_rate: float = 0.0
    truncate_rate: float = 0.0
    garbage_rate: float = 0.0
    rate_limit_rps: float = 0.0
    retry_after_s: float = 1.0
    seed: int | None = 0
    faults_on_auth: bool = False
    manifest_ready_after_s: float = 0.2
    command_complete_after_s: float = 0.2
    upload_delay_s: float = 0.2
    busy_rate: float = 0.0
    _rng: random.Random | None = field(default=None, init=False, repr=False, compare=False)
    _rng_seed: int | None = field(default=None, init=False, repr=False, compare=False)
    _rng_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def _random(self) -> random.Random:
        if self._rng is None or self._rng_seed != self.seed:
            self._rng = random.Random(self.seed)
            self._rng_seed = self.seed
        return self._rng

    def chance(self, rate: float) -> bool:
        """True with probability ``rate`` (never draws when the rate is 0)."""
        if rate <= 0:
            return False
        if rate >= 1:
            return True
        with self._rng_lock:
            return self._random().random() < rate

    def uniform(self, a: float, b: float) -> float:
        with self._rng_lock:
            return self._random().uniform(a, b)

    def choice(self, options: list[Any]) -> Any:
        with self._rng_lock:
            return self._random().choice(options)


@dataclass
class SimConfig:
    username: str = "demo@example.com"
    password: str = "demo-password"
    # -- sign-in (auth knobs) --
    pin: str | None = "123456"  # every PIN "texted" is this one; None = a fresh random PIN per sign-in (real)
    two_factor: bool = True
    two_factor_status: int = 202  # 412 = the older "2FA required" answer
    two_factor_content_type: str | None = "application/json"  # of the 2FA answers; None = no header
    signin_session_ttl_s: float = 600.0  # how long a sign-in (its cookie and CSRF token) takes a PIN
    # every refresh answers: None (normal), "edge-406" (Cloudflare, text/plain), "invalid_grant" (400),
    # "forbidden" (403, HTML), "server-error" (503) or "upgrade" (426)
    refresh_refusal: str | None = None
    # Blink's edge (Cloudflare) answers these OAuth steps with a 406, an HTML page and a cf-ray header,
    # before the credentials are read: "authorize", "signin" (the credentials POST), "verify" (the PIN),
    # "token" (the code exchange), "refresh"
    edge_block: set[str] = field(default_factory=set)
    tier: str = "u011"
    account_id: int = 1001
    user_id: int = 2002
    token_ttl_s: int = 14400  # the access token's lifetime (expires_in); may be changed while running
    legacy_token_ttl_s: int = 86400
    page_limit: int = 25
    host: str = "127.0.0.1"
    port: int = 0
    legacy_enabled: bool = False  # the real v4/v5 login answers 426 for every app version since mid-2026
    mark_watched_on_download: bool = True
    auth_code_ttl_s: int = 600


@dataclass
class Network:
    id: int
    name: str
    time_zone: str
    dst: bool = True
    armed: bool = False


@dataclass
class Camera:
    id: int
    network_id: int
    name: str
    type: str
    serial: str
    removed: bool = False  # removed from the account: gone from the homescreen


@dataclass
class SyncModule:
    id: int
    network_id: int
    name: str
    serial: str
    local_storage: bool
    online: bool
    renumber_pending: bool = False


@dataclass
class CloudClip:
    id: int
    camera_id: int
    created_at: datetime
    updated_at: datetime
    size: int
    deleted: bool = False
    watched: bool = False


@dataclass
class LocalClip:
    uid: int
    sync_module_id: int
    camera_id: int
    created_at: datetime
    size: int
    clip_id: str
    deleted: bool = False


@dataclass
class Manifest:
    manifest_id: str
    request_id: int
    sync_module_id: int
    ready_at: float
    clips: dict[str, int]  # manifest clip id -> LocalClip.uid (snapshot at request time)


@dataclass
class Command:
    id: int
    network_id: int
    kind: str
    created_at: datetime
    complete_at: float
    sync_module_id: int | None = None
    target_uid: int | None = None
    done: bool = False


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


@dataclass
class LegacyToken:
    token: str
    client_id: int
    unique_id: str
    expires: float
    verified: bool


def fmt_ts(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def parse_since(value: str) -> datetime:
    """Accept ``...+0000``, ``...+00:00``, ``...Z``, with or without millis; a ``+`` decoded to space."""
    text = value.strip().replace(" ", "+")
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ApiError(400, {"message": f"Invalid since: {value!r}", "code": 400}) from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def is_uuid(value: str | None) -> bool:
    if not value:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return bool(
        re.fullmatch(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", value)
    )


def pkce_challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def alnum(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", name)


class SimState:
    """All simulated accounts data, sessions, tokens, commands and local storage."""

    def __init__(self, config: SimConfig, faults: Faults) -> None:
        self.config = config
        self.faults = faults
        self.quirks = MediaQuirks()  # media/listing/USB behaviours of the real service (quirks.py)
        self.lock = threading.RLock()
        self.networks: dict[int, Network] = {}
        self.cameras: dict[int, Camera] = {}
        self.sync_modules: dict[int, SyncModule] = {}
        self.clips: dict[int, CloudClip] = {}
        self.local_clips: dict[int, LocalClip] = {}
        self.local_aliases: dict[str, int] = {}  # every manifest clip id ever issued -> uid
        self.manifests: dict[str, Manifest] = {}
        self.manifest_by_request: dict[int, Manifest] = {}
        self.latest_manifest: dict[int, str] = {}
        self.commands: dict[int, Command] = {}
        self.uploads: dict[int, float] = {}  # LocalClip.uid -> monotonic time the upload is readable
        self.sessions: dict[str, OAuthSession] = {}
        self.codes: dict[str, AuthCode] = {}
        self.access_tokens: dict[str, float] = {}
        self.refresh_tokens: set[str] = set()
        self.legacy_tokens: dict[str, LegacyToken] = {}
        self.legacy_clients: dict[str, int] = {}  # unique_id -> client id
        self.verified_clients: set[int] = set()
        self.login_count = 0
        self.refresh_count = 0
        self.refresh_attempts = 0
        self.edge_refusals: list[str] = []  # the OAuth steps the edge_block knob refused, in order
        self.clock: Callable[[], float] = time.time  # token expiry (a test may set a controllable clock)
        self.sent_pins: list[SentPin] = []
        self.deleted_cloud_ids: set[int] = set()
        self.deleted_local_ids: set[str] = set()
        self._ids = {
            "network": itertools.count(2000001),
            "sync_module": itertools.count(3000001),
            "camera": itertools.count(4000001),
            "media": itertools.count(2139143346),
            "local": itertools.count(866333964),
            "local_uid": itertools.count(1),
            "manifest": itertools.count(4321),
            "command": itertools.count(670555852),
            "client": itertools.count(5000001),
        }
        self._last_created: datetime | None = None
        self._last_local_created: datetime | None = None
        self.purge_id = 2139143115

    def _next(self, kind: str) -> int:
        return next(self._ids[kind])

    # ------------------------------------------------------------------ world building
    def add_network(self, name: str, time_zone: str = "America/Chicago") -> int:
        with self.lock:
            nid = self._next("network")
            self.networks[nid] = Network(nid, name, time_zone)
            return nid

    def add_camera(self, network_id: int, name: str, type: str = "catalina") -> int:
        with self.lock:
            self._network(network_id)
            cid = self._next("camera")
            self.cameras[cid] = Camera(cid, network_id, name, type, serial=f"G8T1{cid:08d}")
            return cid

    def add_sync_module(
        self, network_id: int, name: str = "SM2", local_storage: bool = True, online: bool = True
    ) -> int:
        with self.lock:
            self._network(network_id)
            sid = self._next("sync_module")
            self.sync_modules[sid] = SyncModule(
                sid, network_id, name, f"G8S1{sid:08d}", local_storage, online
            )
            return sid

    def _created_at(self, created_at: datetime | None, last: datetime | None, backfill: int = 0) -> datetime:
        if created_at is not None:
            if created_at.tzinfo is None:
                created_at = created_at.replace(tzinfo=UTC)
            return created_at.astimezone(UTC).replace(microsecond=0)
        value = utcnow() - timedelta(seconds=backfill)
        if last is not None and value <= last:
            value = last + timedelta(seconds=1)
        return value

    def add_clip(
        self, camera_id: int, created_at: datetime | None = None, size: int = 200_000, _backfill: int = 0
    ) -> int:
        with self.lock:
            self._camera(camera_id)
            size = max(size, min_clip_size())
            created = self._created_at(created_at, self._last_created, _backfill)
            if created_at is None or self._last_created is None or created > self._last_created:
                self._last_created = created
            mid = self._next("media")
            self.clips[mid] = CloudClip(mid, camera_id, created, created, size)
            return mid

    def add_clips(self, camera_id: int, n: int, size: int = 200_000) -> list[int]:
        """``n`` clips one second apart, ending near now (older ones are back-filled into the past)."""
        with self.lock:
            return [self.add_clip(camera_id, size=size, _backfill=n - i) for i in range(n)]

    def add_local_clip(
        self, sync_module_id: int, camera_id: int, created_at: datetime | None = None, size: int = 150_000
    ) -> str:
        with self.lock:
            self._sync_module(sync_module_id)
            self._camera(camera_id)
            size = max(size, min_clip_size())
            created = self._created_at(created_at, self._last_local_created)
            if created_at is None:
                self._last_local_created = created
            uid = self._next("local_uid")
            clip_id = str(self._next("local"))
            self.local_clips[uid] = LocalClip(uid, sync_module_id, camera_id, created, size, clip_id)
            self.local_aliases[clip_id] = uid
            return clip_id

    def _bump(self, clip: CloudClip) -> None:
        now = utcnow()
        clip.updated_at = max(now, clip.updated_at + timedelta(seconds=1))

    def delete_clip(self, media_id: int) -> bool:
        with self.lock:
            clip = self.clips.get(media_id)
            if clip is None or clip.deleted:
                return False
            clip.deleted = True
            self._bump(clip)
            return True

    def forget_oldest_clips(self, n: int) -> list[int]:
        """Blink's cloud retention: the ``n`` oldest clips leave the cloud without a trace (no tombstone in
        the listing, unlike ``delete_clip``). Returns their ids."""
        with self.lock:
            oldest = sorted(self.clips.values(), key=lambda c: (c.created_at, c.id))[: max(n, 0)]
            for clip in oldest:
                del self.clips[clip.id]
            return [c.id for c in oldest]

    def remove_camera(self, camera_id: int) -> None:
        """The camera is removed from the account: gone from the homescreen, its cloud clips deleted."""
        with self.lock:
            self._camera(camera_id).removed = True
            for clip in self.clips.values():
                if clip.camera_id == camera_id and not clip.deleted:
                    clip.deleted = True
                    self._bump(clip)

    def set_sync_module_online(self, sync_module_id: int, online: bool) -> None:
        with self.lock:
            self._sync_module(sync_module_id).online = online

    def renumber_local_clips(self, sync_module_id: int) -> None:
        with self.lock:
            self._sync_module(sync_module_id).renumber_pending = True

    def expire_tokens(self) -> None:
        with self.lock:
            for token in self.access_tokens:
                self.access_tokens[token] = 0.0
            for legacy in self.legacy_tokens.values():
                legacy.expires = 0.0

    # ------------------------------------------------------------------ bytes
    def clip_body(self, media_id: int) -> ClipBody:
        with self.lock:
            clip = self.clips[media_id]
            return ClipBody(f"cloud:{clip.id}", clip.size)

    def thumbnail_bytes(self, media_id: int) -> bytes:
        return thumbnail_bytes(f"cloud:{media_id}")

    def thumbnail_sha256(self, media_id: int) -> str:
        return thumbnail_sha256(f"cloud:{media_id}")

    def local_clip_body(self, clip_id: str | int) -> ClipBody:
        with self.lock:
            uid = self.local_aliases[str(clip_id)]
            clip = self.local_clips[uid]
            return ClipBody(f"local:{uid}", clip.size)

    # ------------------------------------------------------------------ lookups
    def _network(self, nid: int) -> Network:
        try:
            return self.networks[nid]
        except KeyError:
            raise ApiError(404, {"message": "Network not found", "code": 404}) from None

    def _camera(self, cid: int) -> Camera:
        try:
            return self.cameras[cid]
        except KeyError:
            raise ApiError(404, {"message": "Camera not found", "code": 404}) from None

    def _sync_module(self, sid: int) -> SyncModule:
        try:
            return self.sync_modules[sid]
        except KeyError:
            raise ApiError(404, {"message": "Sync Module not found", "code": 404}) from None

    # ------------------------------------------------------------------ OAuth
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

    # ------------------------------------------------------------------ legacy login
    def legacy_login(self, body: dict[str, Any]) -> dict[str, Any]:
        if not self.config.legacy_enabled:
            raise ApiError(426, {"message": "An app update is required", "code": 105})
        with self.lock:
            if (
                str(body.get("email", "")).lower() != self.config.username.lower()
                or body.get("password") != self.config.password
            ):
                raise ApiError(401, {"message": "Invalid Credentials", "code": 200})
            unique_id = str(body.get("unique_id") or uuid.uuid4())
            client_id = self.legacy_clients.setdefault(unique_id, self._next("client"))
            verified = not self.config.two_factor or client_id in self.verified_clients
            token = secrets.token_urlsafe(16)
            self.legacy_tokens[token] = LegacyToken(
                token, client_id, unique_id, time.time() + self.config.legacy_token_ttl_s, verified
            )
            self.login_count += 1
            cfg = self.config
            return {
                "account": {
                    "account_id": cfg.account_id,
                    "user_id": cfg.user_id,
                    "client_id": client_id,
                    "new_account": False,
                    "tier": cfg.tier,
                    "region": "us",
                    "account_verification_required": False,
                    "phone_verification_required": False,
                    "client_verification_required": not verified,
                    "require_trust_client_device": False,
                    "country_required": False,
                    "verification_channel": "phone",
                    "user": {"user_id": cfg.user_id, "country": "US"},
                    "amazon_account_linked": False,
                },
                "auth": {"token": token},
                "phone": {
                    "number": "+1******89",
                    "last_4_digits": "89",
                    "country_calling_code": "1",
                    "valid": True,
                },
                "verification": {
                    "email": {"required": False},
                    "phone": {"required": not verified, "channel": "sms"},
                },
                "lockout_time_remaining": 0,
                "force_password_reset": False,
                "allow_pin_resend_seconds": 90,
            }

    def legacy_pin_verify(
        self, token: str | None, account_id: int, client_id: int, pin: str
    ) -> dict[str, Any]:
        with self.lock:
            legacy = self.legacy_tokens.get(token or "")
            if legacy is None or legacy.expires < time.time():
                raise ApiError(401, UNAUTHORIZED)
            if account_id != self.config.account_id or client_id != legacy.client_id:
                raise ApiError(403, {"message": "Forbidden", "code": 103})
            if str(pin).strip() != self.config.pin:
                raise ApiError(
                    400, {"valid": False, "require_new_pin": False, "message": "Invalid PIN", "code": 1621}
                )
            legacy.verified = True
            self.verified_clients.add(client_id)
            return {
                "valid": True,
                "require_new_pin": False,
                "message": "Client has been successfully verified",
                "code": 1626,
            }

    # ------------------------------------------------------------------ REST auth
    def check_auth(self, bearer: str | None, legacy_token: str | None) -> None:
        now = self.clock()
        with self.lock:
            if bearer is not None:
                expires = self.access_tokens.get(bearer)
                if expires is not None and expires > now:
                    return
            if legacy_token is not None:
                legacy = self.legacy_tokens.get(legacy_token)
                if legacy is not None and legacy.expires > now and legacy.verified:
                    return
        raise ApiError(401, UNAUTHORIZED)

    def check_account(self, account_id: int) -> None:
        if account_id != self.config.account_id:
            raise ApiError(403, {"message": "Forbidden: account mismatch", "code": 103})

    def tier_info(self) -> dict[str, Any]:
        return {"tier": self.config.tier, "account_id": self.config.account_id}

    # ------------------------------------------------------------------ homescreen
    def homescreen(self) -> dict[str, Any]:
        with self.lock:
            aid = self.config.account_id
            cameras, owls, doorbells = [], [], []
            for cam in self.cameras.values():
                if cam.removed:
                    continue
                ts = int(time.time())
                item = {
                    "id": cam.id,
                    "network_id": cam.network_id,
                    "name": cam.name,
                    "type": cam.type,
                    "serial": cam.serial,
                    "fw_version": "10.58",
                    "enabled": True,
                    "status": "done",
                    "onboarded": True,
                    "battery": "ok",
                    "thumbnail": f"/api/v3/media/accounts/{aid}/networks/{cam.network_id}/{cam.type}/"
                    f"{cam.id}/thumbnail/thumbnail.jpg?ts={ts}&ext=",
                    "signals": {"lfr": 5, "wifi": 5, "temp": 71, "battery": 3},
                    "local_storage_enabled": False,
                    "local_storage_compatible": True,
                    "issues": [],
                    "snooze": False,
                }
                {"owl": owls, "lotus": doorbells}.get(cam.type, cameras).append(item)
            odd = self.quirks.homescreen_items
            return {
                "account": {"id": aid, "email_verified": True, "email_verification_required": False},
                "networks": [
                    {
                        "id": n.id,
                        "name": n.name,
                        "time_zone": n.time_zone,
                        "dst": n.dst,
                        "armed": n.armed,
                        "lv_save": False,
                    }
                    for n in self.networks.values()
                ]
                + odd.get("networks", []),
                "sync_modules": [
                    {
                        "id": s.id,
                        "network_id": s.network_id,
                        "name": s.name,
                        "serial": s.serial,
                        "status": "online" if s.online else "offline",
                        "type": "sm2",
                        "subtype": "vinnie",
                        "fw_version": "4.4.8",
                        "onboarded": True,
                        "last_hb": fmt_ts(utcnow()),
                        "local_storage_enabled": s.local_storage,
                        "local_storage_compatible": True,
                        "local_storage_status": "active" if s.local_storage and s.online else "unavailable",
                    }
                    for s in self.sync_modules.values()
                ]
                + odd.get("sync_modules", []),
                "cameras": cameras + odd.get("cameras", []),
                "owls": owls + odd.get("owls", []),
                "doorbells": doorbells + odd.get("doorbells", []),
                "sirens": [],
                "chimes": [],
                "doorbell_buttons": [],
                "video_stats": {
                    "storage": 1,
                    "auto_delete_days": 60,
                    "auto_delete_day_options": [3, 7, 14, 30, 60],
                },
                "app_updates": {
                    "message": "OK",
                    "code": 103,
                    "update_available": False,
                    "update_required": False,
                },
                "device_limits": {"camera": 10, "owl": 10, "total_devices": 20},
            }

    # ------------------------------------------------------------------ cloud media
    def _media_item(self, clip: CloudClip) -> dict[str, Any]:
        cam = self.cameras[clip.camera_id]
        net = self.networks[cam.network_id]
        aid = self.config.account_id
        device = {"owl": "owl", "lotus": "doorbell"}.get(cam.type, "camera")
        item = {
            "id": clip.id,
            "created_at": fmt_ts(clip.created_at),
            "updated_at": fmt_ts(clip.updated_at),
            "deleted": clip.deleted,
            "device": device,
            "device_id": cam.id,
            "device_name": cam.name,
            "network_id": net.id,
            "network_name": net.name,
            "type": "video",
            "source": "pir",
            "watched": clip.watched,
            "partial": False,
            "thumbnail": f"/api/v2/accounts/{aid}/media/thumb/{clip.id}",
            "media": f"/api/v2/accounts/{aid}/media/clip/{clip.id}.mp4",
            "additional_devices": [],
            "time_zone": net.time_zone,
        }
        return self._quirky_item(clip, item)

    def _quirky_item(self, clip: CloudClip, item: dict[str, Any]) -> dict[str, Any]:
        q = self.quirks
        if clip.id in q.partial_ids:
            item["partial"] = True
        if q.null_fields:
            for key in ("watched", "device", "type", "source", "additional_devices", "time_zone"):
                item[key] = None
            item["updated_at"] = None
            for key in ("deleted", "partial"):
                if not item[key]:
                    item[key] = None
        return item

    def media_changed(self, since: str | None, page: int) -> dict[str, Any]:
        since_dt = parse_since(since) if since else datetime(1970, 1, 1, tzinfo=UTC)
        page = max(page, 1)
        limit = self.config.page_limit
        q = self.quirks
        size = q.short_pages or limit  # short_pages: fewer items than `limit`, yet more pages follow
        if q.endless_listing:
            page = 1
        with self.lock:
            items = [c for c in self.clips.values() if c.updated_at >= since_dt]
            items.sort(key=lambda c: (c.created_at, c.id), reverse=True)
            chunk = items[(page - 1) * size : page * size]
            media: list[Any] = [self._media_item(c) for c in chunk]
            if q.duplicate_items and media:
                again = dict(media[0])
                again["updated_at"] = fmt_ts(utcnow() + timedelta(seconds=1))
                media.append(again)
            if page == 1:
                media.extend(q.malformed_items)
            return {"limit": limit, "purge_id": self.purge_id, "refresh_count": 0, "media": media}

    def download_clip(self, media_id: int) -> ClipBody:
        with self.lock:
            clip = self.clips.get(media_id)
            if clip is None or clip.deleted:
                raise ApiError(404, MEDIA_NOT_FOUND)
            if self.config.mark_watched_on_download:
                clip.watched = True
                self._bump(clip)
            return ClipBody(f"cloud:{clip.id}", clip.size)

    def download_thumbnail(self, media_id: int) -> bytes:
        with self.lock:
            clip = self.clips.get(media_id)
            if clip is None or clip.deleted:
                raise ApiError(404, MEDIA_NOT_FOUND)
        return self.thumbnail_bytes(media_id)

    def camera_thumbnail(self, camera_id: int) -> bytes:
        with self.lock:
            self._camera(camera_id)
        return thumbnail_bytes(f"camera:{camera_id}")

    def delete_media(self, ids: list[Any]) -> dict[str, Any]:
        count = 0
        with self.lock:
            for raw in ids:
                try:
                    media_id = int(raw)
                except (TypeError, ValueError):
                    continue
                if self.delete_clip(media_id):
                    self.deleted_cloud_ids.add(media_id)
                    count += 1
        if not self.quirks.delete_count:
            return {"message": "Clips deleted successfully", "code": 200}
        return {"message": "Clips deleted successfully", "code": 200, "deleted_count": count}

    # ------------------------------------------------------------------ commands
    def _new_command(
        self, network_id: int, kind: str, sync_module_id: int | None = None, target_uid: int | None = None
    ) -> Command:
        cmd = Command(
            self._next("command"),
            network_id,
            kind,
            utcnow(),
            time.monotonic() + self.faults.command_complete_after_s,
            sync_module_id,
            target_uid,
        )
        self.commands[cmd.id] = cmd
        return cmd

    def command_status(self, network_id: int, command_id: int) -> dict[str, Any]:
        with self.lock:
            cmd = self.commands.get(command_id)
            if cmd is None or cmd.network_id != network_id:
                raise ApiError(404, {"message": "Command not found", "code": 404})
            failed = cmd.sync_module_id is not None and not self.sync_modules[cmd.sync_module_id].online
            complete = failed or cmd.done or time.monotonic() >= cmd.complete_at
            condition = "failed" if failed else ("done" if complete else "running")
            entry = {
                "id": cmd.id,
                "command": cmd.kind,
                "state_condition": condition,
                "state_stage": "dev" if complete else "sm",
                "created_at": fmt_ts(cmd.created_at),
                "updated_at": fmt_ts(utcnow()),
                "network_id": cmd.network_id,
                "sync_module_id": cmd.sync_module_id,
                "target": "sync_module",
                "target_id": cmd.sync_module_id,
            }
            return {
                "complete": complete,
                "status": 1 if failed else 0,
                "status_code": 999 if failed else 908,
                "status_msg": "Sync Module is offline" if failed else "Command succeeded",
                "commands": [entry],
                "media_id": None,
            }

    def command_done(self, network_id: int, command_id: int) -> dict[str, Any]:
        with self.lock:
            cmd = self.commands.get(command_id)
            if cmd is None or cmd.network_id != network_id:
                raise ApiError(404, {"message": "Command not found", "code": 404})
            cmd.done = True
            return {"message": f"Command {command_id} set to :done", "code": 902}

    # ------------------------------------------------------------------ local storage
    def _local_module(self, network_id: int, sync_module_id: int, *, post: bool) -> SyncModule:
        self._network(network_id)
        sm = self._sync_module(sync_module_id)
        if sm.network_id != network_id:
            raise ApiError(404, {"message": "Sync Module not found", "code": 404})
        if not sm.local_storage:
            raise ApiError(409, {"message": "Local storage is not available", "code": 1008})
        if not sm.online:
            raise ApiError(409, SM_OFFLINE)
        if post and self.faults.chance(self.faults.busy_rate):
            raise ApiError(409, BUSY)
        return sm

    def request_manifest(self, network_id: int, sync_module_id: int) -> dict[str, Any]:
        with self.lock:
            sm = self._local_module(network_id, sync_module_id, post=True)
            cmd = self._new_command(network_id, "local_storage_manifest", sm.id)
            clips = [c for c in self.local_clips.values() if c.sync_module_id == sm.id and not c.deleted]
            if sm.renumber_pending:
                for clip in clips:
                    clip.clip_id = str(self._next("local"))
                    self.local_aliases[clip.clip_id] = clip.uid
                sm.renumber_pending = False
            manifest = Manifest(
                str(self._next("manifest")),
                cmd.id,
                sm.id,
                time.monotonic() + self.faults.manifest_ready_after_s,
                {c.clip_id: c.uid for c in sorted(clips, key=lambda c: (c.created_at, c.uid))},
            )
            self.manifests[manifest.manifest_id] = manifest
            self.manifest_by_request[cmd.id] = manifest
            self.latest_manifest[sm.id] = manifest.manifest_id
            return {"id": cmd.id, "network_id": network_id}

    def get_manifest(self, network_id: int, sync_module_id: int, request_id: int) -> dict[str, Any]:
        with self.lock:
            sm = self._local_module(network_id, sync_module_id, post=False)
            manifest = self.manifest_by_request.get(request_id)
            if manifest is None or manifest.sync_module_id != sm.id:
                raise ApiError(404, {"message": "Manifest request not found", "code": 404})
            if time.monotonic() < manifest.ready_at:
                raise ApiError(409, MANIFEST_PENDING)
            clips = []
            for clip_id, uid in manifest.clips.items():
                clip = self.local_clips[uid]
                if clip.deleted:
                    continue
                clips.append(
                    {
                        "id": clip_id,
                        "size": str(math.ceil(clip.size / 1024)),
                        "camera_name": alnum(self.cameras[clip.camera_id].name),
                        "created_at": fmt_ts(clip.created_at),
                    }
                )
            for n, hostile in enumerate(self.quirks.hostile_manifest_ids):
                entry = dict(clips[0]) if clips else {"size": "100", "camera_name": "Camera"}
                entry.update(id=hostile, created_at=fmt_ts(utcnow() - timedelta(seconds=n)))
                clips.append(entry)
            clips.extend(self.quirks.malformed_manifest_entries)
            return {"version": "1.0", "manifest_id": manifest.manifest_id, "clips": clips}

    def _manifest_clip(self, sm: SyncModule, manifest_id: str, clip_id: str) -> LocalClip:
        if self.latest_manifest.get(sm.id) != manifest_id:
            raise ApiError(404, {"message": "Manifest not found", "code": 404})
        uid = self.manifests[manifest_id].clips.get(clip_id)
        if uid is None or self.local_clips[uid].deleted:
            raise ApiError(404, MEDIA_NOT_FOUND)
        return self.local_clips[uid]

    def request_local_clip(
        self, network_id: int, sync_module_id: int, manifest_id: str, clip_id: str
    ) -> dict[str, Any]:
        with self.lock:
            sm = self._local_module(network_id, sync_module_id, post=True)
            clip = self._manifest_clip(sm, manifest_id, clip_id)
            now = time.monotonic()
            for cmd in self.commands.values():
                if (
                    cmd.sync_module_id == sm.id
                    and cmd.kind == "local_storage_clip"
                    and not cmd.done
                    and now < cmd.complete_at
                ):
                    if cmd.target_uid == clip.uid:
                        return {"id": cmd.id, "network_id": network_id}
                    raise ApiError(409, BUSY)
            cmd = self._new_command(network_id, "local_storage_clip", sm.id, clip.uid)
            ready = cmd.complete_at + self.faults.upload_delay_s
            self.uploads[clip.uid] = min(self.uploads.get(clip.uid, ready), ready)
            return {"id": cmd.id, "network_id": network_id}

    def download_local_clip(
        self, network_id: int, sync_module_id: int, manifest_id: str, clip_id: str
    ) -> ClipBody:
        with self.lock:
            sm = self._local_module(network_id, sync_module_id, post=False)
            clip = self._manifest_clip(sm, manifest_id, clip_id)
            ready = self.uploads.get(clip.uid)
            if ready is None or time.monotonic() < ready:
                raise ApiError(self.quirks.usb_not_found_status, MEDIA_NOT_FOUND)
            return ClipBody(f"local:{clip.uid}", clip.size)

    def delete_local_clip(
        self, network_id: int, sync_module_id: int, manifest_id: str, clip_id: str
    ) -> dict[str, Any]:
        with self.lock:
            sm = self._local_module(network_id, sync_module_id, post=True)
            clip = self._manifest_clip(sm, manifest_id, clip_id)
            clip.deleted = True
            self.deleted_local_ids.add(clip_id)
            return {"message": "Clip deleted", "code": 200}
