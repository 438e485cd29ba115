"""The processing step inside a real sync: derived files stored beside the original, metadata recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest
from helpers import archive_files, asgi_get, make_settings, run_sync, sha256
from sqlmodel import select

from archiver.db.engine import open_database, session_scope
from archiver.db.models import Clip, ClipState, ObjectKind, StoredObject
from archiver.errors import ConfigError
from archiver.media.processor import MediaProcessor
from archiver.media.steps import DEFAULT_STEPS, STEPS, DerivedFile, StepTask
from archiver.simulator import Simulator
from archiver.web.app import create_app


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
    from archiver.media import steps as steps_mod

    def broken_probe(*args: object, **kwargs: object) -> None:
        raise MediaError("probe: truncated: mdat box is missing 1234 bytes")

    monkeypatch.setattr(steps_mod, "probe", broken_probe)
    settings = make_settings(tmp_path, sim)
    report = run_sync(settings)
    assert report.stored == 0 and report.failed == 1 and report.exit_code == 1
    assert "truncated" in report.clip_errors[0]
    assert archive_files(tmp_path / "archive", ".mp4") == []
    with session_scope(open_database(settings.database_url)) as s:
        (clip,) = s.exec(select(Clip)).all()
        assert clip.state == ClipState.failed and clip.attempts == 1


class MotionStep:
    """A step defined here (what a detection step would be): one JSON file per clip, its own kind."""

    name: ClassVar[str] = "motion"
    produces: ClassVar[tuple[str, ...]] = ("motion",)
    required: ClassVar[bool] = False
    seen: ClassVar[list[str]] = []

    def __init__(self, media: MediaProcessor) -> None:
        self.media = media

    async def run(self, task: StepTask) -> list[DerivedFile]:
        assert task.info is not None  # the probe ran first
        camera = task.subject.camera_name
        MotionStep.seen.append(camera)
        out = task.out(".motion.json")
        out.write_text(json.dumps({"camera": camera, "duration": task.info.duration}))
        return [DerivedFile(kind="motion", path=out, suffix=".motion.json")]


def test_a_step_added_through_the_registry_alone_is_run_stored_and_listed(
    tmp_path: Path, sim: Simulator, camera: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim.add_clips(camera, 2, size=20_000)
    monkeypatch.setitem(STEPS, MotionStep.name, MotionStep)
    monkeypatch.setattr(MotionStep, "seen", [])
    settings = make_settings(tmp_path, sim, processing={"steps": [*DEFAULT_STEPS, "motion"]})
    report = run_sync(settings)
    assert report.stored == 2 and report.exit_code == 0, report
    assert len(MotionStep.seen) == 2
    outputs = archive_files(tmp_path / "archive", ".motion.json")
    assert len(outputs) == 2 and json.loads(outputs[0].read_text())["duration"] > 0
    engine = open_database(settings.database_url)
    with session_scope(engine) as s:
        rows = s.exec(select(StoredObject).where(StoredObject.kind == "motion")).all()
        assert len(rows) == 2 and all(r.key.endswith(".motion.json") for r in rows)
        clip_id = rows[0].clip_id
    jsons = archive_files(tmp_path / "archive", ".json")
    sidecars = [p for p in jsons if not p.name.endswith(".motion.json")]
    assert len(sidecars) == 2
    assert all("motion" in json.loads(p.read_text())["files"] for p in sidecars)
    page = asgi_get(create_app(settings, engine), f"/clip/{clip_id}")
    assert page.status_code == 200 and "motion → disk" in page.text
    engine.dispose()


def test_an_unknown_step_is_a_config_error(tmp_path: Path, sim: Simulator, camera: int) -> None:
    settings = make_settings(tmp_path, sim, processing={"steps": ["probe", "detect-cats"]})
    with pytest.raises(ConfigError, match="unknown step 'detect-cats'"):
        run_sync(settings)
