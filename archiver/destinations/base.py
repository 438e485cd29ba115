"""The one small interface every destination implements.

A destination makes a finished, already-verified local file durable under a key, and can say later
whether it still holds it. Keys are relative POSIX paths ("Home/Front Door/2024-05-01/12-00-00_42.mp4"),
already sanitised by the naming step; a backend still refuses any key that would leave its root.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from pydantic import BaseModel


class DestinationError(Exception):
    """A destination could not complete an operation (unreachable, full, refused)."""


class ObjectInfo(BaseModel):
    key: str
    size: int
    sha256: str | None = None  # when the backend knows it without re-reading (S3 metadata)


@runtime_checkable
class Destination(Protocol):
    """Thin, synchronous interface; callers run it in a worker thread."""

    name: str  # stable name used in the database ("disk", "s3", or the configured name)

    def put(self, src: Path, key: str, *, sha256: str, metadata: Mapping[str, str]) -> ObjectInfo:
        """Make ``src`` durable under ``key``; return only once it is. Idempotent. Never consumes src."""

    def stat(self, key: str) -> ObjectInfo | None:
        """Cheap existence/size check (no full read). None when missing."""

    def hash(self, key: str) -> str:
        """Re-read the object and return its sha256 hex digest (verify)."""

    def delete(self, key: str) -> None:
        """Remove the object; a missing object is not an error."""

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object under prefix (for verify's stray check)."""


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
    """The destination's own health check (``check()``, when it has one) as one error line, or None."""
    check = getattr(dest, "check", None)
    if check is None:
        return None
    try:
        check()
    except DestinationError as exc:
        return str(exc)
    except Exception as exc:  # a backend bug must not crash prune or verify
        return f"destination {dest.name!r}: {exc.__class__.__name__}: {exc}"
    return None


def delete_many(dest: Destination, keys: Sequence[str]) -> dict[str, Exception]:
    """Delete many objects, in bulk where the backend can (``delete_many``); returns the failures."""
    bulk = getattr(dest, "delete_many", None)
    if bulk is not None:
        return dict(bulk(keys))
    failures: dict[str, Exception] = {}
    for key in keys:
        try:
            dest.delete(key)
        except Exception as exc:  # one failed object must not stop the others
            failures[key] = exc
    return failures
