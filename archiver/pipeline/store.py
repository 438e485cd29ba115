"""Store: make a clip's staged files durable in every destination; a row per object once it is."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from archiver.db import repo
from archiver.db.engine import session_scope
from archiver.db.models import ObjectKind, StoredObject
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
    *,
    fresh: bool = False,
) -> None:
    """Put every file in every destination that does not already hold it (by the DB rows).

    A destination's rows are committed together right after its puts returned, so a crash or a failing
    destination resumes with only what is missing (puts are idempotent). ``finish`` runs in the same
    transaction as the last rows, and only when every destination holds every file. Raises the first
    destination error after trying all of them.

    Cost per clip, for one destination: one trip to a worker thread for its puts and one transaction.
    ``fresh`` (a clip never tried before) skips reading the rows first and inserts them in one statement;
    should an interrupted earlier attempt have left rows after all, that insert fails and the rows are
    updated instead (the puts were idempotent anyway).
    """
    existing: dict[tuple[str, ObjectKind], StoredObject] = {}
    if not fresh:
        with session_scope(engine) as s:
            existing = {(o.destination, o.kind): o for o in repo.objects_of(s, clip_id)}
    have = {(o.destination, o.kind, o.sha256) for o in existing.values()}
    first_error: BaseException | None = None
    for i, dest in enumerate(destinations):
        todo = [f for f in files if (dest.name, f.kind, f.sha256) not in have]
        try:
            done = await asyncio.to_thread(_put_all, dest, todo, metadata)
        except _PartlyPut as exc:  # one failing destination must not stop the others
            done = exc.done
            first_error = first_error or exc.error
        complete = i == len(destinations) - 1 and first_error is None and finish is not None
        if done or complete:
            _record(engine, clip_id, dest.name, done, finish if complete else None, fresh)
    if first_error is not None:
        raise first_error


def _record(
    engine: Engine,
    clip_id: int,
    destination: str,
    done: Sequence[tuple[StagedFile, str]],
    finish: Callable[[Session], None] | None,
    fresh: bool,
) -> None:
    """One transaction: the rows of what ``destination`` now holds, and ``finish``."""
    if fresh:
        try:
            with session_scope(engine) as s:
                rows = [repo.ObjectRow(f.kind, key, f.size, f.sha256) for f, key in done]
                repo.insert_objects(s, clip_id, destination, rows)
                if finish is not None:
                    finish(s)
            return
        except IntegrityError:
            pass  # rows of an interrupted earlier attempt: update them below
    with session_scope(engine) as s:
        existing = {o.kind: o for o in repo.objects_of(s, clip_id) if o.destination == destination}
        for f, key in done:
            old = existing.get(f.kind)
            repo.record_object(
                s, clip_id, destination, f.kind, key, f.size, f.sha256, existing_id=old.id if old else None
            )
        if finish is not None:
            finish(s)


class _PartlyPut(Exception):
    def __init__(self, done: list[tuple[StagedFile, str]], error: Exception) -> None:
        super().__init__(str(error))
        self.done, self.error = done, error


def _put_all(
    dest: Destination, files: Sequence[StagedFile], metadata: Mapping[str, str]
) -> list[tuple[StagedFile, str]]:
    """All of a clip's files into one destination, in one worker-thread trip: (file, key) of each put."""
    done: list[tuple[StagedFile, str]] = []
    for f in files:
        meta = {**metadata, "kind": f.kind.value, "sha256": f.sha256}
        try:
            info = dest.put(f.path, f.key, sha256=f.sha256, metadata=meta)
        except Exception as exc:
            raise _PartlyPut(done, exc) from exc
        done.append((f, info.key))
    return done
