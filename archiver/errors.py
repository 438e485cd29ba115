"""The small error hierarchy. Every message is one line a user can act on, and never holds a secret."""

from __future__ import annotations


class ArchiverError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(ArchiverError):
    exit_code = 2


class AuthError(ArchiverError):
    """Login failed: wrong credentials, refused client, no token."""

    exit_code = 2


class TwoFactorRequired(AuthError):
    def __init__(self, message: str = "Blink asks for a 2FA PIN: run `archiver login` to enter it") -> None:
        super().__init__(message)


class AccountBlocked(AuthError):
    """Circuit breaker: repeated 401/403/426 or a lock-out; stop instead of hammering."""


class BlinkError(ArchiverError):
    """The Blink cloud answered something we cannot use (server garbage, 4xx, exhausted retries)."""


class MediaError(ArchiverError):
    """A downloaded body is not a valid clip/thumbnail (wrong type, too small, truncated)."""
