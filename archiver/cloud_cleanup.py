"""Opt-in cloud cleanup: delete archived clips from the Blink cloud once every destination was re-read and
found to hold every file of the clip (the same check as ``archiver verify``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from sqlalchemy.engine import Engine

from archiver.blink.api import BlinkAPI
from archiver.db import repo
from archiver.db.engine import session_scope
from archiver.db.models import ObjectKind, StoredObject
from archiver.destinations.base import Destination
from archiver.errors import ArchiverError
from archiver.util import one_line
from archiver.verify import object_problem

BATCH = 50
log = logging.getLogger("archiver.cloud_cleanup")


def held_everywhere(objects: Sequence[StoredObject], destinations: Sequence[Destination]) -> bool:
    for dest in destinations:
        mine = [o for o in objects if o.destination == dest.name]
        if not any(o.kind in (ObjectKind.clip, ObjectKind.transcode) for o in mine):
            return False
        if any(object_problem(dest, o.key, o.size, o.sha256) is not None for o in mine):
            return False
    return True


def _unconfirmed(count: int | None, asked: int) -> str:
    """What Blink's answer to a batch of deletions said, as words (never "None of 12")."""
    if count is None:
        return f"Blink did not say how many of {asked} deletions it made"
    return f"Blink confirmed {count} of {asked} deletions"


async def cloud_cleanup(
    api: BlinkAPI, engine: Engine, account_id: int, destinations: Sequence[Destination]
) -> tuple[int, list[str]]:
    """Returns (clips deleted from the cloud, errors)."""
    with session_scope(engine) as s:
        rows = repo.cloud_cleanup_candidates(s, account_id)
        objects = {c.id: repo.objects_of(s, c.id) for c in rows if c.id is not None}
    verified = [
        c
        for c in rows
        if c.id is not None and await asyncio.to_thread(held_everywhere, objects[c.id], destinations)
    ]
    deleted = 0
    for i in range(0, len(verified), BATCH):
        batch = verified[i : i + BATCH]
        try:
            count = await api.delete_media([int(c.blink_id) for c in batch])
        except ArchiverError as exc:
            return deleted, [f"cloud cleanup: {one_line(exc)}"]
        if count is None or count < len(batch):
            # recorded only once Blink confirms: here its count, else the tombstones of a later listing
            log.info(
                "cloud cleanup: %s; recorded once a later listing shows them gone",
                _unconfirmed(count, len(batch)),
            )
            continue
        with session_scope(engine) as s:
            repo.mark_cloud_deleted(s, [c.id for c in batch if c.id is not None])
        deleted += len(batch)
    return deleted, []
