"""The one small interface every destination implements.

A destination makes a finished, already-verified local file durable under a key, and can say later
whether it still holds it. Keys are relative POSIX paths ("Home/Front Door/2024-05-01/12-00-00_42.mp4"),
already sanitised by the naming step; a backend still refuses any key that would leave its root.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import ClassVar, NamedTuple, Protocol, runtime_checkable

from pydantic import BaseModel


class DestinationError(Exception):
    """A destination could not complete an operation (unreachable, full, refused).

    ``config`` is True when waiting will not help (no such bucket, access denied, not a folder): the
    configuration must change. Otherwise it is an outage (unreachable, full) a later run gets past.
    """

    def __init__(self, message: str, *, config: bool = False) -> None:
        super().__init__(message)
        self.config = config


class ObjectCorrupt(DestinationError):
    """The object is there but its bytes fail their own integrity check (an encrypted object's MAC):
    ``hash`` or ``open`` raise it, and verify reports the object as corrupt."""


class ObjectInfo(BaseModel):
    key: str
    size: int
    sha256: str | None = None  # when the backend knows it without re-reading (S3 metadata)


class Capability(enum.StrEnum):
    """What a backend can do beyond the required operations; declared by the class, never probed."""

    health_check = "health_check"  # check() really asks the backend (else it is a no-op)
    bulk_delete = "bulk_delete"  # delete_many() is one request per many keys (else a loop)
    stored_sha256 = "stored_sha256"  # stat() returns the sha256 without re-reading the object
    incomplete_uploads = "incomplete_uploads"  # abort_incomplete_uploads() frees interrupted uploads
    free_space = "free_space"  # preflight() refuses when the backend is (nearly) full
    batch_put = "batch_put"  # put_many() makes a clip's objects durable together (else put by put)


@runtime_checkable
class Destination(Protocol):
    """Thin, synchronous interface; callers run it in a worker thread.

    Subclass :class:`DestinationBase` for the optional operations' defaults.
    """

    name: str  # stable name used in the database ("disk", "s3", or the configured name)
    capabilities: ClassVar[frozenset[Capability]]

    def put(self, src: Path, key: str, *, sha256: str, metadata: Mapping[str, str]) -> ObjectInfo:
        """Make ``src`` durable under ``key``; return only once it is. Idempotent. Never consumes src."""

    def stat(self, key: str) -> ObjectInfo | None:
        """Cheap existence/size check (no full read). None when missing."""

    def hash(self, key: str) -> str:
        """Re-read the object and return its sha256 hex digest (verify)."""

    def read_to(self, key: str, path: Path) -> None:
        """Copy the object's bytes to a local file (repair from another destination)."""

    def open(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The object's bytes ``[start, end)`` (``end`` None: to the end) as chunks, read lazily
        (restic's ``Load``). Raises DestinationError when the key is missing (at the first ``next``
        at the latest). Every reader (web UI, Home Assistant, verify, export, reindex) reads through
        this or :meth:`location`; nothing reaches into a backend's attributes. Callers in async code
        use :func:`stream`."""

    def location(self, key: str) -> str | None:
        """Where a caller may read the object directly, or None: a local file path (``/...``) that
        may be served as it is, or a URL it may hand out. A hint only: :meth:`open` always works."""

    def delete(self, key: str) -> None:
        """Remove the object; a missing object is not an error."""

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under prefix (for verify's stray check)."""

    def check(self) -> None:
        """Raise DestinationError unless the backend answers (read-only, cheap)."""

    def preflight(self) -> list[str]:
        """Once per sync/verify, before the first download: raise DestinationError when nothing could
        be stored (missing bucket, unwritable or full folder); tidy what interrupted runs left behind.
        Returns notes worth logging."""

    def delete_many(self, keys: Sequence[str]) -> dict[str, Exception]:
        """Delete many objects; returns the failures by key (a missing object is not a failure)."""

    def abort_incomplete_uploads(self, older_than: timedelta) -> tuple[int, int]:
        """Abort uploads interrupted longer than ``older_than`` ago; returns (uploads, bytes)."""


class PutItem(NamedTuple):
    """One object of :func:`put_many`: what :meth:`Destination.put` takes."""

    src: Path
    key: str
    sha256: str
    metadata: Mapping[str, str]


PutDone = Callable[[PutItem, ObjectInfo], None]


class DestinationBase:
    """Defaults for the optional operations (a backend declares what it does better in
    ``capabilities``)."""

    name: str
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    def delete(self, key: str) -> None:  # pragma: no cover - every backend implements it
        raise NotImplementedError

    def location(self, key: str) -> str | None:
        return None

    def open(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        raise NotImplementedError  # pragma: no cover - every backend implements it

    def hash(self, key: str) -> str:
        """The sha256 of what :meth:`open` gives (a backend that can do better overrides it)."""
        digest = hashlib.sha256()
        for chunk in self.open(key):
            digest.update(chunk)
        return digest.hexdigest()

    def read_to(self, key: str, path: Path) -> None:
        """What :meth:`open` gives, written to ``path``."""
        chunks = self.open(key)
        with open(path, "wb") as out:
            for chunk in chunks:
                out.write(chunk)

    def check(self) -> None:
        return None

    def preflight(self) -> list[str]:
        self.check()
        return []

    def delete_many(self, keys: Sequence[str]) -> dict[str, Exception]:
        failures: dict[str, Exception] = {}
        for key in keys:
            try:
                self.delete(key)
            except Exception as exc:  # one failed object must not stop the others
                failures[key] = exc
        return failures

    def abort_incomplete_uploads(self, older_than: timedelta) -> tuple[int, int]:
        return 0, 0


READ_CHUNK = 256 * 1024  # what open() yields at a time


def read_all(dest: Destination, key: str) -> bytes:
    """A small object's whole content (a sidecar, a thumbnail)."""
    return b"".join(dest.open(key))


async def stream(dest: Destination, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
    """:meth:`Destination.open` for async callers: each chunk is read in a worker thread."""
    from starlette.concurrency import iterate_in_threadpool

    chunks = dest.open(key, start, end)
    try:
        async for chunk in iterate_in_threadpool(chunks):
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def is_temporary_key(key: str) -> bool:
    """True for names that are never clips: a hidden segment (``.x``) or an in-progress ``*.part`` file."""
    parts = key.split("/")
    return key.endswith(".part") or any(p.startswith(".") for p in parts if p)


def check_key(key: str, destination: str) -> str:
    """Refuse keys that could leave a destination's root; return the key unchanged otherwise."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise DestinationError(f"destination {destination!r}: refused unsafe key {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise DestinationError(f"destination {destination!r}: refused unsafe key {key!r}")
    return key


def unreachable(dest: Destination) -> str | None:
    """The destination's own health check as one error line, or None (also when it has none)."""
    if Capability.health_check not in dest.capabilities:
        return None
    try:
        dest.check()
    except DestinationError as exc:
        return str(exc)
    except Exception as exc:  # a backend bug must not crash prune or verify
        return f"destination {dest.name!r}: {exc.__class__.__name__}: {exc}"
    return None


def delete_many(dest: Destination, keys: Sequence[str]) -> dict[str, Exception]:
    """Delete many objects (in bulk where the backend can); returns the failures."""
    try:
        return dict(dest.delete_many(keys))
    except Exception as exc:  # a backend bug: every key failed
        return dict.fromkeys(keys, exc)


def put_many(dest: Destination, items: Sequence[PutItem], done: PutDone) -> None:
    """Put every item; ``done(item, info)`` is called for each once it is durable (also when a later one
    fails: then the error is raised after the ``done`` calls of those before it). A backend with the
    ``batch_put`` capability does it in one go (a disk makes each folder durable once, not once per
    object); any other gets one ``put`` after the other."""
    if Capability.batch_put in dest.capabilities:
        dest.put_many(items, done)  # type: ignore[attr-defined]  # what the capability promises
        return
    for item in items:
        done(item, dest.put(item.src, item.key, sha256=item.sha256, metadata=item.metadata))


def preflight_all(destinations: Sequence[Destination]) -> tuple[list[DestinationError], list[str]]:
    """Run every destination's preflight: (problems, notes). A problem means nothing can be stored."""
    problems: list[DestinationError] = []
    notes: list[str] = []
    for dest in destinations:
        try:
            notes.extend(dest.preflight())
        except DestinationError as exc:
            problems.append(exc)
        except Exception as exc:  # a backend bug is a problem too, never a crash
            problems.append(DestinationError(f"destination {dest.name!r}: {exc.__class__.__name__}: {exc}"))
    return problems, notes
