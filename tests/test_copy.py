from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import seed_stored
from sqlmodel import Session, select

from archiver.copy import copy_objects
from archiver.db.engine import open_database
from archiver.db.models import ClipState, ObjectKind, StoredObject
from archiver.destinations import DestinationError, DiskDestination
from archiver.destinations.base import read_all
from archiver.destinations.crypt import EncryptedDestination


def rows(engine, destination: str) -> dict[str, str]:
    with Session(engine) as s:
        found = s.exec(select(StoredObject).where(StoredObject.destination == destination))
        return {o.key: o.sha256 for o in found}


@pytest.fixture
def archive(tmp_path: Path):
    engine = open_database(f"sqlite:///{tmp_path / 'a.db'}")
    disk = DiskDestination(tmp_path / "disk", "disk")
    when = datetime(2024, 5, 1, 12, tzinfo=UTC)
    clips = [("Front", when.replace(minute=i), ClipState.stored) for i in range(4)]
    seed_stored(engine, tmp_path / "staging", {"disk": disk}, clips, (ObjectKind.clip, ObjectKind.thumbnail))
    yield engine, disk
    engine.dispose()


def test_copy_gives_the_target_every_object_and_its_rows(archive, tmp_path: Path) -> None:
    engine, disk = archive
    vault = EncryptedDestination(DiskDestination(tmp_path / "vault", "vault"), bytes(32))
    seen: list[tuple[int, int]] = []
    report = copy_objects(
        engine, disk, vault, workdir=tmp_path / "work", progress=lambda d, t, b: seen.append((d, t))
    )
    assert (report.objects, report.copied, report.present, report.failed) == (8, 8, 0, [])
    assert seen[-1] == (8, 8) and len(seen) == 8
    assert rows(engine, "vault") == rows(engine, "disk")
    assert all(read_all(vault, k) == read_all(disk, k) for k in rows(engine, "disk"))
    assert list((tmp_path / "work").iterdir()) == []


def test_an_interrupted_copy_resumes_and_a_damaged_source_is_reported(
    archive, tmp_path: Path, monkeypatch
) -> None:
    engine, disk = archive
    target = DiskDestination(tmp_path / "nas", "nas")
    keys = sorted(rows(engine, "disk"))
    calls = {"n": 0}
    real_put = DiskDestination.put

    def flaky(self, src, key, **kw):  # the NAS drops out after three objects
        calls["n"] += 1
        if calls["n"] > 3:
            raise DestinationError("smb destination 'nas': cannot reach the server")
        return real_put(self, src, key, **kw)

    monkeypatch.setattr(DiskDestination, "put", flaky)
    first = copy_objects(engine, disk, target, workdir=tmp_path / "work")
    assert first.copied == 3 and len(first.failed) == 5 and "cannot reach" in first.failed[0]
    monkeypatch.undo()
    damaged = keys[0] if keys[0] not in rows(engine, "nas") else keys[-1]
    (tmp_path / "disk" / damaged).write_bytes(b"rot")
    second = copy_objects(engine, disk, target, workdir=tmp_path / "work")
    assert second.present == 3 and second.copied == 4
    assert second.failed == [
        f"{damaged}: disk:{damaged} does not match its sha256 (damaged there: `archiver verify`)"
    ]
    assert len(rows(engine, "nas")) == 7


def test_copy_to_itself_is_refused(archive, tmp_path: Path) -> None:
    engine, disk = archive
    with pytest.raises(DestinationError, match="same destination"):
        copy_objects(engine, disk, disk, workdir=tmp_path / "work")
