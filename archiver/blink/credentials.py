"""What a login leaves behind: tokens, tier, account id and the stable hardware id; a sign-in waiting for
its PIN; and the spill file that keeps freshly rotated tokens when the database cannot take them."""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

# A token is renewed this long before it expires: a tenth of its lifetime, at most REFRESH_MARGIN (a
# 50-second token is used for 45 seconds, not refreshed before every request). A token whose lifetime
# this process does not know (read back from the database) gets the whole REFRESH_MARGIN.
REFRESH_MARGIN = timedelta(seconds=60)
# How long a sign-in waits for its PIN. Blink does not publish how long its sign-in session (cookies +
# CSRF token) stays open; ten minutes is what the simulator uses and what users are told.
PENDING_TTL = timedelta(minutes=10)

log = logging.getLogger("archiver.blink")


def new_hardware_id() -> str:
    return str(uuid.uuid4()).upper()


def login_hint(account: str) -> str:
    """The command a person runs to sign the named account in again (the one place it is spelled)."""
    return "archiver login" if account == "default" else f"archiver login --account {account}"


@dataclass(frozen=True)
class SignInBlock:
    """Blink's edge (Cloudflare) refused a sign-in or token request: no automatic sign-in or refresh is
    tried before ``until``. ``count`` is the number of refusals in a row (the back-off doubles with it)."""

    until: datetime
    count: int
    reason: str  # what was refused, how and when (one line, no secret)

    def active(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) < self.until

    def line(self, hint: str) -> str:
        """What the user is told, everywhere (CLI, status, /readyz, notification)."""
        until = self.until.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        return (
            f"Blink's edge (Cloudflare) refused the request; waiting before trying again ({self.reason}; "
            f"refusal {self.count} in a row, no automatic sign-in before {until}; `{hint}` tries at once)"
        )


@dataclass(frozen=True)
class Credentials:
    hardware_id: str
    auth_kind: str = "oauth"
    access_token: str | None = None
    refresh_token: str | None = None
    expires_at: datetime | None = None
    tier: str | None = None
    account_id: int | None = None
    user_id: int | None = None
    client_id: int | None = None
    # set when an automatic sign-in stopped at a PIN (or a refused password): no machine signs in again
    # until a person runs `archiver login`
    login_needed: str | None = None
    # Blink's edge refused a sign-in or token request: automatic renewals wait (see SignInBlock)
    block: SignInBlock | None = None
    # when this process received the access token (not stored: only then is its lifetime known)
    issued_at: datetime | None = None
    # the access token came from a refresh (not a sign-in): a 401 on it in its first half-life is not
    # answered by another refresh (a sign-in's token gets one)
    refreshed: bool = False

    def lifetime(self) -> timedelta | None:
        if self.issued_at is None or self.expires_at is None:
            return None
        return max(self.expires_at - self.issued_at, timedelta(0))

    def margin(self) -> timedelta:
        """How long before expiry the token is renewed: a tenth of its lifetime, at most a minute."""
        life = self.lifetime()
        return REFRESH_MARGIN if life is None else min(REFRESH_MARGIN, life / 10)

    def young(self, now: datetime | None = None) -> bool:
        """Within the first half of its lifetime: such a token is never refreshed again."""
        life = self.lifetime()
        if life is None or self.issued_at is None:
            return False
        return (now or datetime.now(UTC)) < self.issued_at + life / 2

    def valid(self, now: datetime | None = None) -> bool:
        if not self.access_token or self.account_id is None:
            return False
        if self.expires_at is None:
            return True
        return (now or datetime.now(UTC)) + self.margin() < self.expires_at

    def __repr__(self) -> str:  # never print tokens
        return (
            f"Credentials(hardware_id={self.hardware_id!r}, tier={self.tier!r}, account_id={self.account_id})"
        )


class PendingCookie(BaseModel):
    name: str
    value: str = Field(repr=False)
    domain: str = ""
    path: str = "/"


class PendingSignIn(BaseModel):
    """A sign-in Blink answered with a PIN challenge: everything needed to finish it in a later run.

    Secrets (cookies, CSRF token, PKCE verifier) are stored with the other credentials and never printed.
    """

    username: str
    hardware_id: str
    csrf: str = Field(repr=False)
    verifier: str = Field(repr=False)
    cookies: list[PendingCookie] = Field(default_factory=list, repr=False)
    sent_to: str
    started_at: datetime
    expires_at: datetime

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) >= self.expires_at

    def secrets(self) -> list[str]:
        return [self.csrf, self.verifier, *(c.value for c in self.cookies)]

    def until(self) -> str:
        return self.expires_at.astimezone(UTC).strftime("%H:%M UTC")

    @classmethod
    def parse(cls, stored: str | None) -> PendingSignIn | None:
        """The stored sign-in (``Account.pending_signin``), its secrets registered with the redactor."""
        if not stored:
            return None
        try:
            pending = cls.model_validate_json(stored)
        except ValidationError:
            return None
        from archiver.logs import REDACTOR

        REDACTOR.add(*pending.secrets())
        return pending


# -- the spill file ---------------------------------------------------------------------------------
# A refresh rotates the refresh token (the old one stops working). If the database cannot store the new
# pair even after retries, they go to a 0600 file beside the database; the next run loads them from there
# and moves them into the database. Without this a database hiccup would cost a new login and a PIN.


def _encode(creds: Credentials) -> str:
    doc = asdict(creds)
    for key in ("expires_at", "issued_at"):
        value = getattr(creds, key)
        doc[key] = value.isoformat() if value else None
    if creds.block is not None:
        doc["block"]["until"] = creds.block.until.isoformat()
    return json.dumps(doc)


def _decode(text: str) -> Credentials | None:
    try:
        doc = json.loads(text)
        for key in ("expires_at", "issued_at"):
            if doc.get(key):
                doc[key] = datetime.fromisoformat(doc[key])
        if doc.get("block"):
            block = doc["block"]
            doc["block"] = SignInBlock(
                until=datetime.fromisoformat(block["until"]),
                count=int(block["count"]),
                reason=block["reason"],
            )
        return Credentials(**doc)
    except (ValueError, TypeError, AttributeError, KeyError, ValidationError):
        return None


def spill(path: Path, creds: Credentials) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(_encode(creds))
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read_spill(path: Path) -> Credentials | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    creds = _decode(text)
    if creds is None:
        log.warning("ignoring the unreadable unsaved-credentials file %s", path)
    return creds
