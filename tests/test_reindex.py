"""`archiver reindex`: the database rebuilt from the sidecars (merge, conflicts, partial database, dry run,
--verify, a second destination, the cursor), and a sync over an archive its database does not know."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers import asgi_get, make_settings, run_sync
from sqlalchemy import delete, func
from sqlmodel import select

from archiver.db import repo
from archiver.db.engine import open_database, session_scope
from archiver.db.models import Account, Clip, ClipState, StoredObject
from archiver.destinations.disk import DiskDestination
from archiver.pipeline.sidecar import Place, Sidecar, SidecarFile
from archiver.reindex import accounts_without_clips, reindex
from archiver.simulator import Simulator
from archiver.web.app import create_app

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def _put(dest: DiskDestination, tmp: Path, key: str, data: bytes) -> SidecarFile:
    src = tmp / "src" / key  # a file per key: a disk put may link it rather than copy it
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    dest.put(src, key, sha256=sha, metadata={})
    return SidecarFile(key=key, size=len(data), sha256=sha)


def archive_clip(
    dest: DiskDestination,
    tmp: Path,
    n: int,
    *,
    account: str = "default",
    legacy: bool = False,
    analysis: dict[str, object] | None = None,
) -> str:
    """A clip as a sync stores it: clip, thumbnail, sidecar. Returns the archive key."""
    stem = f"Home/Front Door/2024-05-01/12-00-{n:02d}_{n}"
    files = {
        "clip": _put(dest, tmp, stem + ".mp4", f"clip {n}".encode() * 100),
        "thumbnail": _put(dest, tmp, stem + ".jpg", f"thumb {n}".encode() * 10),
    }
    doc = Sidecar(
        id=str(n),
        identity=f"cloud:{n}",
        account=account,
        archive_key=stem + ".mp4",
        network=Place(id=1, name="Home"),
        camera=Place(id=2, name="Front Door"),
        created_at_utc=T0 + timedelta(seconds=n),
        time_zone="America/Chicago",
        stored_at=T0,
        files=files,
        **({"analysis": analysis} if analysis is not None else {}),
    )
    data = doc.dumps()
    if legacy:  # what the release before the schema field wrote
        raw = json.loads(data)
        for field in ("schema", "state", "archive_key", "stored_at", "size", "sha256", "notes"):
            raw.pop(field)
        raw["something_newer"] = {"x": 1}
        data = json.dumps(raw, indent=2, sort_keys=True).encode()
    _put(dest, tmp, stem + ".json", data)
    return stem + ".mp4"


def _engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    return open_database(f"sqlite:///{tmp_path / 'archiver.db'}")


def _counts(engine) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        clips = s.exec(select(func.count()).select_from(Clip)).one()
        objects = s.exec(select(func.count()).select_from(StoredObject)).one()
    return clips, objects


def test_reindex_records_every_clip_and_a_second_run_adds_nothing(tmp_path: Path, database_url: str) -> None:
    dest = DiskDestination(tmp_path / "archive")
    keys = [archive_clip(dest, tmp_path, n) for n in range(5)]
    engine = open_database(database_url)
    first = reindex(engine, dest)
    assert (first.found, first.added, first.known, first.objects, first.ok) == (5, 5, 0, 15, True)
    assert first.accounts == ["default"]
    again = reindex(engine, dest)
    assert (again.found, again.added, again.known, again.objects, again.ok) == (5, 0, 5, 0, True)
    assert _counts(engine) == (5, 15)
    with session_scope(engine) as s:
        clips = s.exec(select(Clip).order_by(Clip.created_at)).all()
        assert [c.archive_key for c in clips] == keys
        assert {c.state for c in clips} == {ClipState.stored}
        assert clips[0].camera_name == "Front Door" and clips[0].sha256 and clips[0].size == 600
        account = s.exec(select(Account)).one()
        cursor = repo.get_cursor(s, account.id)  # type: ignore[arg-type]
        assert cursor is not None and cursor.since == T0 + timedelta(seconds=4) - timedelta(minutes=10)


def test_the_sidecars_of_the_release_before_the_schema_field_reindex(tmp_path: Path) -> None:
    dest = DiskDestination(tmp_path / "archive")
    key = archive_clip(dest, tmp_path, 1, legacy=True)
    assert "schema" not in json.loads((tmp_path / "archive" / key.replace(".mp4", ".json")).read_text())
    engine = _engine(tmp_path)
    report = reindex(engine, dest)
    assert (report.added, report.ok) == (1, True)
    with session_scope(engine) as s:
        clip = s.exec(select(Clip)).one()
        assert clip.archive_key == key and clip.sha256 == hashlib.sha256(b"clip 1" * 100).hexdigest()


def test_a_partial_database_is_completed_without_duplicates(tmp_path: Path, database_url: str) -> None:
    dest = DiskDestination(tmp_path / "archive")
    for n in range(4):
        archive_clip(dest, tmp_path, n)
    engine = open_database(database_url)
    account = repo.get_or_create_account(engine, "default", None, "oauth")
    with session_scope(engine) as s:  # one clip still to fetch (a crash), one the database never heard of
        s.add(Clip(account_id=account.id, identity="cloud:0", blink_id="0", created_at=T0, attempts=2,
                   state=ClipState.failed, last_error="boom"))  # fmt: skip
    report = reindex(engine, dest)
    assert (report.added, report.completed, report.known, report.ok) == (3, 1, 0, True)
    assert _counts(engine) == (4, 12)
    with session_scope(engine) as s:
        done = s.exec(select(Clip).where(Clip.identity == "cloud:0")).one()
        assert done.state == ClipState.stored and done.archive_key and done.last_error is None


def test_conflicts_are_reported_and_left_as_they_are(tmp_path: Path) -> None:
    dest = DiskDestination(tmp_path / "archive")
    key0 = archive_clip(dest, tmp_path, 0)
    archive_clip(dest, tmp_path, 1)
    archive_clip(dest, tmp_path, 2)
    engine = _engine(tmp_path)
    account = repo.get_or_create_account(engine, "default", None, "oauth")
    with session_scope(engine) as s:
        # the same clip stored under another key ("-2": a sync on an empty database wrote it twice)
        s.add(Clip(account_id=account.id, identity="cloud:1", blink_id="1", created_at=T0,
                   state=ClipState.stored, archive_key="elsewhere-2.mp4"))  # fmt: skip
        # another clip owns clip 0's key
        s.add(Clip(account_id=account.id, identity="cloud:99", blink_id="99", created_at=T0,
                   state=ClipState.stored, archive_key=key0))  # fmt: skip
    report = reindex(engine, dest)
    assert (report.added, report.known, report.ok) == (1, 0, False)
    assert len(report.conflicts) == 2
    assert any("cloud:99" in c for c in report.conflicts)
    assert any("elsewhere-2.mp4" in c for c in report.conflicts)
    with session_scope(engine) as s:
        assert s.exec(select(Clip).where(Clip.identity == "cloud:1")).one().archive_key == "elsewhere-2.mp4"
        assert s.exec(select(Clip).where(Clip.identity == "cloud:0")).first() is None


def test_dry_run_changes_nothing_and_counts_what_it_would_do(tmp_path: Path) -> None:
    dest = DiskDestination(tmp_path / "archive")
    for n in range(3):
        archive_clip(dest, tmp_path, n)
    engine = _engine(tmp_path)
    report = reindex(engine, dest, dry_run=True)
    assert (report.found, report.added, report.objects, report.accounts) == (3, 3, 9, ["default"])
    assert _counts(engine) == (0, 0)
    with session_scope(engine) as s:
        assert s.exec(select(Account)).first() is None


def test_missing_and_tampered_files_are_problems(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    dest = DiskDestination(root)
    gone = archive_clip(dest, tmp_path, 0)
    tampered = archive_clip(dest, tmp_path, 1)
    archive_clip(dest, tmp_path, 2)
    (root / gone).unlink()
    data = (root / tampered).read_bytes()
    (root / tampered).write_bytes(b"X" + data[1:])  # same size: only --verify sees it
    (root / "Home/notes.json").write_text('{"hello": "world"}')
    engine = _engine(tmp_path)
    plain = reindex(engine, dest, dry_run=True)
    assert plain.added == 2 and len(plain.problems) == 2  # the missing clip, the stray JSON
    assert any(gone in p and "missing" in p for p in plain.problems)
    assert any("notes.json" in p and "not a sidecar" in p for p in plain.problems)
    checked = reindex(engine, dest, verify=True)
    assert checked.added == 2 and len(checked.problems) == 3
    assert any(tampered in p and "damaged: sha256" in p for p in checked.problems)
    with session_scope(engine) as s:  # the damaged clip is recorded as its sidecar says: verify reports it
        assert s.exec(select(Clip).where(Clip.archive_key == tampered)).one().state == ClipState.stored
        assert s.exec(select(Clip).where(Clip.archive_key == gone)).first() is None


def test_copies_in_another_destination_are_recorded_too(tmp_path: Path) -> None:
    main, other = DiskDestination(tmp_path / "a", "a"), DiskDestination(tmp_path / "b", "b")
    for n in range(3):
        archive_clip(main, tmp_path, n)
    for n in range(2):
        archive_clip(other, tmp_path, n)
    engine = _engine(tmp_path)
    report = reindex(engine, main, [other])
    assert (report.added, report.objects, report.elsewhere) == (3, 15, {"b": 6})
    assert len(report.problems) == 3 and all(p.startswith("b:") for p in report.problems)  # clip 2's
    with session_scope(engine) as s:
        rows = s.exec(select(StoredObject.destination, func.count()).group_by(StoredObject.destination)).all()
    assert dict(rows) == {"a": 9, "b": 6}


def test_accounts_without_clips_is_one_question(tmp_path: Path) -> None:
    dest = DiskDestination(tmp_path / "archive")
    archive_clip(dest, tmp_path, 0, account="home")
    engine = _engine(tmp_path)
    repo.get_or_create_account(engine, "cabin", None, "oauth")
    assert accounts_without_clips(engine, ["home", "cabin", "new"]) == ["home", "cabin", "new"]
    reindex(engine, dest)
    assert accounts_without_clips(engine, ["home", "cabin", "new"]) == ["cabin", "new"]


# -- against the simulator ------------------------------------------------------------------------------


def _forget_database(tmp_path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"archiver.db{suffix}").unlink(missing_ok=True)


def test_a_sync_over_an_archive_its_database_does_not_know_downloads_only_what_is_new(
    tmp_path: Path, sim: Simulator, camera: int, caplog: pytest.LogCaptureFixture
) -> None:
    sim.add_clips(camera, 5, size=20_000)
    settings = make_settings(tmp_path, sim, processing={"probe": False})
    assert run_sync(settings).stored == 5
    _forget_database(tmp_path)
    new = sim.add_clips(camera, 2, size=20_000)
    sim.reset_requests()
    with caplog.at_level(logging.WARNING, "archiver.reindex"):
        report = run_sync(settings)
    assert (report.stored, report.failed) == (2, 0)
    [said] = [r.getMessage() for r in caplog.records if r.name == "archiver.reindex"]
    assert "holds 5 sidecar(s) it did not know: reindexed first (5 clips added" in said
    assert sim.request_count("/media/clip/") == 2
    archive = sorted(p.name for p in (tmp_path / "archive").rglob("*.mp4"))
    assert len(archive) == 7 and not [n for n in archive if n.endswith("-2.mp4")]
    assert all(any(n.endswith(f"_{i}.mp4") for n in archive) for i in new)
    engine = open_database(settings.database_url)
    with session_scope(engine) as s:
        assert s.exec(select(func.count()).select_from(Clip).where(Clip.state == ClipState.stored)).one() == 7
    engine.dispose()


def _identities_and_keys(settings) -> dict[str, str | None]:  # type: ignore[no-untyped-def]
    engine = open_database(settings.database_url)
    with session_scope(engine) as s:
        out = {c.identity: c.archive_key for c in s.exec(select(Clip))}
    engine.dispose()
    return out


def test_clips_that_got_a_numbered_key_get_it_back(tmp_path: Path, sim: Simulator) -> None:
    home1, home2 = sim.add_network("Home"), sim.add_network("Home")
    cams = [sim.add_camera(home1, "Front Door"), sim.add_camera(home2, "Front Door")]
    noon = datetime(2024, 5, 1, 17, 0, tzinfo=UTC)
    for cam in (cams[0], cams[0], cams[1]):
        sim.add_clip(cam, created_at=noon, size=20_000)
    settings = make_settings(
        tmp_path,
        sim,
        sync={"filename_template": "{network}/{camera}/{date}/{time}.mp4"},
        processing={"probe": False},
    )
    assert run_sync(settings).stored == 3
    before = _identities_and_keys(settings)
    assert sorted(k or "" for k in before.values())[0].endswith("-2.mp4")
    for path in (tmp_path / "archive").rglob("*.json"):  # the sidecar names its own (numbered) key
        doc = Sidecar.loads(path.read_bytes())
        assert doc.version == 1 and doc.state == "stored" and doc.stored_at is not None
        assert doc.archive_key == path.relative_to(tmp_path / "archive").as_posix()[: -len(".json")] + ".mp4"
        assert doc.files["clip"].key == doc.archive_key and doc.sha256 == doc.files["clip"].sha256
    _forget_database(tmp_path)
    engine = open_database(settings.database_url)
    report = reindex(engine, DiskDestination(tmp_path / "archive"))
    engine.dispose()
    assert (report.added, report.ok) == (3, True)
    assert _identities_and_keys(settings) == before


def test_a_clips_link_by_key_reaches_the_same_clip_after_the_database_is_rebuilt(
    tmp_path: Path, sim: Simulator
) -> None:
    net = sim.add_network("Home")
    front, back = sim.add_camera(net, "Front Door"), sim.add_camera(net, "Back Yard")
    for cam in (front, back, front):
        sim.add_clips(cam, 1, size=20_000)
    settings = make_settings(tmp_path, sim, processing={"probe": False})
    assert run_sync(settings).stored == 3

    def pages() -> dict[str, str]:
        """archive key -> the identity of the clip page its /clip/key/ link leads to"""
        engine = open_database(settings.database_url)
        app = create_app(settings, engine)
        with session_scope(engine) as s:
            clips = list(s.exec(select(Clip)))
        identity_of = {f"/clip/{c.id}": c.identity for c in clips}
        out = {}
        for c in clips:
            assert c.archive_key
            r = asgi_get(app, f"/clip/key/{quote(c.archive_key)}")
            assert r.status_code == 302, r.text
            assert asgi_get(app, r.headers["location"]).status_code == 200
            out[c.archive_key] = identity_of[r.headers["location"]]
        assert asgi_get(app, "/clip/key/Home/nothing.mp4").status_code == 404
        engine.dispose()
        return out

    before = pages()
    assert len(before) == 3
    _forget_database(tmp_path)
    engine = open_database(settings.database_url)
    assert reindex(engine, DiskDestination(tmp_path / "archive")).added == 3
    engine.dispose()
    assert pages() == before


def test_a_two_destination_archive_is_whole_again_after_the_guarded_sync(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    sim.add_clips(camera, 3, size=20_000)
    destinations = [
        {"type": "disk", "name": "a", "path": str(tmp_path / "a")},
        {"type": "disk", "name": "b", "path": str(tmp_path / "b")},
    ]
    settings = make_settings(tmp_path, sim, destinations=destinations, processing={"probe": False})
    assert run_sync(settings).stored == 3
    _forget_database(tmp_path)
    sim.reset_requests()
    assert run_sync(settings).stored == 0
    assert sim.request_count("/media/clip/") == 0
    engine = open_database(settings.database_url)
    with session_scope(engine) as s:
        rows = s.exec(select(StoredObject.destination, func.count()).group_by(StoredObject.destination)).all()
    engine.dispose()
    assert dict(rows) == {"a": 9, "b": 9}


def test_the_sync_guard_asks_no_destination_once_every_account_has_clips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from archiver.config import load_settings
    from archiver.reindex import reindex_before_sync

    settings = load_settings(None, data_dir=tmp_path, database={"url": f"sqlite:///{tmp_path / 'a.db'}"})
    dest = DiskDestination(settings.archive_dir)
    archive_clip(dest, tmp_path, 0)
    engine = open_database(settings.database_url)
    first = reindex_before_sync(settings, engine)  # the database knows nothing: the archive is read
    assert first is not None and first.added == 1

    def no_destination(_: object) -> list[object]:
        raise AssertionError("the guard listed a destination")

    monkeypatch.setattr("archiver.destinations.build_destinations", no_destination)
    assert reindex_before_sync(settings, engine) is None


def test_a_sidecar_naming_a_key_outside_the_archive_is_a_problem_not_a_path(tmp_path: Path) -> None:
    main, other = DiskDestination(tmp_path / "a", "a"), DiskDestination(tmp_path / "b", "b")
    archive_clip(main, tmp_path, 0)
    archive_clip(other, tmp_path, 0)
    doc = Sidecar(
        id="7",
        identity="cloud:7",
        account="default",
        created_at_utc=T0,
        files={"clip": SidecarFile(key="../../etc/passwd", size=1, sha256="0" * 64)},
    )
    _put(main, tmp_path, "Home/evil.json", doc.dumps())
    engine = _engine(tmp_path)
    report = reindex(engine, main, [other], verify=True)
    assert (report.found, report.added, report.elsewhere) == (2, 1, {"b": 3})
    [problem] = report.problems
    assert "Home/evil.json" in problem and "unsafe key" in problem


def test_an_unknown_destination_name_is_a_configuration_error(tmp_path: Path) -> None:
    from archiver.config import load_settings
    from archiver.errors import ConfigError
    from archiver.reindex import run_reindex

    settings = load_settings(None, data_dir=tmp_path, database={"url": f"sqlite:///{tmp_path / 'a.db'}"})
    engine = open_database(settings.database_url)
    with pytest.raises(ConfigError, match=r"--destination 'nas': no such destination \(configured: disk\)"):
        run_reindex(settings, engine, destination="nas")
    assert run_reindex(settings, engine, destination="disk").found == 0


def test_reindex_restores_the_analysis_from_the_sidecars(tmp_path: Path) -> None:
    from archiver.analysis.store import summary
    from archiver.db.models import ClipAnalysis, ClipTag

    dest = DiskDestination(tmp_path / "archive")
    analysis = {
        "activity": 0.31,
        "tags": [{"label": "person", "confidence": 0.83, "at_s": 4.5}],
        "detectors": {"motion": "1", "person": "1"},
        "analyzed_at": "2026-12-08T01:02:03+00:00",
    }
    archive_clip(dest, tmp_path, 1, analysis=analysis)
    archive_clip(dest, tmp_path, 2)  # not analysed yet: analysed again later
    archive_clip(dest, tmp_path, 3, analysis={"detectors": {"person": "1"}, "tags": [{"label": 1}]})
    engine = _engine(tmp_path)
    report = reindex(engine, dest)
    assert (report.added, report.analyses, report.ok) == (3, 1, True)
    with session_scope(engine) as s:
        clip_id = s.exec(select(Clip.id).where(Clip.blink_id == "1")).one()
        doc = summary(s, clip_id)
        assert doc is not None and doc["activity"] == 0.31 and doc["detectors"] == analysis["detectors"]
        assert doc["tags"] == analysis["tags"]
        assert len(s.exec(select(ClipAnalysis)).all()) == 1
        # the database lost the analysis but still knows the clip: the next reindex brings it back once
        s.exec(delete(ClipTag))
        s.exec(delete(ClipAnalysis))
    assert reindex(engine, dest).analyses == 1
    assert reindex(engine, dest).analyses == 0  # already there: left as it is
    with session_scope(engine) as s:
        assert [(t.label, t.confidence) for t in s.exec(select(ClipTag))] == [("person", 0.83)]
