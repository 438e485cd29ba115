"""The cross-source duplicate rule, for every source's clips: one recording is stored once.

Two clips of different sources are *twins* when they come from the same camera within ±2 s. Each clip
pairs with its nearest twin (the same second first, then the oldest row), one-to-one: a twin that already
settled another duplicate, or whose own nearest twin is a different clip, is not a match. Before a clip is
fetched:

* a stored (or since pruned) twin → the clip becomes ``duplicate`` pointing at it (a duplicate always points
  at a clip that was archived);
* a pending twin of a source registered earlier (cheaper: the cloud costs no module wake-up) that can still
  deliver → the clip waits (left pending, checked again next run);
* otherwise the clip is fetched. A twin that vanished upstream or failed ``GIVE_UP`` times no longer blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy.engine import Engine
from sqlmodel import Session

from archiver.db import repo
from archiver.db.engine import session_scope
from archiver.db.models import Clip, ClipState

WINDOW = timedelta(seconds=2)
GIVE_UP = 3  # failed attempts after which a twin's other source is tried instead


@dataclass(frozen=True)
class Verdict:
    action: Literal["fetch", "duplicate", "wait"]
    twin: Clip | None = None


FETCH = Verdict("fetch")


def _viable(twin: Clip) -> bool:
    return not twin.deleted_upstream and not (twin.state == ClipState.failed and twin.attempts >= GIVE_UP)


def _pairs(s: Session, clip: Clip, twin: Clip) -> bool:
    """``clip`` is ``twin``'s nearest unsettled partner of ``clip``'s source (one-to-one pairing)."""
    if repo.claimed(s, twin.id or -1, clip.id):
        return False
    for other in repo.twins(s, twin, WINDOW, source=clip.source):
        if other.id == clip.id:
            return True
        if other.state != ClipState.duplicate and other.duplicate_of is None:
            return False  # a nearer clip of this source is the twin's real partner
    return False


def check(s: Session, clip: Clip, order: Sequence[str]) -> Verdict:
    rank = {name: i for i, name in enumerate(order)}
    mine = rank.get(clip.source, len(rank))
    for twin in repo.twins(s, clip, WINDOW):
        if twin.state == ClipState.duplicate or not _pairs(s, clip, twin):
            continue
        if twin.state in repo.ARCHIVED_STATES and twin.size is not None:
            return Verdict("duplicate", twin)
        if twin.state in repo.PENDING_STATES and rank.get(twin.source, len(rank)) < mine and _viable(twin):
            return Verdict("wait", twin)
    return FETCH


def settle(engine: Engine, clip: Clip, order: Sequence[str]) -> Verdict:
    """Check ``clip`` against the database and record a duplicate at once (runs in a worker thread)."""
    if clip.camera_blink_id is None:
        return FETCH
    with session_scope(engine) as s:
        verdict = check(s, clip, order)
        if verdict.action == "duplicate" and verdict.twin is not None and clip.id is not None:
            repo.mark_duplicate(s, clip.id, verdict.twin)
    if verdict.action == "duplicate":
        clip.state = ClipState.duplicate
    return verdict
