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


class PinNeeded(TwoFactorRequired):
    """A sign-in stopped at a PIN challenge and was saved: ``archiver login --pin`` finishes it."""

    def __init__(self, message: str, sent_to: str) -> None:
        super().__init__(message)
        self.sent_to = sent_to


class BadCredentials(AuthError):
    """Blink refused the username or password."""


class LoginNeeded(AuthError):
    """The account is marked "login needed": no machine signs in again until a person runs
    ``archiver login`` (an automatic sign-in stopped at a PIN or a refused password)."""


class RefreshRefused(AuthError):
    """Blink refused a token refresh without saying the token is invalid (406, other 4xx): the token
    is kept, the run stops, the next run tries again."""


class RefreshUnavailable(AuthError):
    """The refresh could not be done (5xx, 429, connection error): an outage, not an auth refusal. The
    token is kept; the run stops (exit 1) and the next run tries again."""

    exit_code = 1


class AccountBlocked(AuthError):
    """Circuit breaker: repeated 401/403/426 or a lock-out; stop instead of hammering."""


class BlinkError(ArchiverError):
    """The Blink cloud answered something we cannot use (server garbage, 4xx, exhausted retries)."""


class MediaError(ArchiverError):
    """A downloaded body is not a valid clip/thumbnail (wrong type, too small, truncated)."""
