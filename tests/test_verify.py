# ruff: noqa: F811  (pytest fixtures imported from s3_fixtures are shadowed by test parameters)
from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import boto3
from helpers import seed_stored
from s3_fixtures import moto_server, s3_bucket, unreachable_s3  # noqa: F401
from sqlmodel import Session, select

from archiver.config import S3DestinationSettings
from archiver.db.engine import open_database, session_scope
from archiver.db.models import ClipState, StoredObject
from archiver.destinations import DiskDestination
from archiver.destinations.s3 import S3Destination
from archiver.verify import verify

WHEN = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def store(engine, tmp_path: Path, destinations: dict, n: int) -> list[str]:
    """``n`` stored clips, each file in every destination: their keys."""
    clips = [("Front", WHEN, ClipState.stored)] * n
    return [key for [key] in seed_stored(engine, tmp_path / "staging", destinations, clips).values()]


def verified(engine) -> dict[tuple[str, str], datetime | None]:
    with Session(engine) as s:
        return {(o.destination, o.key): o.verified_at for o in s.exec(select(StoredObject))}


def test_verify_finds_corrupt_missing_and_stray(s3_bucket, tmp_path: Path) -> None:
    endpoint, bucket = s3_bucket
    disk = DiskDestination(tmp_path / "archive", "disk")
    s3 = S3Destination(S3DestinationSettings(bucket=bucket, endpoint_url=endpoint, region="us-east-1"), "s3")
    destinations = {"disk": disk, "s3": s3}
    engine = open_database(f"sqlite:///{tmp_path}/db.sqlite")
    keys = store(engine, tmp_path, destinations, 4)

    with session_scope(engine) as s:
        clean = verify(s, destinations)
    assert clean.ok and clean.checked == clean.verified == 8
    assert all(v is not None for v in verified(engine).values())

    # flip one byte on disk (same size), delete one object behind S3's back, drop in strays
    path = tmp_path / "archive" / keys[0]
    raw = bytearray(path.read_bytes())
    raw[10] ^= 0xFF
    path.unlink()  # break the hard link to staging, then write the damaged copy
    path.write_bytes(bytes(raw))
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").delete_object(
        Bucket=bucket, Key=keys[1]
    )
    (tmp_path / "archive" / "Home" / "stray.mp4").write_bytes(b"who put this here")
    (tmp_path / "archive" / "Home" / ".stray.mp4.abc.part").write_bytes(b"in progress")
    (tmp_path / "archive" / "staging").mkdir()
    (tmp_path / "archive" / "staging" / "x.mp4").write_bytes(b"staging file")
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").put_object(
        Bucket=bucket, Key="orphan.mp4", Body=b"orphan"
    )

    with session_scope(engine) as s:
        report = verify(s, destinations, ignore_prefixes=["staging"])
    assert not report.ok
    assert report.checked == 8 and report.verified == 6
    assert [(p.destination, p.key) for p in report.corrupt] == [("disk", keys[0])]
    assert "sha256" in report.corrupt[0].detail and report.corrupt[0].clip_id == 1
    assert [(p.destination, p.key) for p in report.missing] == [("s3", keys[1])]
    assert sorted((p.destination, p.key) for p in report.stray) == [
        ("disk", "Home/stray.mp4"),
        ("s3", "orphan.mp4"),
    ]
    assert report.errors == []
    assert report.model_dump()["ok"] is False

    # a truncated file is caught by size alone
    path.write_bytes(b"short")
    with session_scope(engine) as s:
        report = verify(s, {"disk": disk}, strays=False)
    assert report.corrupt[0].detail == f"size 5, expected {len(raw)}"
    assert report.errors == ["destination 's3' is not configured: 4 object(s) not checked"]


def test_verify_sample(tmp_path: Path) -> None:
    disk = DiskDestination(tmp_path / "archive", "disk")
    engine = open_database(f"sqlite:///{tmp_path}/db.sqlite")
    store(engine, tmp_path, {"disk": disk}, 6)
    (tmp_path / "archive" / "stray.mp4").write_bytes(b"x")
    with session_scope(engine) as s:
        report = verify(s, {"disk": disk}, sample=2, rng=random.Random(3))
    assert report.checked == 2 and report.ok  # samples skip the stray listing by default
    assert sum(v is not None for v in verified(engine).values()) == 2
    with session_scope(engine) as s:
        report = verify(s, {"disk": disk}, sample=100)
    assert report.checked == 6 and [p.key for p in report.stray] == ["stray.mp4"]


def test_unreachable_destination_is_an_error_not_a_crash(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    disk = DiskDestination(tmp_path / "archive", "disk")
    engine = open_database(f"sqlite:///{tmp_path}/db.sqlite")
    store(engine, tmp_path, {"disk": disk}, 2)
    with session_scope(engine) as s:  # the same objects are also recorded for an S3 that is down
        for o in list(s.exec(select(StoredObject))):
            s.add(
                StoredObject(
                    clip_id=o.clip_id, destination="s3", kind=o.kind, key=o.key, size=o.size, sha256=o.sha256
                )
            )
    s3 = unreachable_s3()
    with session_scope(engine) as s:
        report = verify(s, {"disk": disk, "s3": s3})
    assert report.checked == 2 and report.verified == 2
    assert len(report.errors) == 1 and "cannot reach the endpoint" in report.errors[0]
    assert not report.ok and not report.missing
