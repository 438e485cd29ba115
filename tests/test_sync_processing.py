"""The processing step inside a real sync: derived files stored beside the original, metadata recorded."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import archive_files, make_settings, run_sync, sha256
from sqlmodel import select

from archiver.db.engine import open_database, session_scope
from archiver.db.models import Clip, ClipState, ObjectKind, StoredObject
from archiver.simulator import Simulator


def test_transcode_generated_thumbnail_and_preview_are_stored_with_the_original(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    ids = sim.add_clips(camera, 2, size=20_000)
    settings = make_settings(
        tmp_path, sim, processing={"transcode": "h264", "thumbnail": "both", "preview": "gif", "workers": 2}
    )
    report = run_sync(settings)
    assert report.stored == 2 and report.exit_code == 0
    archive = tmp_path / "archive"
    originals = [p for p in archive_files(archive, ".mp4") if not p.name.endswith(".h264.mp4")]
    assert {sha256(p) for p in originals} == {sim.clip_sha256(i) for i in ids}  # the original, untouched
    assert len(archive_files(archive, ".h264.mp4")) == 2
    assert len(archive_files(archive, ".generated.jpg")) == 2
    assert len(archive_files(archive, ".gif")) == 2
    with session_scope(open_database(settings.database_url)) as s:
        clips = s.exec(select(Clip)).all()
        assert all(c.duration and c.width == 160 and c.codec == "h264" for c in clips)
        kinds = {o.kind for o in s.exec(select(StoredObject)).all()}
    assert {
        ObjectKind.clip,
        ObjectKind.thumbnail,
        ObjectKind.generated_thumbnail,
        ObjectKind.transcode,
        ObjectKind.preview,
        ObjectKind.sidecar,
    } <= kinds
    doc = json.loads(archive_files(archive, ".json")[0].read_text())
    assert {"clip", "transcode", "preview", "generated_thumbnail"} <= set(doc["files"])


def test_a_clip_that_fails_the_probe_is_failed_not_stored(
    tmp_path: Path, sim: Simulator, camera: int, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    sim.add_clips(camera, 1, size=20_000)
    from archiver.errors import MediaError
    from archiver.media import processor as proc_mod

    def broken_probe(*args: object, **kwargs: object) -> None:
        raise MediaError("probe: truncated: mdat box is missing 1234 bytes")

    monkeypatch.setattr(proc_mod, "probe", broken_probe)
    settings = make_settings(tmp_path, sim)
    report = run_sync(settings)
    assert report.stored == 0 and report.failed == 1 and report.exit_code == 1
    assert "truncated" in report.clip_errors[0]
    assert archive_files(tmp_path / "archive", ".mp4") == []
    with session_scope(open_database(settings.database_url)) as s:
        (clip,) = s.exec(select(Clip)).all()
        assert clip.state == ClipState.failed and clip.attempts == 1
