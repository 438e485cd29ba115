"""What ``archiver status`` shows, read with SQLAlchemy Core.

The ORM (SQLModel classes, sessions) costs more start-up time than the queries themselves, so this
module names the few columns it reads with lightweight ``table()`` constructs instead of importing
``archiver.db.models``; ``tests/test_db.py`` keeps the names in step with the models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import DateTime, Integer, String, column, func, select, table
from sqlalchemy.engine import Engine
from sqlalchemy.types import UserDefinedType

from archiver.util import as_utc


class _Label(UserDefinedType[str]):
    """A text label stored as a PostgreSQL enum type (SQLite: text). Parameters go out untyped, so the
    server reads 'failed' as its enum; a typed VARCHAR parameter would not compare. No values are
    listed here, so a state or source added later needs no change."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:  # pragma: no cover - never used to create a table
        return "TEXT"


# The clip states and built-in sources in display order: ``archiver.db.models.ClipState`` / ``ClipSource``
# (not imported: that loads the ORM; tests/test_summary.py keeps these in step with the enums).
STATES = ("discovered", "downloaded", "stored", "failed", "pruned", "duplicate")
SOURCES = ("cloud", "local")
# What people read for a source (`archiver status`, the web UI). The one user-facing word for the Sync
# Module's USB storage is "USB"; its stored name stays "local" (Clip.source, identities "local:…") and
# its config section [local_storage] (Blink's own name for the feature), so archives and configs keep
# working. Any other source is shown by its registered name.
SOURCE_LABELS = {"cloud": "cloud", "local": "USB"}


def source_label(source: str) -> str:
    return SOURCE_LABELS.get(source, source)


ACCOUNT = table(
    "account",
    column("id", Integer),
    column("name", String),
    column("access_token", String),
    column("tier", String),
    column("login_needed_reason", String),
    column("pending_signin", String),
    column("signin_blocked_until", DateTime(timezone=True)),
    column("signin_blocks", Integer),
    column("signin_block_reason", String),
)
CLIP = table(
    "clip",
    column("id", Integer),
    column("account_id", Integer),
    column("source", _Label()),
    column("state", _Label()),
    column("identity", String),
    column("attempts", Integer),
    column("last_error", String),
    column("next_attempt_at", DateTime(timezone=True)),
    column("camera_name", String),
    column("network_name", String),
    column("created_at", DateTime(timezone=True)),
    column("time_zone", String),
)
STORED_OBJECT = table("storedobject", column("clip_id", Integer), column("size", Integer))
CURSOR = table(
    "cursor",
    column("account_id", Integer),
    column("source", String),
    column("since", DateTime(timezone=True)),
)


@dataclass
class FailedClip:
    identity: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None = None  # a failed clip backing off: not tried before this
    source: str = "cloud"
    camera_name: str | None = None
    network_name: str | None = None
    created_at: datetime | None = None  # when it was recorded (UTC)
    time_zone: str | None = None  # its network's zone (IANA), for showing local times


@dataclass
class AccountSummary:
    name: str
    logged_in: bool
    tier: str | None
    counts: dict[tuple[str, str], int] = field(default_factory=dict)  # (source, state) -> clips
    cursor: datetime | None = None  # where the next cloud listing starts
    archive_bytes: int = 0
    failed: list[FailedClip] = field(default_factory=list)  # the newest few
    login_needed_reason: str | None = None  # an automatic sign-in stopped at a PIN
    pending_signin: str | None = None  # a sign-in waiting for its PIN (JSON, parsed by repo.pending_of)
    signin_blocked_until: datetime | None = None  # Blink's edge refused a sign-in: none before this
    signin_blocks: int = 0
    signin_block_reason: str | None = None


def _aware(ts: datetime | None) -> datetime | None:
    return as_utc(ts) if ts is not None else None  # SQLite returns naive values


def account_summaries(engine: Engine, last_errors: int = 5) -> list[AccountSummary]:
    """One summary per account, oldest account first."""
    out: list[AccountSummary] = []
    with engine.connect() as conn:
        accounts = conn.execute(
            select(
                ACCOUNT.c.id,
                ACCOUNT.c.name,
                ACCOUNT.c.access_token,
                ACCOUNT.c.tier,
                ACCOUNT.c.login_needed_reason,
                ACCOUNT.c.pending_signin,
                ACCOUNT.c.signin_blocked_until,
                ACCOUNT.c.signin_blocks,
                ACCOUNT.c.signin_block_reason,
            ).order_by(ACCOUNT.c.id)
        ).all()
        for acct_id, name, token, tier, login_needed, pending, blocked, blocks, block_reason in accounts:
            summary = AccountSummary(
                name=name,
                logged_in=bool(token),
                tier=tier,
                login_needed_reason=login_needed,
                pending_signin=pending,
                signin_blocked_until=_aware(blocked),
                signin_blocks=int(blocks or 0),
                signin_block_reason=block_reason,
            )
            rows = conn.execute(
                select(CLIP.c.source, CLIP.c.state, func.count())
                .where(CLIP.c.account_id == acct_id)
                .group_by(CLIP.c.source, CLIP.c.state)
            )
            summary.counts = {(str(src), str(state)): int(n) for src, state, n in rows}
            summary.cursor = _aware(
                conn.execute(
                    select(CURSOR.c.since).where(CURSOR.c.account_id == acct_id, CURSOR.c.source == "cloud")
                ).scalar()
            )
            total = select(func.coalesce(func.sum(STORED_OBJECT.c.size), 0))
            if len(accounts) > 1:  # one account (the usual case) owns every object: no join needed
                total = total.where(
                    STORED_OBJECT.c.clip_id.in_(select(CLIP.c.id).where(CLIP.c.account_id == acct_id))
                )
            summary.archive_bytes = int(conn.execute(total).scalar() or 0)
            sources = [src for (src, state), n in summary.counts.items() if state == "failed" and n]
            if sources:  # naming the sources lets the (account, source, state) index find them
                failed = conn.execute(
                    select(
                        CLIP.c.identity,
                        CLIP.c.attempts,
                        CLIP.c.last_error,
                        CLIP.c.next_attempt_at,
                        CLIP.c.source,
                        CLIP.c.camera_name,
                        CLIP.c.network_name,
                        CLIP.c.created_at,
                        CLIP.c.time_zone,
                    )
                    .where(
                        CLIP.c.account_id == acct_id,
                        CLIP.c.source.in_(sources),
                        CLIP.c.state == "failed",
                    )
                    .order_by(CLIP.c.id.desc())
                    .limit(last_errors)
                )
                summary.failed = [
                    FailedClip(i, int(a or 0), e, _aware(t), str(src), cam, net, _aware(at), tz)
                    for i, a, e, t, src, cam, net, at, tz in failed
                ]
            out.append(summary)
    return out
