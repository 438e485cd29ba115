"""Store: make a clip's staged files durable in every destination; a row per object once it is."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

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
) -> None:
    """Put every file in every destination that does not already hold it (by the DB rows).

    Each object's row is committed right after its put returned, so a crash or a failing destination
    resumes with only what is missing. Raises the first destination error after trying all of them.
    """
    with session_scope(engine) as s:
        have = {(o.destination, o.kind, o.sha256) for o in repo.objects_of(s, clip_id)}
    first_error: BaseException | None = None
    for dest in destinations:
        try:
            for f in files:
                if (dest.name, f.kind, f.sha256) in have:
                    continue
                meta = {**metadata, "kind": f.kind.value, "sha256": f.sha256}
                info = await asyncio.to_thread(dest.put, f.path, f.key, sha256=f.sha256, metadata=meta)
                with session_scope(engine) as s:
                    repo.record_object(s, clip_id, dest.name, f.kind, info.key, f.size, f.sha256)
        except Exception as exc:  # one failing destination must not stop the others
            first_error = first_error or exc
    if first_error is not None:
        raise first_error
