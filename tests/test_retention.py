# ruff: noqa: F811  (pytest fixtures imported from s3_fixtures are shadowed by test parameters)
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import seed_stored
from s3_fixtures import moto_server, s3_bucket, unreachable_s3  # noqa: F401
from sqlmodel import Session, select

from archiver import retention
from archiver.config import RetentionSettings, S3DestinationSettings
from archiver.db.engine import open_database, session_scope
from archiver.db.models import Clip, ClipState, ObjectKind, StoredObject
from archiver.destinations import DestinationError, DiskDestination
from archiver.destinations.s3 import S3Destination
from archiver.retention import RetentionItem, load_candidates, plan, prune

NOW = datetime(2024, 6, 1, 0, 0, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def item(cid: int, when: str, camera: str = "A", size: int = 100, tz: str | None = None) -> RetentionItem:
    return RetentionItem(clip_id=cid, camera=camera, created_at=at(when), size=size, time_zone=tz)


def ago(cid: int, days: float, camera: str = "A", size: int = 100) -> RetentionItem:
    return RetentionItem(clip_id=cid, camera=camera, created_at=NOW - timedelta(days=days), size=size)


# Two cameras; A records on 2024-05-31 (x2), 05-30, 05-20, 04-10 (x2), 03-01; B on 05-31 and 01-01.
GFS = [
    item(1, "2024-05-31T18:00"),
    item(2, "2024-05-31T08:00"),
    item(3, "2024-05-30T12:00"),
    item(4, "2024-05-20T12:00"),  # ISO week 21; 05-30/31 are week 22
    item(5, "2024-04-10T12:00"),
    item(6, "2024-04-10T06:00"),
    item(7, "2024-03-01T12:00"),
    item(8, "2024-05-31T12:00", camera="B"),
    item(9, "2024-01-01T12:00", camera="B"),
]

CASES = [
    ("nothing-configured", [ago(1, 1), ago(2, 400)], {}, []),
    ("zero-counts-are-off", [ago(1, 1), ago(2, 400)], {"keep_last": 0, "max_total_bytes": 0}, []),
    ("max-age", [ago(1, 1), ago(2, 9.9), ago(3, 10.1), ago(4, 30)], {"max_age_days": 10}, [4, 3]),
    ("future-clip-is-young", [ago(1, -1), ago(2, 20)], {"max_age_days": 10}, [2]),
    ("keep-last-per-camera", GFS, {"keep_last": 2}, [7, 6, 5, 4, 3]),
    ("keep-last-more-than-exist", GFS, {"keep_last": 50}, []),
    ("daily", GFS, {"keep_daily": 2}, [7, 6, 5, 4, 2]),
    ("daily-skips-empty-days", GFS, {"keep_daily": 4}, [7, 6, 2]),
    ("weekly", GFS, {"keep_weekly": 2}, [7, 6, 5, 3, 2]),
    ("monthly", GFS, {"keep_monthly": 2}, [7, 6, 4, 3, 2]),
    ("monthly-many", GFS, {"keep_monthly": 12}, [6, 4, 3, 2]),
    ("daily-weekly-monthly", GFS, {"keep_daily": 1, "keep_weekly": 2, "keep_monthly": 3}, [6, 3, 2]),
    (
        "bytes-only-newest-that-fit",
        [ago(1, 1, size=100), ago(2, 2, size=100), ago(3, 3, size=100), ago(4, 4, size=10)],
        {"max_total_bytes": 250},
        [4, 3],
    ),
    (
        "bytes-no-holes",
        [ago(1, 1, size=100), ago(2, 2, size=200), ago(3, 3, size=10)],
        {"max_total_bytes": 250},
        [3, 2],
    ),
    (
        "bytes-across-cameras",
        [ago(1, 1, "A", 100), ago(2, 2, "B", 100), ago(3, 3, "A", 100)],
        {"max_total_bytes": 200},
        [3],
    ),
    (
        "age-or-last",
        [ago(1, 1), ago(2, 20), ago(3, 30), ago(4, 25, camera="B"), ago(5, 40, camera="B")],
        {"max_age_days": 10, "keep_last": 1},
        [5, 3, 2],
    ),
    (
        "bytes-is-a-hard-cap-over-keep-last",
        [ago(1, 1), ago(2, 2), ago(3, 3), ago(4, 4)],
        {"keep_last": 10, "max_total_bytes": 250},
        [4, 3],
    ),
    (
        "bytes-cap-only-counts-kept-clips",
        [ago(1, 1), ago(2, 20), ago(3, 30)],
        {"max_age_days": 10, "max_total_bytes": 1000},
        [3, 2],
    ),
    (
        "daily-in-the-clips-time-zone",
        # 23:30Z and 00:30Z are both 2024-05-02 in Berlin: one local day, so only the newer is kept.
        [
            item(1, "2024-05-02T00:30", tz="Europe/Berlin"),
            item(2, "2024-05-01T23:30", tz="Europe/Berlin"),
            item(3, "2024-05-01T20:00", tz="Europe/Berlin"),
        ],
        {"keep_daily": 2},
        [2],
    ),
    (
        "daily-in-utc-without-time-zone",
        [item(1, "2024-05-02T00:30"), item(2, "2024-05-01T23:30"), item(3, "2024-05-01T20:00")],
        {"keep_daily": 2},
        [3],
    ),
]


@pytest.mark.parametrize(("items", "policy", "forget"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_plan(items: list[RetentionItem], policy: dict, forget: list[int]) -> None:
    shuffled = list(items)
    random.Random(1).shuffle(shuffled)
    result = plan(shuffled, RetentionSettings(**policy), NOW)
    assert [i.clip_id for i in result.forget] == forget
    assert set(result.keep) | set(forget) == {i.clip_id for i in items}
    assert not set(result.keep) & set(forget)
    assert result.forget_bytes == sum(i.size for i in items if i.clip_id in forget)
    times = [i.created_at for i in result.forget]
    assert times == sorted(times)  # oldest first


def test_keep_reasons() -> None:
    result = plan(GFS, RetentionSettings(keep_last=1, keep_daily=2, keep_monthly=2, max_age_days=1), NOW)
    assert result.keep[1] == ["max_age", "last 1 of camera A", "daily 2024-05-31", "monthly 2024-05"]
    assert result.keep[3] == ["daily 2024-05-30"]
    assert result.keep[5] == ["monthly 2024-04"]
    assert result.keep[2] == ["max_age"]
    assert result.keep[8] == ["max_age", "last 1 of camera B", "daily 2024-05-31", "monthly 2024-05"]
    assert result.forget_reasons[7] == "no rule keeps it"
    weekly = plan(GFS, RetentionSettings(keep_weekly=1), NOW)
    assert weekly.keep[1] == ["weekly 2024-W22"]
    capped = plan([ago(1, 1), ago(2, 2)], RetentionSettings(keep_last=5, max_total_bytes=150), NOW)
    assert capped.forget_reasons[2] == "over max_total_bytes 150"
    assert plan([ago(1, 1)], RetentionSettings(max_total_bytes=150), NOW).keep[1] == ["max_total_bytes"]


def test_plan_100k_items() -> None:
    rng = random.Random(7)
    start = NOW - timedelta(days=400)
    items = [
        RetentionItem(
            clip_id=i,
            camera=f"cam{i % 12}",
            created_at=start + timedelta(seconds=rng.randrange(400 * 86400)),
            size=rng.randrange(500_000, 5_000_000),
            time_zone="America/New_York" if i % 2 else None,
        )
        for i in range(100_000)
    ]
    policy = RetentionSettings(
        max_age_days=30, keep_last=100, keep_daily=60, keep_weekly=20, keep_monthly=12, max_total_bytes=10**11
    )
    result = plan(items, policy, NOW)
    assert len(result.keep) + len(result.forget) == 100_000
    assert result.forget and result.keep


# -- prune end to end -------------------------------------------------------------------------------


BOTH = (ObjectKind.clip, ObjectKind.thumbnail)


class FlakyDisk(DiskDestination):
    """A disk destination whose delete fails for chosen keys (a read-only file, a locked share)."""

    fail_keys: set[str]

    def delete_many(self, keys):  # type: ignore[no-untyped-def]
        failures = {
            k: DestinationError(f"disk destination {self.name!r}: permission denied deleting {k}")
            for k in keys
            if k in self.fail_keys
        }
        failures.update(super().delete_many([k for k in keys if k not in self.fail_keys]))
        return failures


def rows(engine) -> set[tuple[int, str, str]]:
    with Session(engine) as s:
        return {(o.clip_id, o.destination, o.key) for o in s.exec(select(StoredObject))}


def states(engine) -> dict[int, ClipState]:
    with Session(engine) as s:
        return {c.id: c.state for c in s.exec(select(Clip))}


def test_prune_end_to_end_disk_and_s3(s3_bucket, tmp_path: Path) -> None:
    endpoint, bucket = s3_bucket
    disk = FlakyDisk(tmp_path / "archive", "disk")
    disk.fail_keys = set()
    s3 = S3Destination(
        S3DestinationSettings(bucket=bucket, endpoint_url=endpoint, region="us-east-1", prefix="blink"), "s3"
    )
    destinations = {"disk": disk, "s3": s3}
    engine = open_database(f"sqlite:///{tmp_path}/db.sqlite")
    day = timedelta(days=1)
    keys = seed_stored(
        engine,
        tmp_path / "staging",
        destinations,
        [
            ("Front", NOW - 1 * day, ClipState.stored),  # 1 kept (last 2 of Front)
            ("Front", NOW - 2 * day, ClipState.stored),  # 2 kept
            ("Front", NOW - 3 * day, ClipState.stored),  # 3 forgotten
            ("Front", NOW - 4 * day, ClipState.stored),  # 4 forgotten, its disk delete fails
            ("Back", NOW - 5 * day, ClipState.stored),  # 5 kept
            ("Back", NOW - 6 * day, ClipState.stored),  # 6 kept
            ("Back", NOW - 7 * day, ClipState.stored),  # 7 forgotten, plus a row for a removed destination
            ("Back", NOW - 9 * day, ClipState.downloaded),  # 8 not a candidate (not stored)
        ],
        BOTH,
    )
    with session_scope(engine) as s:
        s.add(
            StoredObject(
                clip_id=7, destination="old-nas", kind=ObjectKind.sidecar, key="x.json", size=5, sha256="0"
            )
        )
    disk.fail_keys = {keys[4][0]}
    policy = RetentionSettings(keep_last=2)
    before_rows = rows(engine)
    disk_before = {o.key for o in disk.list()}
    s3_before = {o.key for o in s3.list()}
    assert len(disk_before) == len(s3_before) == 16

    with session_scope(engine) as s:
        dry = prune(s, destinations, policy, NOW, dry_run=True)
    assert dry.dry_run and dry.clip_ids == [7, 4, 3] and dry.candidates == 7 and dry.pruned == 0
    assert dry.destinations["disk"].objects == 6 and dry.destinations["s3"].objects == 6
    expected_bytes = sum(len(f"{k} of clip {c}") * 50 for c in (3, 4, 7) for k in ("clip", "thumbnail"))
    assert dry.destinations["disk"].bytes == dry.destinations["s3"].bytes == expected_bytes == dry.bytes
    assert dry.errors == [
        "destination 'old-nas' is not configured: 1 object(s) kept (add it back or remove the rows)"
    ]
    assert rows(engine) == before_rows and {o.key for o in disk.list()} == disk_before
    assert {o.key for o in s3.list()} == s3_before
    assert set(states(engine).values()) == {ClipState.stored, ClipState.downloaded}

    with session_scope(engine) as s:
        report = prune(s, destinations, policy, NOW)
    assert report.clip_ids == [7, 4, 3] and report.pruned == 1  # only clip 3 is gone everywhere
    assert report.destinations["disk"].objects == 5 and report.destinations["s3"].objects == 6
    assert len(report.errors) == 2
    assert "clip 4: disk: " in report.errors[0] and "permission denied" in report.errors[0]
    assert "old-nas" in report.errors[1]

    gone = {k for c in (3, 4, 7) for k in keys[c]}
    assert {o.key for o in s3.list()} == s3_before - gone
    assert {o.key for o in disk.list()} == disk_before - gone | {keys[4][0]}
    assert rows(engine) == {r for r in before_rows if r[0] not in (3, 4, 7)} | {
        (4, "disk", keys[4][0]),
        (7, "old-nas", "x.json"),
    }
    st = states(engine)
    assert st[3] == ClipState.pruned
    assert st[4] == st[7] == ClipState.stored  # objects remain somewhere: tried again next time
    assert st[8] == ClipState.downloaded and st[1] == st[2] == st[5] == st[6] == ClipState.stored

    # The failure clears; the next prune finishes clip 4. Clip 7 waits for its unknown destination.
    disk.fail_keys = set()
    with session_scope(engine) as s:
        again = prune(s, destinations, policy, NOW)
    assert again.pruned == 1 and again.destinations["disk"].objects == 1
    assert states(engine)[4] == ClipState.pruned
    assert {o.key for o in disk.list()} == disk_before - gone


def test_prune_without_policy_changes_nothing(tmp_path: Path) -> None:
    disk = DiskDestination(tmp_path / "archive")
    engine = open_database(f"sqlite:///{tmp_path}/db.sqlite")
    seed_stored(
        engine,
        tmp_path / "staging",
        {"disk": disk},
        [("Front", NOW - timedelta(days=900), ClipState.stored)],
        BOTH,
    )
    with session_scope(engine) as s:
        report = prune(s, {"disk": disk}, RetentionSettings(), NOW)
    assert report.clips == 0 and report.errors == [] and len(list(disk.list())) == 2


def test_load_candidates_sizes_and_labels(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path}/db.sqlite")
    disk_a, disk_b = DiskDestination(tmp_path / "a", "a"), DiskDestination(tmp_path / "b", "b")
    seed_stored(
        engine, tmp_path / "staging", {"a": disk_a, "b": disk_b}, [("Front", NOW, ClipState.stored)], BOTH
    )
    with Session(engine) as s:
        items, objects = load_candidates(s)
    assert len(items) == 1 and len(objects[items[0].clip_id]) == 4
    # size = one destination's footprint (clip + thumbnail), not both destinations added up
    assert items[0].size == sum(o.size for o in objects[items[0].clip_id]) // 2
    assert items[0].camera == "Home/Front" and items[0].created_at == NOW


def test_prune_skips_an_unreachable_destination_after_one_failure(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    disk = DiskDestination(tmp_path / "archive", "disk")
    engine = open_database(f"sqlite:///{tmp_path}/db.sqlite")
    day = timedelta(days=1)
    seed_stored(
        engine,
        tmp_path / "staging",
        {"disk": disk},
        [("Front", NOW - n * day, ClipState.stored) for n in range(1, 5)],
        BOTH,
    )
    with session_scope(engine) as s:  # the same objects recorded for an S3 that is now down
        for o in list(s.exec(select(StoredObject))):
            s.add(
                StoredObject(
                    clip_id=o.clip_id, destination="s3", kind=o.kind, key=o.key, size=o.size, sha256="0"
                )
            )
    s3 = unreachable_s3()
    monkeypatch.setattr(retention, "COMMIT_EVERY", 1)  # one clip per batch: later batches are skipped
    with session_scope(engine) as s:
        report = prune(s, {"disk": disk, "s3": s3}, RetentionSettings(keep_last=1), NOW)
    assert report.clips == 3 and report.pruned == 0
    assert report.destinations["disk"].objects == 6 and "s3" not in report.destinations
    assert len(report.errors) == 3, report.errors  # one bulk request failed: one line, not one per object
    assert "cannot reach the endpoint" in report.errors[0] and "(2 objects kept)" in report.errors[0]
    assert report.errors[1].endswith("(skipping its remaining deletes)")
    assert report.errors[2] == "destination 's3' was unreachable: 4 more object(s) kept"
    assert {r[1] for r in rows(engine) if r[0] != 1} == {"s3"}
    assert set(states(engine).values()) == {ClipState.stored}


def test_disk_check_does_not_create_a_missing_root(tmp_path: Path) -> None:
    disk = DiskDestination(tmp_path / "not-mounted", "usb")
    with pytest.raises(DestinationError, match="does not exist"):
        disk.check()
    assert not (tmp_path / "not-mounted").exists()
