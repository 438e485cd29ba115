"""Store: make a clip's staged files durable in every destination; a row per object once it is."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import exists, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from archiver.db import repo
from archiver.db.engine import session_scope
from archiver.db.models import Clip, ObjectKind, StoredObject
from archiver.destinations.base import Destination, DestinationError, ObjectInfo, PutItem, put_many
from archiver.pipeline.naming import EXTENSION, with_suffix_number
from archiver.util import fsync_file

MAX_SUFFIX = 10_000


@dataclass(frozen=True)
class StagedFile:
    kind: str  # an ObjectKind value or a processing step's own kind
    path: Path
    key: str
    size: int
    sha256: str


def store_all(
    engine: Engine,
    clip_id: int,
    files: Sequence[StagedFile],
    destinations: Sequence[Destination],
    metadata: Mapping[str, str],
    finish: Callable[[Session], None] | None = None,
    *,
    fresh: bool = False,
) -> None:
    """Put every file in every destination that does not already hold it (by the DB rows). Blocking:
    the pipeline runs it in a worker thread.

    A destination's rows are committed together right after its puts returned, so a crash or a failing
    destination resumes with only what is missing (puts are idempotent). ``finish`` runs in the same
    transaction as the last rows, and only when every destination holds every file. Raises the first
    destination error after trying all of them.

    Cost per clip, for one destination: two transactions (the key's claim, then the rows). ``fresh`` (a
    clip never tried before) skips reading the rows first and inserts them in one statement; should an
    interrupted earlier attempt have left rows after all, that insert fails and the rows are updated
    instead (the puts were idempotent anyway).
    """
    existing = {} if fresh else _existing(engine, clip_id)
    have = {(o.destination, o.kind, o.sha256) for o in existing.values()}
    files = claim_key(engine, clip_id, files, destinations, fresh=not existing)
    first_error: BaseException | None = None
    for i, dest in enumerate(destinations):
        todo = [f for f in files if (dest.name, f.kind, f.sha256) not in have]
        try:
            done = _put_all(dest, todo, metadata)
        except _PartlyPut as exc:  # one failing destination must not stop the others
            done = exc.done
            first_error = first_error or exc.error
        complete = i == len(destinations) - 1 and first_error is None and finish is not None
        if done or complete:
            _record(engine, clip_id, dest.name, done, finish if complete else None, fresh)
    if first_error is not None:
        raise first_error


def _existing(engine: Engine, clip_id: int) -> dict[tuple[str, ObjectKind], StoredObject]:
    with session_scope(engine) as s:
        return {(o.destination, o.kind): o for o in repo.objects_of(s, clip_id)}


# -- keys ------------------------------------------------------------------------------------------------


def template_key(files: Sequence[StagedFile]) -> str:
    """The template's key of a clip (what every file's key is a sibling of)."""
    by_kind = {f.kind: f.key for f in files}
    if ObjectKind.clip in by_kind:
        return by_kind[ObjectKind.clip]
    for kind, suffix in ((ObjectKind.sidecar, ".json"), (ObjectKind.thumbnail, ".jpg")):
        if kind in by_kind and by_kind[kind].endswith(suffix):
            return by_kind[kind][: -len(suffix)] + EXTENSION
    return files[0].key.rsplit(".", 1)[0] + EXTENSION  # a lone derived file: its own stem


def _rekey(files: Sequence[StagedFile], base: str, real: str) -> list[StagedFile]:
    if real == base:
        return list(files)
    old, new = base[: -len(EXTENSION)], real[: -len(EXTENSION)]
    out = [replace(f, key=new + f.key[len(old) :]) if f.key.startswith(old) else f for f in files]
    return [_rewrite_sidecar(f, old, new) if f.kind == ObjectKind.sidecar else f for f in out]


def _rewrite_sidecar(f: StagedFile, old: str, new: str) -> StagedFile:
    """The sidecar lists every file's key and the clip's archive key: make them name the real ones."""
    try:
        doc = json.loads(f.path.read_bytes())
        entries = doc.get("files", {}).values() if isinstance(doc, dict) else []
    except (OSError, ValueError):
        return f  # not ours to judge: stored as staged
    for entry in [*entries, doc]:  # every file's key, and the document's own archive_key
        field = "archive_key" if entry is doc else "key"
        key = entry.get(field) if isinstance(entry, dict) else None
        if isinstance(key, str) and key.startswith(old):
            entry[field] = new + key[len(old) :]
    data = json.dumps(doc, indent=2, sort_keys=True).encode()
    f.path.write_bytes(data)
    fsync_file(f.path)
    return replace(f, size=len(data), sha256=hashlib.sha256(data).hexdigest())


def _same_content(dest: Destination, key: str, f: StagedFile) -> bool | None:
    """None when ``dest`` holds nothing under ``key``; else whether it holds exactly ``f``."""
    info = dest.stat(key)
    if info is None:
        return None
    if info.size != f.size:
        return False
    if info.sha256 is not None:
        return info.sha256 == f.sha256
    return dest.hash(key) == f.sha256


def claim_key(
    engine: Engine,
    clip_id: int,
    files: Sequence[StagedFile],
    destinations: Sequence[Destination],
    *,
    fresh: bool = True,
) -> list[StagedFile]:
    """Make the clip the owner of its key and return its files under the real key.

    A clip keeps the key it owns (``Clip.archive_key``). Otherwise it claims the template's key, or the
    first free "-2", "-3"... variant: a key is taken when another clip owns it (a unique column, so two
    runs racing for one key cannot both win), when another clip's stored object uses it (rows older
    than the column), or, for a clip nothing was stored for yet, when a destination already holds an
    object with other content there. So templates without ``{id}`` and same-named cameras of two
    networks or accounts never overwrite each other.
    """
    base = template_key(files)
    primary = next((f for f in files if f.key == base), files[0])

    checked: dict[str, bool] = {}
    clips, objects = Clip.__table__, StoredObject.__table__

    def foreign(candidate: str) -> bool:
        """A destination holds an object with other content under this name (never replaced); each
        name's destinations are asked once."""
        if not fresh:
            return False
        if candidate not in checked:
            probe_key = _rekey([primary], base, candidate)[0].key
            try:
                checked[candidate] = any(_same_content(d, probe_key, primary) is False for d in destinations)
            except DestinationError:
                checked[candidate] = False  # the put reports the destination; the claim does not depend on it
        return checked[candidate]

    # The common case in one statement (Core, no ORM session): the clip owns no key yet and nothing else
    # uses the template's.
    if not foreign(base):
        in_use = exists().where(objects.c.key == base, objects.c.clip_id != clip_id)
        claim = (
            update(clips)
            .where(clips.c.id == clip_id, clips.c.archive_key.is_(None), ~in_use)
            .values(archive_key=base)
        )
        try:
            with engine.begin() as conn:
                if conn.execute(claim).rowcount == 1:
                    return list(files)
        except IntegrityError:
            pass  # another clip owns it: find the next free name below

    lost: set[str] = set()  # names another clip claimed between our read and our write
    start = 1
    while start < MAX_SUFFIX:
        batch = [base if n == 1 else with_suffix_number(base, n) for n in range(start, start + 20)]
        try:
            with session_scope(engine) as s:  # one transaction: what it owns, what is taken, the claim
                owned = s.exec(select(Clip.archive_key).where(Clip.id == clip_id)).first()
                if owned:
                    return _rekey(files, base, owned)
                taken = lost | set(
                    s.exec(
                        select(StoredObject.key).where(
                            col(StoredObject.key).in_(batch), StoredObject.clip_id != clip_id
                        )
                    )
                )
                taken |= set(s.exec(select(Clip.archive_key).where(col(Clip.archive_key).in_(batch))))
                for candidate in batch:
                    if candidate in taken or foreign(candidate):
                        continue
                    try:
                        s.execute(update(clips).where(clips.c.id == clip_id).values(archive_key=candidate))
                    except IntegrityError:
                        lost.add(candidate)
                        raise
                    return _rekey(files, base, candidate)
        except IntegrityError:
            continue  # read the batch again, without the name just lost
        start += 20
    raise DestinationError(f"no free key near {base!r} after {MAX_SUFFIX} tries")


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
    """All of a clip's files into one destination, in one worker-thread trip (``put_many``: a disk
    fsyncs the clip's folder once for all of them): (file, key) of each put."""
    done: list[tuple[StagedFile, str]] = []
    items = [
        PutItem(f.path, f.key, f.sha256, {**metadata, "kind": str(f.kind), "sha256": f.sha256}) for f in files
    ]
    by_item = {id(item): f for item, f in zip(items, files, strict=True)}

    def put(item: PutItem, info: ObjectInfo) -> None:
        done.append((by_item[id(item)], info.key))

    try:
        put_many(dest, items, put)
    except Exception as exc:
        raise _PartlyPut(done, exc) from exc
    return done
