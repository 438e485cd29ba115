"""The cross-source duplicate rule and the selection, against a real database (no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from archiver.config import AccountSettings
from archiver.db import repo
from archiver.db.engine import open_database, session_scope
from archiver.db.models import Clip, ClipState
from archiver.pipeline import dedup
from archiver.pipeline.select import Selection

AT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
ORDER = ["cloud", "local"]


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return open_database(f"sqlite:///{tmp_path / 'a.db'}")


@pytest.fixture
def account_id(engine: Engine) -> int:
    acct = repo.get_or_create_account(engine, "home", "u@example.com", "oauth")
    assert acct.id is not None
    return acct.id


def add(
    engine: Engine,
    account_id: int,
    source: str,
    name: str,
    at: datetime,
    state: ClipState = ClipState.discovered,
    camera: int | None = 7,
    **extra: object,
) -> Clip:
    size = 100 if state in (ClipState.stored, ClipState.pruned) else None
    clip = Clip(
        account_id=account_id,
        source=source,
        identity=f"{source}:{name}",
        blink_id=name,
        camera_blink_id=camera,
        created_at=at,
        state=state,
        size=size,
        **extra,
    )
    with session_scope(engine) as s:
        s.add(clip)
        s.flush()
        s.refresh(clip)
    return clip


def reload(engine: Engine, clip: Clip) -> Clip:
    with session_scope(engine) as s:
        row = s.get(Clip, clip.id)
        assert row is not None
        return row


def test_a_clip_whose_twin_is_stored_becomes_its_duplicate(engine: Engine, account_id: int) -> None:
    cloud = add(engine, account_id, "cloud", "1", AT, ClipState.stored)
    usb = add(engine, account_id, "local", "a", AT + timedelta(seconds=1))
    verdict = dedup.settle(engine, usb, ORDER)
    assert verdict.action == "duplicate" and verdict.twin is not None and verdict.twin.id == cloud.id
    row = reload(engine, usb)
    assert row.state == ClipState.duplicate and row.duplicate_of == cloud.id and row.last_error is None


def test_a_pending_twin_of_a_preferred_source_makes_the_clip_wait(engine: Engine, account_id: int) -> None:
    add(engine, account_id, "cloud", "1", AT)
    usb = add(engine, account_id, "local", "a", AT)
    assert dedup.settle(engine, usb, ORDER).action == "wait"
    assert reload(engine, usb).state == ClipState.discovered
    cloud = add(engine, account_id, "cloud", "2", AT + timedelta(minutes=1))
    add(engine, account_id, "local", "b", AT + timedelta(minutes=1))
    assert dedup.settle(engine, cloud, ORDER).action == "fetch"  # the preferred source never waits


def test_a_twin_that_keeps_failing_or_vanished_no_longer_blocks(engine: Engine, account_id: int) -> None:
    add(engine, account_id, "cloud", "1", AT, ClipState.failed, attempts=dedup.GIVE_UP)
    add(engine, account_id, "cloud", "2", AT + timedelta(minutes=1), deleted_upstream=True)
    first = add(engine, account_id, "local", "a", AT)
    second = add(engine, account_id, "local", "b", AT + timedelta(minutes=1))
    assert dedup.settle(engine, first, ORDER).action == "fetch"
    assert dedup.settle(engine, second, ORDER).action == "fetch"


def test_twins_pair_nearest_first_and_one_to_one(engine: Engine, account_id: int) -> None:
    """A cloud clip is the twin of the USB clip at the same second, not of one 2 s away, even when the
    farther one is checked first; and a stored clip settles at most one duplicate."""
    cloud = add(engine, account_id, "cloud", "1", AT, ClipState.stored)
    far = add(engine, account_id, "local", "far", AT + timedelta(seconds=2))
    exact = add(engine, account_id, "local", "exact", AT)
    assert dedup.settle(engine, far, ORDER).action == "fetch"
    verdict = dedup.settle(engine, exact, ORDER)
    assert verdict.action == "duplicate" and verdict.twin is not None and verdict.twin.id == cloud.id
    again = add(engine, account_id, "local", "again", AT - timedelta(seconds=1))
    assert dedup.settle(engine, again, ORDER).action == "fetch"  # cloud:1 is taken


def test_clips_of_other_cameras_or_without_a_camera_are_never_twins(engine: Engine, account_id: int) -> None:
    add(engine, account_id, "cloud", "1", AT, ClipState.stored)
    other = add(engine, account_id, "local", "a", AT, camera=8)
    unmapped = add(engine, account_id, "local", "b", AT, camera=None)
    assert dedup.settle(engine, other, ORDER).action == "fetch"
    assert dedup.settle(engine, unmapped, ORDER).action == "fetch"


def test_selection_matches_names_case_insensitively_or_ids() -> None:
    sel = Selection.of(AccountSettings(name="home", cameras=["Front Door", "42"], networks=["home"]))
    assert sel.allows(camera="front door", camera_id=1, network="Home", network_id=3)
    assert sel.allows(camera="renamed", camera_id=42, network="HOME", network_id=3)
    assert not sel.allows(camera="Back Yard", camera_id=2, network="Home", network_id=3)
    assert not sel.allows(camera="Front Door", camera_id=1, network="Cabin", network_id=4)
    assert Selection().allows(camera=None, camera_id=None, network=None, network_id=None)


def test_a_cloud_clip_is_not_taken_for_the_twin_of_a_usb_clip_that_has_a_nearer_one(
    engine: Engine, account_id: int
) -> None:
    """Two cloud clips 2 s apart, the USB copy of the second one stored: the first is still fetched."""
    usb = add(engine, account_id, "local", "a", AT + timedelta(seconds=2), ClipState.stored)
    first = add(engine, account_id, "cloud", "1", AT)
    second = add(engine, account_id, "cloud", "2", AT + timedelta(seconds=2))
    assert dedup.settle(engine, first, ORDER).action == "fetch"
    verdict = dedup.settle(engine, second, ORDER)
    assert verdict.action == "duplicate" and verdict.twin is not None and verdict.twin.id == usb.id


def test_a_twin_pruned_by_retention_still_settles_the_other_copy(engine: Engine, account_id: int) -> None:
    cloud = add(engine, account_id, "cloud", "1", AT, ClipState.pruned)
    usb = add(engine, account_id, "local", "a", AT)
    verdict = dedup.settle(engine, usb, ORDER)
    assert verdict.action == "duplicate" and verdict.twin is not None and verdict.twin.id == cloud.id
