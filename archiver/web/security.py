"""Who may connect: loopback binds are open; any other bind needs [server.auth] (HTTP basic, or a bearer
token). Probes and /metrics stay open so the kubelet and Prometheus need no credentials; they show no
archive content."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import secrets

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from archiver.config import ServerAuthSettings, ServerSettings
from archiver.errors import ConfigError

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(server: ServerSettings, host: str) -> None:
    """Refuse (ConfigError, exit 2) to publish the archive on a non-loopback address without auth."""
    if server.ui and not is_loopback(host) and not server.auth.configured:
        raise ConfigError(
            f"refusing to serve the web UI on {host} without authentication: set server.auth.password "
            "(ARCHIVER_SERVER__AUTH__PASSWORD) or server.auth.token, bind to 127.0.0.1, or set "
            "server.ui = false"
        )


def _equal(given: str, secret: str) -> bool:
    return secrets.compare_digest(given.encode(), secret.encode())


def authorized(auth: ServerAuthSettings, header: str | None) -> bool:
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    value = value.strip()
    token = auth.token.get_secret_value() if auth.token else ""
    password = auth.password.get_secret_value() if auth.password else ""
    if scheme.lower() == "bearer":
        return bool(token) and _equal(value, token)
    if scheme.lower() != "basic":
        return False
    try:
        user, _, given = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    ok_user = _equal(user, auth.username)
    ok_pw = (bool(password) and _equal(given, password)) | (bool(token) and _equal(given, token))
    return ok_user and ok_pw


class AuthMiddleware:
    """Plain ASGI middleware: 401 with a basic-auth challenge unless the request is authorised."""

    def __init__(self, app: ASGIApp, auth: ServerAuthSettings) -> None:
        self.app = app
        self.auth = auth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if authorized(self.auth, Headers(scope=scope).get("authorization")):
            await self.app(scope, receive, send)
            return
        response = PlainTextResponse(
            "authentication required\n",
            status_code=401,
            headers={"WWW-Authenticate": 'Basic realm="blink-archiver", charset="UTF-8"'},
        )
        await response(scope, receive, send)
