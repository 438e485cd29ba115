"""The small error hierarchy. Every message is one line a user can act on, and never holds a secret."""

from __future__ import annotations


class ArchiverError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(ArchiverError):
    exit_code = 2


class AuthError(ArchiverError):
    """Login failed: wrong credentials, refused client, no token. ``login_required``: only a person
    running `archiver login` fixes it (the one thing ``notify.needs_login`` and Home Assistant ask)."""

    exit_code = 2
    login_required = False


class TwoFactorRequired(AuthError):
    login_required = True

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

    login_required = True


class SessionRejected(AuthError):
    """No usable session: none stored and no password to sign in with, or Blink rejected the token even
    after a refresh. A person runs `archiver login`."""

    login_required = True


class RefreshRefused(AuthError):
    """Blink refused a token refresh without saying the token is invalid (another 4xx): the token is
    kept, the run stops, the next run tries again by itself (exit 1, like an outage)."""

    exit_code = 1


class RefreshUnavailable(AuthError):
    """The refresh could not be done (5xx, 429, connection error): an outage, not an auth refusal. The
    token is kept; the run stops (exit 1) and the next run tries again."""

    exit_code = 1


class EdgeBlocked(AuthError):
    """Blink's edge (Cloudflare) refused a sign-in, PIN or token request (a 406, a challenge page) before
    Blink itself read it: nothing is wrong with the credentials. The account's automatic sign-ins and
    refreshes back off (15 minutes, doubling to a day); the next run after that tries again by itself."""

    exit_code = 1

    def __init__(self, message: str, *, what: str = "", status: int = 0, ray: str | None = None) -> None:
        super().__init__(message)
        self.what, self.status, self.ray = what, status, ray


class AccountBlocked(AuthError):
    """Circuit breaker: repeated 401/403/426 or a lock-out; stop instead of hammering."""

    login_required = True


class BlinkError(ArchiverError):
    """The Blink cloud answered something we cannot use (server garbage, 4xx, exhausted retries)."""


class MediaError(ArchiverError):
    """A downloaded body is not a valid clip/thumbnail (wrong type, too small, truncated)."""


class DatabaseError(ArchiverError):
    """The database cannot be reached or written (an outage: the next run retries)."""


class Unavailable(ArchiverError):
    """Something the run needs is down (a destination, the network): nothing was lost, retry later."""


_ERRNO_TEXT = {
    "ENOSPC": "disk full",
    "EDQUOT": "disk quota exceeded",
    "EACCES": "permission denied",
    "EPERM": "operation not permitted",
    "EROFS": "read-only file system",
    "ENOTDIR": "not a directory",
    "EADDRINUSE": "address already in use",
    "EMFILE": "too many open files",
}


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for inner in exc.exceptions:
            out.extend(_leaves(inner))
        return out
    return [exc]


def os_reason(exc: OSError) -> str:
    import errno

    name = errno.errorcode.get(exc.errno or 0, "")
    return _ERRNO_TEXT.get(name) or (exc.strerror or type(exc).__name__).lower()


def _sqlalchemy_line(exc: BaseException) -> ArchiverError | None:
    """One line for a database failure, never the statement or its parameters."""
    from sqlalchemy import exc as sa

    if not isinstance(exc, sa.SQLAlchemyError):
        return None
    # the DBAPI error (sqlite3 / psycopg) behind the wrapper, without SQLAlchemy's statement dump
    text = " ".join(str(exc.orig if isinstance(exc, sa.DBAPIError) else exc).split())
    low = text.lower()
    if "disk is full" in low or "no space left" in low or "disk full" in low:
        return DatabaseError("database: disk full (free space under the data directory or the database)")
    if "readonly database" in low or "read-only" in low:
        return ConfigError("database.url: the database is read-only (check data_dir and its permissions)")
    if "file is not a database" in low or "malformed" in low:  # a damaged SQLite file (archiver.db.engine)
        return ConfigError(
            f"database: the SQLite file is damaged ({text[:80]}): move it aside and run `archiver reindex` "
            "to rebuild it from the archive"
        )
    if "unable to open database file" in low:
        return ConfigError("database.url: cannot open the database file (does its folder exist?)")
    if "password authentication failed" in low or ("database" in low and "does not exist" in low):
        first = text.split("(Background", 1)[0].strip()
        return ConfigError(f"database.url: {first[:300]}")
    if isinstance(exc, sa.OperationalError | sa.InterfaceError):
        first = text.split("(Background", 1)[0].strip()
        first = first.split("Is the server running", 1)[0].strip()
        return DatabaseError(f"database: {first[:300]}")
    if isinstance(exc, sa.ArgumentError | sa.NoSuchModuleError):
        return ConfigError(f"database.url: {text[:300]}")
    return DatabaseError(f"database: {type(exc).__name__}: {text.split('[SQL:', 1)[0].strip()[:300]}")


def describe(exc: BaseException) -> ArchiverError | None:
    """The one-line, user-facing error for a failure that escaped the commands, or None when it is a bug.

    Groups (a TaskGroup's failures) are unwrapped: the first failure we can explain wins.
    """
    for leaf in _leaves(exc):
        if isinstance(leaf, ArchiverError):
            return leaf
        mod = type(leaf).__module__
        if mod.startswith("sqlalchemy"):
            line = _sqlalchemy_line(leaf)
            if line is not None:
                return line
        if mod.startswith(("httpx", "httpcore")):
            return Unavailable(f"network: {type(leaf).__name__}: {' '.join(str(leaf).split())[:200]}")
        if isinstance(leaf, OSError) and leaf.errno is not None:
            where = f" ({leaf.filename})" if leaf.filename else ""
            reason = os_reason(leaf)
            if reason in ("permission denied", "operation not permitted", "read-only file system"):
                return ConfigError(f"{reason}{where}")
            return Unavailable(f"{reason}{where}")
    return None
