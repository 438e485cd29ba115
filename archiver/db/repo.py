"""Clip queries and state transitions (no SQL built from strings). Reports (metrics, retention, verify) keep
their own read-only aggregate queries."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import func, insert, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session, col, select
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from archiver.blink.credentials import (
    Credentials,
    PendingSignIn,
    SignInBlock,
    login_hint,
    new_hardware_id,
    read_spill,
    spill,
)
from archiver.blink.ratelimit import LearnedRate
from archiver.db.engine import session_scope
from archiver.db.models import (
    Account,
    Camera,
    Clip,
    ClipSource,
    ClipState,
    Cursor,
    Network,
    ObjectKind,
    RateMemory,
    StoredObject,
    SyncModule,
    utcnow,
)
from archiver.errors import ArchiverError
from archiver.logs import REDACTOR
from archiver.util import as_utc

log = logging.getLogger("archiver.db")

PENDING_STATES = (ClipState.discovered, ClipState.downloaded, ClipState.failed)
ARCHIVED_STATES = (ClipState.stored, ClipState.pruned)


def _aware(ts: datetime | None) -> datetime | None:
    return None if ts is None else as_utc(ts)  # SQLite returns naive values


def get_or_create_account(engine: Engine, name: str, username: str | None, auth_kind: str) -> Account:
    with session_scope(engine) as s:
        acct = s.exec(select(Account).where(Account.name == name)).first()
        if acct is None:
            acct = Account(name=name, username=username, auth_kind=auth_kind, hardware_id=new_hardware_id())
            s.add(acct)
        elif username and acct.username != username:
            # another Blink login under the same name: old tokens belong to someone else
            acct.username = username
            acct.access_token = acct.refresh_token = None
            acct.token_expires_at = None
            acct.blink_account_id = None
            acct.pending_signin = acct.login_needed_reason = None
            acct.login_needed_at = None
            acct.signin_blocked_until, acct.signin_blocks, acct.signin_block_reason = None, 0, None
            s.add(acct)
        s.flush()
        s.refresh(acct)
        return acct


def accounts(s: Session) -> Sequence[Account]:
    return s.exec(select(Account).order_by(col(Account.id))).all()


def credentials_of(acct: Account) -> Credentials:
    return Credentials(
        hardware_id=acct.hardware_id,
        auth_kind=acct.auth_kind,
        access_token=acct.access_token,
        refresh_token=acct.refresh_token,
        expires_at=_aware(acct.token_expires_at),
        tier=acct.tier,
        account_id=acct.blink_account_id,
        user_id=acct.user_id,
        client_id=acct.client_id,
        login_needed=acct.login_needed_reason,
        block=block_of(acct),
    )


def block_of(acct: Account) -> SignInBlock | None:
    """The account's edge back-off (Blink's edge refused a sign-in or token request), if any."""
    until = _aware(acct.signin_blocked_until)
    if until is None:
        return None
    return SignInBlock(until=until, count=acct.signin_blocks or 1, reason=acct.signin_block_reason or "")


def save_credentials(engine: Engine, account_id: int, creds: Credentials) -> None:
    """Tokens and the login-needed mark (the pending sign-in has its own functions)."""
    with session_scope(engine) as s:
        acct = s.get(Account, account_id)
        if acct is None:
            return
        acct.auth_kind = creds.auth_kind
        acct.access_token = creds.access_token
        acct.refresh_token = creds.refresh_token
        acct.token_expires_at = creds.expires_at
        acct.tier = creds.tier
        acct.blink_account_id = creds.account_id
        acct.user_id = creds.user_id
        acct.client_id = creds.client_id
        if creds.login_needed != acct.login_needed_reason:
            acct.login_needed_reason = creds.login_needed
            acct.login_needed_at = utcnow() if creds.login_needed else None
        block = creds.block
        acct.signin_blocked_until = block.until if block else None
        acct.signin_blocks = block.count if block else 0
        acct.signin_block_reason = block.reason if block else None
        s.add(acct)


def save_pending_signin(engine: Engine, account_id: int, pending: PendingSignIn | None) -> None:
    with session_scope(engine) as s:
        acct = s.get(Account, account_id)
        if acct is None:
            return
        acct.pending_signin = pending.model_dump_json() if pending is not None else None
        s.add(acct)


def pending_signin(engine: Engine, account_id: int) -> PendingSignIn | None:
    with session_scope(engine) as s:
        acct = s.get(Account, account_id)
        return pending_of(acct) if acct is not None else None


def pending_of(acct: Account) -> PendingSignIn | None:
    return PendingSignIn.parse(acct.pending_signin)


# -- what an account needs from a person: decided here, once ------------------------------------------
def login_needed_of(acct: Account | None, name: str, *, password_configured: bool = False) -> str | None:
    """Why the account needs a person to run `archiver login` (one line, hint included), or None: the mark
    an automatic sign-in left when Blink asked for a PIN or refused the password
    (``Account.login_needed_reason``), else no stored session at all and no password to sign in with."""
    hint = login_hint(name)
    if acct is not None and acct.login_needed_reason:
        return f"{REDACTOR.scrub(acct.login_needed_reason)}: run `{hint}`"
    has_session = acct is not None and bool(acct.access_token or acct.refresh_token)
    if not has_session and not password_configured:
        return f"not logged in: run `{hint}`"
    return None


def signin_blocked_of(acct: Account | None, name: str, now: datetime | None = None) -> str | None:
    """The edge back-off's line while it holds (Blink's edge refused a sign-in or token request)."""
    block = block_of(acct) if acct is not None else None
    if block is None or not block.active(now):
        return None
    return REDACTOR.scrub(block.line(login_hint(name)))


def login_needed(engine: Engine, account: str) -> str | None:
    """Why the named account waits for `archiver login` (None: it does not, or it has no row yet).
    For /readyz: only the mark counts (a configured password may sign in by itself)."""
    with session_scope(engine) as s:
        acct = s.exec(select(Account).where(Account.name == account)).first()
        if acct is None or not acct.login_needed_reason:
            return None
        return login_needed_of(acct, account)


def signin_blocked(engine: Engine, account: str) -> str | None:
    """The named account's edge back-off line while it holds (for /readyz), else None."""
    with session_scope(engine) as s:
        return signin_blocked_of(s.exec(select(Account).where(Account.name == account)).first(), account)


_SAVE_ATTEMPTS = 4


class AccountCredentialStore:
    """The Authenticator's persistence for one account (see ``blink.auth.CredentialStore``).

    A credential save that fails (database locked, connection lost) is retried; if it still fails the
    credentials are written to ``spill_path`` (0600) so freshly rotated tokens are never lost; the next
    store for the account moves them into the database. Errors never carry the tokens (no SQL
    parameters in the message).
    """

    def __init__(self, engine: Engine, account_id: int, account: str, spill_path: Path | None = None) -> None:
        self.engine = engine
        self.account_id = account_id
        self.account = account
        self.spill_path = spill_path

    def load(self, row: Account) -> Credentials:
        creds = credentials_of(row)
        if self.spill_path is not None and self.spill_path.exists():
            spilled = read_spill(self.spill_path)
            if spilled is not None and spilled.hardware_id == row.hardware_id:
                REDACTOR.add(spilled.access_token, spilled.refresh_token)
                creds = spilled
                self.save(creds)  # moves them into the database (and removes the file) when it can
            elif spilled is None:
                self.spill_path.unlink(missing_ok=True)
        return creds

    def save(self, creds: Credentials) -> None:
        try:
            for attempt in Retrying(
                retry=retry_if_exception_type((OperationalError, DBAPIError)),
                wait=wait_exponential(multiplier=0.2, max=2.0),
                stop=stop_after_attempt(_SAVE_ATTEMPTS),
                reraise=True,
            ):
                with attempt:
                    save_credentials(self.engine, self.account_id, creds)
        except (OperationalError, DBAPIError) as exc:
            cause = REDACTOR.scrub(str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__)
            if self.spill_path is None:
                raise ArchiverError(
                    f"could not save the Blink credentials to the database ({cause})"
                ) from None
            spill(self.spill_path, creds)
            log.error(
                "could not save the Blink credentials to the database (%s) after %d tries; kept them in %s "
                "until the database takes them",
                cause,
                _SAVE_ATTEMPTS,
                self.spill_path,
            )
            return
        if self.spill_path is not None:
            self.spill_path.unlink(missing_ok=True)

    def save_pending(self, pending: PendingSignIn | None) -> None:
        save_pending_signin(self.engine, self.account_id, pending)

    def load_pending(self) -> PendingSignIn | None:
        return pending_signin(self.engine, self.account_id)


def get_cursor(s: Session, account_id: int, source: str = "cloud") -> Cursor | None:
    cur = s.exec(select(Cursor).where(Cursor.account_id == account_id, Cursor.source == source)).first()
    if cur is not None:
        cur.since = _aware(cur.since) or cur.since
    return cur


def set_cursor(s: Session, account_id: int, since: datetime, source: str = "cloud") -> None:
    cur = get_cursor(s, account_id, source)
    if cur is None:
        cur = Cursor(account_id=account_id, source=source, since=since)
    elif since > cur.since:
        cur.since = since
    cur.updated_at = utcnow()
    s.add(cur)


def clips_by_identity(s: Session, account_id: int, identities: Iterable[str]) -> dict[str, Clip]:
    ids = list(identities)
    out: dict[str, Clip] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        rows = s.exec(select(Clip).where(Clip.account_id == account_id, col(Clip.identity).in_(chunk)))
        out.update({c.identity: c for c in rows})
    return out


def pending_clips(s: Session, account_id: int, source: str | None = None) -> Sequence[Clip]:
    q = select(Clip).where(Clip.account_id == account_id, col(Clip.state).in_(PENDING_STATES))
    if source is not None:
        q = q.where(Clip.source == source)
    return s.exec(q.order_by(col(Clip.created_at))).all()


def sources_with_clips(engine: Engine, account_id: int) -> list[str]:
    with session_scope(engine) as s:
        return list(s.exec(select(Clip.source).where(Clip.account_id == account_id).distinct()))


def objects_of(s: Session, clip_id: int) -> list[StoredObject]:
    return list(s.exec(select(StoredObject).where(StoredObject.clip_id == clip_id)))


def record_object(
    s: Session,
    clip_id: int,
    destination: str,
    kind: ObjectKind,
    key: str,
    size: int,
    sha256: str,
    existing_id: int | None = None,
) -> None:
    """Insert the object's row, or update the known row of the same (clip, destination, kind)."""
    row = s.get(StoredObject, existing_id) if existing_id is not None else None
    if row is None:
        row = StoredObject(
            clip_id=clip_id, destination=destination, kind=kind, key=key, size=size, sha256=sha256
        )
    else:
        row.key, row.size, row.sha256, row.stored_at = key, size, sha256, utcnow()
    s.add(row)


def state_counts(s: Session, account_id: int | None = None) -> dict[tuple[str, str], int]:
    q = select(Clip.source, Clip.state, func.count()).group_by(Clip.source, Clip.state)
    if account_id is not None:
        q = q.where(Clip.account_id == account_id)
    return {(str(src), ClipState(st).value): n for src, st, n in s.exec(q)}


def archive_bytes(s: Session, account_id: int | None = None) -> int:
    q = select(func.coalesce(func.sum(StoredObject.size), 0))
    if account_id is not None:
        q = q.join(Clip, Clip.id == StoredObject.clip_id).where(Clip.account_id == account_id)
    return int(s.exec(q).one())


def last_errors(s: Session, account_id: int | None = None, limit: int = 5) -> Sequence[Clip]:
    q = select(Clip).where(Clip.state == ClipState.failed)
    if account_id is not None:
        q = q.where(Clip.account_id == account_id)
    return s.exec(q.order_by(col(Clip.id).desc()).limit(limit)).all()


# -- clip state transitions -------------------------------------------------------------------------
def retry_delay(
    attempts: int, first: timedelta, cap: timedelta, jitter: Callable[[], float] = random.random
) -> timedelta:
    """The back-off after the ``attempts``-th failure: ``first``, doubling per failure, at most ``cap``;
    between 80 % and 100 % of that, so clips that failed together do not all come back together."""
    exponent = min(max(attempts - 1, 0), 40)  # 2**40 times anything is past every sane cap
    delay = min(first.total_seconds() * 2**exponent, cap.total_seconds())
    return timedelta(seconds=delay * (0.8 + 0.2 * jitter()))


def backing_off(clip: Clip, now: datetime | None = None) -> bool:
    """A failed clip whose next try has not come yet: a sync leaves it for later."""
    due = as_utc(clip.next_attempt_at) if clip.next_attempt_at is not None else None
    return clip.state == ClipState.failed and due is not None and due > (now or utcnow())


def record_failure(
    engine: Engine,
    clip_id: int,
    message: str,
    backoff: tuple[timedelta, timedelta] | None = None,
) -> datetime | None:
    """The clip failed this run: counted, the reason kept; with ``backoff`` (first delay, cap) it is not
    tried again before the returned time (see ``retry_delay``), else at the next run."""
    with session_scope(engine) as s:
        row = s.get(Clip, clip_id)
        if row is None:
            return None
        row.state = ClipState.failed
        row.attempts += 1
        row.last_error = message
        row.next_attempt_at = utcnow() + retry_delay(row.attempts, *backoff) if backoff else None
        s.add(row)
        return row.next_attempt_at


def mark_stored(
    s: Session,
    clip: Clip,
    *,
    duration: float | None = None,
    width: int | None = None,
    height: int | None = None,
    codec: str | None = None,
    note: str | None = None,
    size: int | None = None,
    sha256: str | None = None,
) -> None:
    """Every destination holds every file: ``note`` (a processing or size warning) or nothing is kept.
    One UPDATE (the row is not loaded); ``clip`` is updated to match."""
    values: dict[str, Any] = {"state": ClipState.stored, "stored_at": utcnow(), "last_error": note}
    values["next_attempt_at"] = None
    if duration is not None or width is not None or codec is not None:
        values.update(duration=duration, width=width, height=height, codec=codec)
    if size is not None and sha256 is not None:
        values.update(size=size, sha256=sha256)
    update_clip(s, clip.id, values)  # type: ignore[arg-type]
    for k, v in values.items():
        setattr(clip, k, v)


def mark_duplicate(s: Session, clip_id: int, twin: Clip) -> None:
    """The same recording is stored as ``twin``: this row is settled without objects."""
    row = s.get(Clip, clip_id)
    if row is not None:
        row.state, row.duplicate_of, row.stored_at, row.last_error = (
            ClipState.duplicate,
            twin.id,
            utcnow(),
            None,
        )
        s.add(row)


def mark_gone(s: Session, clip: Clip, message: str) -> None:
    """Can never be fetched (gone from its source before it was archived): failed, not left pending."""
    clip.deleted_upstream = True
    clip.state = ClipState.failed
    clip.last_error = message
    s.add(clip)


# -- cross-source twins -----------------------------------------------------------------------------
def twins(s: Session, clip: Clip, window: timedelta, source: str | None = None) -> list[Clip]:
    """Clips of other sources (or of ``source``) from the same camera within ``window`` of ``clip``,
    nearest first (the same second before the next), then oldest row first. Uses ix_clip_camera_time."""
    if clip.camera_blink_id is None:
        return []
    at = as_utc(clip.created_at)
    q = select(Clip).where(
        Clip.account_id == clip.account_id,
        Clip.camera_blink_id == clip.camera_blink_id,
        col(Clip.created_at) >= at - window,
        col(Clip.created_at) <= at + window,
        Clip.source == source if source is not None else Clip.source != clip.source,
    )
    return sorted(s.exec(q), key=lambda r: (abs((as_utc(r.created_at) - at).total_seconds()), r.id or 0))


def claimed(s: Session, twin_id: int, by_other_than: int | None) -> bool:
    """Is ``twin_id`` already the stored twin of another duplicate row (one recording pairs once)?"""
    q = select(Clip.id).where(Clip.duplicate_of == twin_id, Clip.id != (by_other_than or -1))
    return s.exec(q.limit(1)).first() is not None


# -- per-source queries -----------------------------------------------------------------------------
def clips_of_module_between(
    s: Session, account_id: int, source: str, sync_module_id: int, lo: datetime, hi: datetime
) -> Sequence[Clip]:
    q = select(Clip).where(
        Clip.account_id == account_id,
        Clip.source == source,
        Clip.sync_module_blink_id == sync_module_id,
        col(Clip.created_at) >= lo,
        col(Clip.created_at) <= hi,
    )
    return s.exec(q).all()


def pending_of_module(s: Session, account_id: int, source: str, sync_module_id: int) -> Sequence[Clip]:
    q = select(Clip).where(
        Clip.account_id == account_id,
        Clip.source == source,
        Clip.sync_module_blink_id == sync_module_id,
        col(Clip.state).in_(list(PENDING_STATES)),
        col(Clip.deleted_upstream).is_(False),
    )
    return s.exec(q).all()


def cloud_cleanup_candidates(s: Session, account_id: int) -> Sequence[Clip]:
    q = select(Clip).where(
        Clip.account_id == account_id,
        Clip.source == ClipSource.cloud.value,
        Clip.state == ClipState.stored,
        col(Clip.cloud_deleted_at).is_(None),
        col(Clip.deleted_upstream).is_(False),
    )
    return s.exec(q).all()


def mark_cloud_deleted(s: Session, clip_ids: Sequence[int]) -> None:
    for clip_id in clip_ids:
        row = s.get(Clip, clip_id)
        if row is not None:
            row.cloud_deleted_at = utcnow()
            s.add(row)


def networks_of(s: Session, account_id: int) -> Sequence[Network]:
    return s.exec(select(Network).where(Network.account_id == account_id)).all()


def cameras_of(s: Session, account_id: int) -> Sequence[Camera]:
    return s.exec(select(Camera).where(Camera.account_id == account_id)).all()


def sync_modules_of(s: Session, account_id: int) -> Sequence[SyncModule]:
    return s.exec(select(SyncModule).where(SyncModule.account_id == account_id)).all()


def learned_rate(engine: Engine, account_id: int) -> LearnedRate | None:
    """The request rate earlier runs of this account learned from Blink's 429s, if any."""
    with session_scope(engine) as s:
        row = s.get(RateMemory, account_id)
        if row is None:
            return None
        return LearnedRate(rate=row.rate, ceiling=row.ceiling, updated_at=_aware(row.updated_at))


def save_learned_rate(engine: Engine, account_id: int, learned: LearnedRate | None) -> None:
    """Remember what this run learned (nothing learned: the earlier memory stays)."""
    if learned is None:
        return
    with session_scope(engine) as s:
        row = s.get(RateMemory, account_id) or RateMemory(account_id=account_id, rate=0, ceiling=0)
        row.rate, row.ceiling, row.updated_at = learned.rate, learned.ceiling, utcnow()
        s.add(row)


class ObjectRow(NamedTuple):
    kind: ObjectKind
    key: str
    size: int
    sha256: str


def insert_objects(s: Session, clip_id: int, destination: str, rows: Sequence[ObjectRow]) -> None:
    """Insert a clip's new object rows in one statement (a clip stored for the first time). Raises
    IntegrityError if one exists already (an interrupted earlier attempt): use record_object then."""
    if rows:
        now = utcnow()
        s.execute(
            insert(StoredObject.__table__),  # Core: no ORM bulk machinery for three rows
            [
                {
                    "clip_id": clip_id,
                    "destination": destination,
                    "kind": r.kind,
                    "key": r.key,
                    "size": r.size,
                    "sha256": r.sha256,
                    "stored_at": now,
                }
                for r in rows
            ],
        )


def update_clip(s: Session, clip_id: int, values: Mapping[str, Any]) -> None:
    """Set columns of one clip row without loading it (one UPDATE)."""
    table = Clip.__table__  # Core: no ORM session synchronisation for one row
    s.execute(update(table).where(table.c.id == clip_id).values(**values))
