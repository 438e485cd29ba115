"""What is in each clip (issue 24): the detectors on real clips rendered with ffmpeg, the registry, and
the analysis through the real pipeline (simulator, sidecar, database, `archiver analyze`)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import archive_files, cli_env, make_settings, run_cli, run_sync, sha256
from media_fixtures import ffmpeg_exe
from sqlmodel import delete, select

from archiver.analysis import DETECTORS, Detection, Tag, build_detectors
from archiver.analysis.motion import MotionDetector, activity
from archiver.analysis.runner import AnalysisWorker, analyze_clip, pending_clips, with_analysis
from archiver.analysis.store import import_sidecar, last_tagged, summary
from archiver.config import AnalysisSettings
from archiver.db.engine import open_engine, session_scope
from archiver.db.models import Clip, ClipAnalysis, ClipTag, StoredObject
from archiver.destinations import build_destinations
from archiver.errors import ConfigError
from archiver.pipeline.runner import sync_all
from archiver.simulator import Simulator


def render(
    dst: Path, *inputs: str, filters: str | None = None, seconds: float = 3.0, gop: int | None = None
) -> Path:
    """A real H.264 clip made by ffmpeg from lavfi sources / images (``-i`` arguments as given)."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", *inputs]
    if filters:
        cmd += ["-filter_complex", filters]
    cmd += ["-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
    if gop:
        cmd += ["-g", str(gop)]
    subprocess.run([*cmd, str(dst)], check=True, timeout=60)
    return dst


@pytest.fixture(scope="session")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("scenes")
    bars = ["-f", "lavfi", "-i", "smptebars=size=320x240:rate=15"]
    box = [
        "-f",
        "lavfi",
        "-i",
        "color=c=gray:size=320x240:rate=15",
        "-f",
        "lavfi",
        "-i",
        "color=c=red:size=90x140",
    ]
    return {
        "still": render(d / "still.mp4", *bars),
        "noise": render(d / "noise.mp4", *bars, filters="[0]noise=alls=24:allf=t+u", gop=15),
        "moving": render(d / "moving.mp4", *box, filters="[0][1]overlay=x='-90+t*140':y=50:shortest=1"),
    }


# -- motion ---------------------------------------------------------------------------------------------


def test_a_still_scene_scores_below_005(scenes: dict[str, Path]) -> None:
    assert MotionDetector().analyze(scenes["still"]).activity < 0.05


def test_a_moving_object_scores_above_03(scenes: dict[str, Path]) -> None:
    assert MotionDetector().analyze(scenes["moving"]).activity > 0.3


def test_camera_noise_alone_stays_low(scenes: dict[str, Path]) -> None:
    assert MotionDetector().analyze(scenes["noise"]).activity < 0.05


def test_a_brightness_change_of_the_whole_scene_is_not_activity() -> None:
    dark, light = bytes([60] * 400), bytes([110] * 400)  # headlights, an exposure step
    assert activity([dark, light]) == 0.0
    moved = bytes([60] * 300 + [200] * 100)
    assert activity([dark, moved]) == 0.25


def test_the_motion_score_costs_little_cpu_for_a_1080p_clip(tmp_path: Path) -> None:
    clip = render(
        tmp_path / "hd.mp4",
        "-f",
        "lavfi",
        "-i",
        "color=c=gray:size=1920x1080:rate=30",
        "-f",
        "lavfi",
        "-i",
        "color=c=red:size=300x400",
        filters="[0][1]overlay=x='t*300':y=300:shortest=1",
        seconds=6,
        gop=30,
    )  # fmt: skip  (the benchmark times a 30 s one: scenario 11)
    detector = MotionDetector()
    detector.analyze(clip)  # warm (imports, codec tables)
    started = time.process_time()
    assert detector.analyze(clip).activity > 0.1
    assert time.process_time() - started < 0.3


# -- the registry ---------------------------------------------------------------------------------------


def test_detectors_are_registered_by_name_and_an_unknown_one_is_a_clear_error() -> None:
    assert {"motion", "person", "onnx"} <= set(DETECTORS)
    [motion] = build_detectors(AnalysisSettings())
    assert (motion.name, motion.version) == ("motion", "1")
    with pytest.raises(ConfigError, match="unknown detector 'yolo'; registered: motion, onnx, person"):
        build_detectors(AnalysisSettings(detectors=["yolo"]))
    with pytest.raises(ConfigError, match=r"onnx.*model"):
        build_detectors(AnalysisSettings(detectors=["onnx"]))


# -- through the pipeline -------------------------------------------------------------------------------


def test_clips_are_analysed_after_they_are_stored_and_the_sidecar_and_database_say_so(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    ids = sim.add_clips(camera, 3, size=20_000)
    settings = make_settings(tmp_path, sim)
    engine = open_engine(settings)
    try:
        [report] = asyncio.run(
            with_analysis(settings, engine, lambda f: sync_all(settings, engine, reporter_factory=f))
        )
        assert report.stored == 3
        with session_scope(engine) as s:
            rows = {r.clip_id: r for r in s.exec(select(ClipAnalysis))}
            clips = list(s.exec(select(Clip)))
            sidecars = {o.clip_id: o for o in s.exec(select(StoredObject)) if o.kind == "sidecar"}
        assert len(rows) == 3 and all(r.error is None and r.activity is not None for r in rows.values())
        assert all(json.loads(r.detectors) == {"motion": "1"} for r in rows.values())
        for clip in clips:
            path = settings.archive_dir / sidecars[clip.id].key
            doc = json.loads(path.read_text())
            assert doc["id"] in {str(i) for i in ids}
            assert doc["analysis"]["activity"] == rows[clip.id].activity
            assert doc["analysis"]["detectors"] == {"motion": "1"} and doc["analysis"]["tags"] == []
            assert (sidecars[clip.id].size, sidecars[clip.id].sha256) == (path.stat().st_size, sha256(path))
        assert pending_clips(engine, build_detectors(settings.analysis), max_attempts=5) == []
    finally:
        engine.dispose()


def test_the_analysis_queue_is_bounded_and_what_it_could_not_take_is_caught_up_later(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    sim.add_clips(camera, 4, size=20_000)
    settings = make_settings(tmp_path, sim, analysis={"queue": 1}, sync={"concurrency": 4})
    engine = open_engine(settings)

    def analysed() -> int:
        with session_scope(engine) as s:
            return len([r for r in s.exec(select(ClipAnalysis)) if r.analyzed_at is not None])

    try:
        [report] = asyncio.run(
            with_analysis(settings, engine, lambda f: sync_all(settings, engine, reporter_factory=f))
        )
        assert report.stored == 4 and 1 <= analysed() <= 4  # archiving never waited for the queue
        for _ in range(4):  # each later sync catches up on what is left
            asyncio.run(
                with_analysis(settings, engine, lambda f: sync_all(settings, engine, reporter_factory=f))
            )
        assert analysed() == 4
    finally:
        engine.dispose()


class _PairDetector:
    """Returns only once another clip is being analysed at the same time (a barrier of two)."""

    name = "pair"
    version = "1"

    def __init__(self) -> None:
        self.barrier = threading.Barrier(2, timeout=10)

    def analyze(self, path: Path) -> Detection:
        self.barrier.wait()
        return Detection(activity=0.5)


def test_the_queue_left_after_a_sync_drains_with_a_consumer_per_core(
    tmp_path: Path, sim: Simulator, camera: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim.add_clips(camera, 2, size=20_000)
    settings = make_settings(tmp_path, sim, analysis={"enabled": False})
    assert run_sync(settings).stored == 2
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    engine = open_engine(settings)
    try:
        with session_scope(engine) as s:
            ids = [c.id for c in s.exec(select(Clip))]

        async def drain() -> list[bool]:
            # one consumer beside the sync (analysis.workers = 1); both clips wait for finish()
            worker = AnalysisWorker(settings, engine, detectors=[_PairDetector()])
            worker.start()
            assert all(worker.submit(clip_id) for clip_id in ids)
            await worker.finish()
            return [a.ok for a in worker.done]

        assert settings.analysis.workers == 1
        assert asyncio.run(drain()) == [True, True]  # with one consumer, the barrier breaks: not ok
    finally:
        engine.dispose()


def test_a_syncs_catch_up_takes_recent_clips_and_leaves_an_old_archive_to_archiver_analyze(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    sim.add_clips(camera, 3, size=20_000)
    settings = make_settings(tmp_path, sim, analysis={"enabled": False})  # archived before analysis
    assert run_sync(settings).stored == 3
    engine = open_engine(settings)
    try:
        with session_scope(engine) as s:
            old = list(s.exec(select(Clip).order_by(Clip.created_at)))[:2]
            for clip in old:  # stored a week ago
                clip.stored_at = datetime.now(UTC) - timedelta(days=7)
                s.add(clip)
            old_ids = {c.id for c in old}
        on = settings.model_copy(update={"analysis": settings.analysis.model_copy(update={"enabled": True})})
        asyncio.run(with_analysis(on, engine, lambda f: sync_all(on, engine, reporter_factory=f)))
        with session_scope(engine) as s:
            analysed = {r.clip_id for r in s.exec(select(ClipAnalysis)) if r.analyzed_at is not None}
        assert len(analysed) == 1 and not analysed & old_ids  # the recent one only
        detectors = build_detectors(settings.analysis)
        assert set(pending_clips(engine, detectors, max_attempts=5)) == old_ids  # `archiver analyze`'s
    finally:
        engine.dispose()


def test_a_failed_analysis_is_recorded_and_retried_later_without_failing_the_clip(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    sim.add_clips(camera, 2, size=20_000)
    settings = make_settings(tmp_path, sim, analysis={"enabled": False})
    assert run_sync(settings).stored == 2
    engine = open_engine(settings)
    try:
        with session_scope(engine) as s:
            victim = next(o for o in s.exec(select(StoredObject)) if o.kind == "clip")
        (settings.archive_dir / victim.key).write_bytes(b"\x00" * 4096)  # no longer a video
        detectors = build_detectors(settings.analysis)
        dests = build_destinations(settings)
        outcome = analyze_clip(settings, engine, dests, detectors, victim.clip_id)
        assert not outcome.ok and outcome.error
        with session_scope(engine) as s:
            row = s.get(ClipAnalysis, victim.clip_id)
            assert row is not None and row.attempts == 1 and row.error and row.next_attempt_at is not None
            assert s.get(Clip, victim.clip_id).state == "stored"  # archiving is untouched
        assert victim.clip_id not in pending_clips(engine, detectors, max_attempts=5)  # backing off
        assert victim.clip_id in pending_clips(engine, detectors, max_attempts=5, retry_failed=True)
    finally:
        engine.dispose()


def test_archiver_analyze_backfills_an_archive_with_progress_and_resumes(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    sim.add_clips(camera, 4, size=20_000)
    settings = make_settings(tmp_path, sim, analysis={"enabled": False})
    assert run_sync(settings).stored == 4
    assert all(
        "analysis" not in json.loads(p.read_text()) for p in archive_files(settings.archive_dir, ".json")
    )
    engine = open_engine(settings)
    try:  # an interrupted backfill: one clip was done before
        with session_scope(engine) as s:
            first_id = s.exec(select(Clip.id).order_by(Clip.created_at)).first()
        dests = build_destinations(settings)
        assert analyze_clip(settings, engine, dests, build_detectors(settings.analysis), first_id).ok
    finally:
        engine.dispose()

    env = cli_env(tmp_path, sim)
    done = run_cli(["analyze", "--camera", "Front Door", "--since", "2000-01-01"], env)
    assert done.returncode == 0, done.stderr
    assert "3 clips to analyse with motion" in done.stdout and "3/3" in done.stderr  # resumed, with progress
    docs = [json.loads(p.read_text()) for p in archive_files(settings.archive_dir, ".json")]
    assert len(docs) == 4 and all(d["analysis"]["detectors"] == {"motion": "1"} for d in docs)
    bad = run_cli(["analyze", "--detector", "yolo"], env)
    assert bad.returncode == 2 and "unknown detector 'yolo'" in bad.stderr


def test_tags_are_indexed_by_label() -> None:
    found = Detection(tags=[Tag(label="person", confidence=0.8, at_s=1.5)])
    assert found.tags[0].model_dump() == {"label": "person", "confidence": 0.8, "at_s": 1.5}
    assert ClipTag.__table__.indexes  # label, then clip (the web UI's and export's filter)


# -- person (OpenCV HOG, optional extra) ----------------------------------------------------------------


def _photo(name: str) -> Path:
    """A real photograph shipped in scikit-image's wheel (read as a file: skimage itself is not imported)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("needs scikit-image (its sample photographs): pip install scikit-image")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / name
    if not path.is_file():
        pytest.skip(f"scikit-image ships no {name}")
    return path


@pytest.fixture(scope="session")
def person_scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("people")
    photo = _photo("astronaut.png")
    canvas = ["-f", "lavfi", "-i", "color=c=gray:size=640x360:rate=10"]
    return {
        "person": render(
            d / "person.mp4", *canvas, "-loop", "1", "-i", str(photo),
            filters="[1]scale=256:256[p];[0][p]overlay=x=100:y=20:shortest=1", seconds=2,
        ),
        "empty": render(d / "empty.mp4", "-f", "lavfi", "-i", "smptebars=size=640x360:rate=10", seconds=2),
    }  # fmt: skip


def _person_detector() -> object:
    pytest.importorskip("cv2", reason="needs opencv-python-headless>=4.10,<5 (extra analysis-person)")
    [person] = build_detectors(AnalysisSettings(detectors=["person"]))
    return person


def test_the_person_detector_finds_the_person_in_a_real_photograph(person_scenes: dict[str, Path]) -> None:
    found = _person_detector().analyze(person_scenes["person"])  # type: ignore[attr-defined]
    assert found.tags and {t.label for t in found.tags} == {"person"}
    assert all(0.6 <= t.confidence <= 1.0 and 0.0 <= t.at_s <= 2.0 for t in found.tags)


def test_the_person_detector_finds_nobody_in_an_empty_scene(person_scenes: dict[str, Path]) -> None:
    assert _person_detector().analyze(person_scenes["empty"]).tags == []  # type: ignore[attr-defined]


# -- onnx (a user's YOLO model through onnxruntime, optional extra) -------------------------------------

LABELS = ["person", "car", "dog"]
# cx, cy, w, h (input pixels) and one score per label: what a YOLOv8 export answers, one row per box
BOXES = [
    (10, 10, 8, 16, [0.90, 0.0, 0.0]),  # person
    (11, 10, 8, 16, [0.80, 0.0, 0.0]),  # the same person again: merged by NMS
    (25, 20, 6, 10, [0.70, 0.0, 0.0]),  # a second person elsewhere
    (10, 10, 8, 16, [0.0, 0.85, 0.0]),  # a car on the same spot: another label, kept
    (5, 25, 4, 4, [0.0, 0.0, 0.95]),  # a dog: not in the allow-list
    (20, 5, 4, 4, [0.30, 0.0, 0.0]),  # a person under min_confidence
]


def tiny_yolo(path: Path, v5: bool = False) -> Path:
    """A real ONNX model built with onnx's helper API: it answers ``BOXES`` for any 32x32 image (the image
    is used: its mean times zero is added, so onnxruntime runs a real graph on it)."""
    onnx = pytest.importorskip("onnx", reason="needs onnx to build the test model")
    from onnx import TensorProto, helper

    if v5:  # [1, boxes, 5 + classes] with objectness 1.0
        rows = [[cx, cy, w, h, 1.0, *scores] for cx, cy, w, h, scores in BOXES]
        shape = [1, len(BOXES), 5 + len(LABELS)]
        values = [v for row in rows for v in row]
    else:  # [1, 4 + classes, boxes]
        cols = [[cx, cy, w, h, *scores] for cx, cy, w, h, scores in BOXES]
        shape = [1, 4 + len(LABELS), len(BOXES)]
        values = [cols[b][k] for k in range(shape[1]) for b in range(len(BOXES))]
    const = helper.make_tensor("boxes", TensorProto.FLOAT, shape, values)
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images"], ["mean"], keepdims=0),
            helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
            helper.make_node("Add", ["boxes", "nothing"], ["output0"]),
        ],
        "tiny-yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, shape)],
        initializer=[const, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def onnx_settings(tmp_path: Path, v5: bool = False) -> dict[str, object]:
    pytest.importorskip("onnxruntime", reason="needs onnxruntime (extra analysis-onnx)")
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    model = tiny_yolo(tmp_path / "tiny.onnx", v5=v5)
    return {"model": str(model), "labels": str(labels), "allow": ["person", "car"], "frames": 2}


@pytest.mark.parametrize("v5", [False, True], ids=["yolov8-layout", "yolov5-layout"])
def test_the_onnx_detector_decodes_yolo_output_keeps_allowed_labels_and_merges_overlaps(
    tmp_path: Path, scenes: dict[str, Path], v5: bool
) -> None:
    [detector] = build_detectors(AnalysisSettings(detectors=["onnx"], onnx=onnx_settings(tmp_path, v5)))
    found = detector.analyze(scenes["moving"])
    per_frame: dict[float, list[tuple[str, float]]] = {}
    for t in found.tags:
        per_frame.setdefault(t.at_s, []).append((t.label, t.confidence))
    assert len(per_frame) == 2  # two frames sampled
    for tags in per_frame.values():
        assert sorted(tags) == [("car", 0.85), ("person", 0.7), ("person", 0.9)]


def test_onnx_tags_go_through_the_pipeline_into_the_sidecar_and_the_database(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    sim.add_clips(camera, 2, size=20_000)
    analysis = {"detectors": ["motion", "onnx"], "onnx": onnx_settings(tmp_path)}
    settings = make_settings(tmp_path, sim, analysis=analysis)
    engine = open_engine(settings)
    try:
        [report] = asyncio.run(
            with_analysis(settings, engine, lambda f: sync_all(settings, engine, reporter_factory=f))
        )
        assert report.stored == 2
        for p in archive_files(settings.archive_dir, ".json"):
            doc = json.loads(p.read_text())["analysis"]
            assert doc["detectors"] == {"motion": "1", "onnx": "1"} and doc["activity"] is not None
            assert {t["label"] for t in doc["tags"]} == {"person", "car"}
        with session_scope(engine) as s:
            labels = [t.label for t in s.exec(select(ClipTag))]
            newest = max(c.created_at for c in s.exec(select(Clip)))
            assert last_tagged(s, camera, "person") == newest and last_tagged(s, camera, "dog") is None
        assert sorted(set(labels)) == ["car", "person"] and len(labels) == 2 * 2 * 3

        # reindex's hook: the database's scores and tags rebuilt from the sidecars alone
        with session_scope(engine) as s:
            before = {c: summary(s, c) for c in s.exec(select(Clip.id))}
            s.exec(delete(ClipTag))
            s.exec(delete(ClipAnalysis))
        with session_scope(engine) as s:
            for p in archive_files(settings.archive_dir, ".json"):
                doc = json.loads(p.read_text())
                clip_id = s.exec(select(Clip.id).where(Clip.blink_id == doc["id"])).one()
                assert import_sidecar(s, clip_id, doc)
        with session_scope(engine) as s:
            after = {c: summary(s, c) for c in s.exec(select(Clip.id))}
        for c, doc in before.items():
            assert doc is not None and after[c] is not None
            assert {k: v for k, v in after[c].items() if k != "analyzed_at"} == {
                k: v for k, v in doc.items() if k != "analyzed_at"
            }
    finally:
        engine.dispose()
