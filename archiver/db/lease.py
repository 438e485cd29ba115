"""Leases in the database: one per account, so a CronJob run, a worker and a second replica never sync the
same account at once, and one per maintenance job (``job:prune``), so two prunes never run together. A
holder that dies stops renewing; its lease expires after ``ttl``. Every holder is unique to one
acquisition (host, pid and a random token), so two paths in one process exclude each other too."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from archiver.db.engine import session_scope
from archiver.db.models import Lease, utcnow

log = logging.getLogger("archiver.lease")
DEFAULT_TTL = timedelta(minutes=2)
_LIVE: set[str] = set()  # holders alive in this process


def account_lease_name(account: str) -> str:
    """The lease an account's sync holds (also what Home Assistant's "sync now" waits for)."""
    return f"account:{account}"


def job_lease_name(job: str) -> str:
    return f"job:{job}"


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _dead_local_holder(holder: str) -> bool:
    """A holder on this host whose process is gone (kill -9, OOM) need not wait for its lease to expire.
    A holder with our own pid but another token is a previous incarnation (a restarted container)."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return holder not in _LIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def try_acquire(engine: Engine, name: str, holder: str, ttl: timedelta, now: datetime | None = None) -> bool:
    now = now or utcnow()
    with session_scope(engine) as s:
        res = s.exec(  # type: ignore[call-overload]
            update(Lease)
            .where(Lease.name == name)
            .where((Lease.expires_at < now) | (Lease.holder == holder))
            .values(holder=holder, expires_at=now + ttl)
        )
        if res.rowcount:
            return True
        row = s.get(Lease, name)
        if row is not None and row.holder != holder and _dead_local_holder(row.holder):
            log.warning("lease %s: holder %s is gone; taking over", name, row.holder)
            res = s.exec(  # type: ignore[call-overload]
                update(Lease)
                .where(Lease.name == name)
                .where(Lease.holder == row.holder)
                .values(holder=holder, expires_at=now + ttl)
            )
            return bool(res.rowcount)
        if row is not None:
            return False
    try:
        with session_scope(engine) as s:
            s.add(Lease(name=name, holder=holder, expires_at=now + ttl))
        return True
    except IntegrityError:
        return False


def release(engine: Engine, name: str, holder: str) -> None:
    with session_scope(engine) as s:
        row = s.get(Lease, name)
        if row is not None and row.holder == holder:
            s.delete(row)


@contextmanager
def account_lease(engine: Engine, account: str, ttl: timedelta = DEFAULT_TTL) -> Iterator[bool]:
    """Yields True when this process holds the lease (renewed in the background until the block ends)."""
    name = account_lease_name(account)
    with held_lease(engine, name, ttl) as held:
        if not held:
            log.warning("account=%s is being synced by another run (lease held); skipping", account)
        yield held


@contextmanager
def job_lease(engine: Engine, job: str, ttl: timedelta = DEFAULT_TTL) -> Iterator[bool]:
    """The lease of a maintenance job (``prune``): True when this block holds it (renewed until it ends)."""
    with held_lease(engine, job_lease_name(job), ttl) as held:
        yield held


@contextmanager
def held_lease(engine: Engine, name: str, ttl: timedelta) -> Iterator[bool]:
    """Yields True when a fresh holder got the lease ``name`` (renewed in the background until the block
    ends, then released); False when someone else holds it."""
    holder = _holder()
    if not try_acquire(engine, name, holder, ttl):
        yield False
        return
    _LIVE.add(holder)
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(ttl.total_seconds() / 3):
            try:
                try_acquire(engine, name, holder, ttl)
            except Exception as exc:  # pragma: no cover - database hiccup; next renewal retries
                log.warning("lease renewal failed: %s", exc)

    t = threading.Thread(target=renew, name=f"lease-{name}", daemon=True)
    t.start()
    try:
        yield True
    finally:
        stop.set()
        t.join(timeout=5)
        release(engine, name, holder)
        _LIVE.discard(holder)
