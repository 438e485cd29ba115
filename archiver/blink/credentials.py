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

REFRESH_MARGIN = timedelta(seconds=60)
# How long a sign-in waits for its PIN. Blink does not publish how long its sign-in session (cookies +
# CSRF token) stays open; ten minutes is what the simulator uses and what users are told.
PENDING_TTL = timedelta(minutes=10)

log = logging.getLogger("archiver.blink")


def new_hardware_id() -> str:
    return str(uuid.uuid4()).upper()


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

    def valid(self, now: datetime | None = None) -> bool:
        if not self.access_token or self.account_id is None:
            return False
        if self.expires_at is None:
            return True
        return (now or datetime.now(UTC)) + REFRESH_MARGIN < self.expires_at

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
    doc["expires_at"] = creds.expires_at.isoformat() if creds.expires_at else None
    return json.dumps(doc)


def _decode(text: str) -> Credentials | None:
    try:
        doc = json.loads(text)
        if doc.get("expires_at"):
            doc["expires_at"] = datetime.fromisoformat(doc["expires_at"])
        return Credentials(**doc)
    except (ValueError, TypeError, AttributeError, ValidationError):
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
