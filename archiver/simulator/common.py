"""What the parts of the simulated cloud share: the error answer, the common error bodies, timestamp and
id helpers, and ``Context`` (the knobs, the quirks and the one lock every part takes).

Clock rules: token expiry uses ``OAuth.clock`` (the wall clock, ``time.time``, unless a test sets its own
to move time without waiting); the local-storage delays (manifest ready, command complete, upload ready)
use ``time.monotonic``. All timestamps written to JSON are UTC with whole seconds, formatted
``YYYY-MM-DDTHH:MM:SS+00:00``.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .knobs import Faults, SimConfig
from .quirks import MediaQuirks

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
class Context:
    """The knobs, the quirks and the lock, shared by every part (``faults`` may be replaced while running)."""

    config: SimConfig
    faults: Faults
    quirks: MediaQuirks = field(default_factory=MediaQuirks)  # media/listing/USB behaviours (quirks.py)
    lock: threading.RLock = field(default_factory=threading.RLock)


class Part:
    """One concern of the simulated cloud; reads the shared knobs through its ``Context``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    @property
    def lock(self) -> threading.RLock:
        return self.ctx.lock

    @property
    def config(self) -> SimConfig:
        return self.ctx.config

    @property
    def faults(self) -> Faults:
        return self.ctx.faults

    @property
    def quirks(self) -> MediaQuirks:
        return self.ctx.quirks


def fmt_ts(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def created_time(created_at: datetime | None, last: datetime | None, backfill: int = 0) -> datetime:
    """A new clip's creation time: ``created_at`` in UTC, or now (minus ``backfill`` seconds) but always
    after ``last``."""
    if created_at is not None:
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=UTC)
        return created_at.astimezone(UTC).replace(microsecond=0)
    value = utcnow() - timedelta(seconds=backfill)
    if last is not None and value <= last:
        value = last + timedelta(seconds=1)
    return value


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
