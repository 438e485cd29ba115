"""Store: make a clip's staged files durable in every destination; a row per object once it is."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from archiver.db import repo
from archiver.db.engine import session_scope
from archiver.db.models import ObjectKind
from archiver.destinations.base import Destination


@dataclass(frozen=True)
class StagedFile:
    kind: ObjectKind
    path: Path
    key: str
    size: int
    sha256: str


async def store_all(
    engine: Engine,
    clip_id: int,
    files: Sequence[StagedFile],
    destinations: Sequence[Destination],
    metadata: Mapping[str, str],
    finish: Callable[[Session], None] | None = None,
) -> None:
    """Put every file in every destination that does not already hold it (by the DB rows).

    A destination's rows are committed together right after its puts returned, so a crash or a failing
    destination resumes with only what is missing (puts are idempotent). ``finish`` runs in the same
    transaction as the last rows, and only when every destination holds every file. Raises the first
    destination error after trying all of them.
    """
    with session_scope(engine) as s:
        existing = {(o.destination, o.kind): o for o in repo.objects_of(s, clip_id)}
    have = {(o.destination, o.kind, o.sha256) for o in existing.values()}
    first_error: BaseException | None = None
    for i, dest in enumerate(destinations):
        done: list[tuple[StagedFile, str]] = []
        try:
            for f in files:
                if (dest.name, f.kind, f.sha256) in have:
                    continue
                meta = {**metadata, "kind": f.kind.value, "sha256": f.sha256}
                info = await asyncio.to_thread(dest.put, f.path, f.key, sha256=f.sha256, metadata=meta)
                done.append((f, info.key))
        except Exception as exc:  # one failing destination must not stop the others
            first_error = first_error or exc
        complete = i == len(destinations) - 1 and first_error is None and finish is not None
        if done or complete:
            with session_scope(engine) as s:
                for f, key in done:
                    old = existing.get((dest.name, f.kind))
                    repo.record_object(
                        s,
                        clip_id,
                        dest.name,
                        f.kind,
                        key,
                        f.size,
                        f.sha256,
                        existing_id=old.id if old else None,
                    )
                if complete:
                    finish(s)  # type: ignore[misc]
    if first_error is not None:
        raise first_error
