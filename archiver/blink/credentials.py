"""What a login leaves behind: tokens, tier, account id and the stable hardware id (no I/O here)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

REFRESH_MARGIN = timedelta(seconds=60)


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
