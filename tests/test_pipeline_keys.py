"""Keys (pipeline/naming.py, pipeline/store.py): every clip gets a key of its own, nothing overwrites."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import archive_files, make_settings, run_sync, sha256
from sqlmodel import select

from archiver.config import load_settings
from archiver.db.engine import open_database, session_scope
from archiver.db.models import Clip, ClipState, StoredObject
from archiver.errors import ConfigError
from archiver.pipeline.naming import clip_key, local_time, template_problem
from archiver.simulator import Faults, SimConfig, Simulator

NOON = datetime(2024, 5, 1, 17, 0, 0, tzinfo=UTC)  # 12:00:00 in Chicago


def _key(**over: object) -> str:
    args: dict = dict(network="Home", camera="Front Door", clip_id="42", created_at=NOON, time_zone="UTC")
    args.update(over)
    return clip_key(str(args.pop("template", "{network}/{camera}/{date}/{time}_{id}.mp4")), **args)


def test_segments_are_cut_by_utf8_bytes_and_keep_the_extension() -> None:
    key = _key(camera="摄" * 120, clip_id="x" * 300)
    folders, name = key.split("/")[:-1], key.split("/")[-1]
    assert all(len(seg.encode()) <= 200 for seg in folders)
    assert folders[1] == "摄" * 66  # 198 bytes: cut between characters, never inside one
    assert name.endswith(".mp4") and len(name.encode()) <= 164
    assert len((name[:-4] + ".generated.jpg.part").encode()) < 255  # siblings and temp names fit


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{}.mp4", "positional"),
        ("{0}.mp4", "positional"),
        ("{camera!r}.mp4", "conversion"),
        ("{camera:>300}.mp4", "format spec"),
        ("{camera.__class__}.mp4", "unknown"),
        ("clip.mp4", "the same"),
        ("{camera}/{id}.mkv", ".mp4"),
        ("{camera", "expected"),
    ],
)
def test_templates_that_cannot_name_clips_are_config_errors(template: str, problem: str) -> None:
    found = template_problem(template)
    assert found is not None and problem in found
    with pytest.raises(ConfigError, match=r"^invalid setting sync\.filename_template: "):
        load_settings(None, sync={"filename_template": template})


def test_templates_without_id_are_allowed() -> None:
    assert template_problem("{camera}/{date}/{time}.mp4") is None


@pytest.mark.parametrize("zone", ["America", "../../etc/passwd", "Not/AZone", "", None])
def test_a_time_zone_that_is_not_one_falls_back_to_utc(zone: str | None) -> None:
    assert local_time(NOON, zone) == NOON
    assert _key(time_zone=zone).endswith("/2024-05-01/17-00-00_42.mp4")


def _rows(settings) -> list[Clip]:  # type: ignore[no-untyped-def]
    with session_scope(open_database(settings.database_url)) as s:
        return list(s.exec(select(Clip).order_by(Clip.id)).all())


def test_same_second_clips_with_an_id_less_template_are_both_kept(tmp_path: Path, sim: Simulator) -> None:
    home1, home2 = sim.add_network("Home"), sim.add_network("Home")  # two networks of the same name
    cams = [sim.add_camera(home1, "Front Door"), sim.add_camera(home2, "Front Door")]
    ids = [sim.add_clip(cams[0], created_at=NOON, size=20_000) for _ in range(2)]
    ids.append(sim.add_clip(cams[1], created_at=NOON, size=21_000))
    settings = make_settings(
        tmp_path,
        sim,
        sync={"filename_template": "{network}/{camera}/{date}/{time}.mp4"},
        processing={"probe": False},
    )
    report = run_sync(settings)
    assert report.stored == 3 and report.failed == 0
    root = tmp_path / "archive"
    names = sorted(p.relative_to(root).as_posix() for p in archive_files(root, ".mp4"))
    assert names == [
        "Home/Front Door/2024-05-01/12-00-00-2.mp4",
        "Home/Front Door/2024-05-01/12-00-00-3.mp4",
        "Home/Front Door/2024-05-01/12-00-00.mp4",
    ]
    assert {sha256(root / n) for n in names} == {sim.clip_sha256(i) for i in ids}
    assert len(archive_files(root, ".jpg")) == 3 and len(archive_files(root, ".json")) == 3
    sidecar = json.loads((root / "Home/Front Door/2024-05-01/12-00-00-2.json").read_text())
    assert sidecar["files"]["clip"]["key"] == "Home/Front Door/2024-05-01/12-00-00-2.mp4"
    assert sidecar["files"]["thumbnail"]["key"] == "Home/Front Door/2024-05-01/12-00-00-2.jpg"
    rows = _rows(settings)
    assert sorted(c.archive_key or "" for c in rows) == names
    with session_scope(open_database(settings.database_url)) as s:
        for c in rows:  # every object row names the clip's own key
            objs = s.exec(select(StoredObject).where(StoredObject.clip_id == c.id)).all()
            assert {o.key.rsplit(".", 1)[0] for o in objs} == {(c.archive_key or "")[: -len(".mp4")]}
    run_sync(settings)  # again: nothing moves, nothing is fetched twice
    assert sorted(c.archive_key or "" for c in _rows(settings)) == names


def test_an_object_the_clip_does_not_own_is_never_replaced(tmp_path: Path, sim: Simulator) -> None:
    cam = sim.add_camera(sim.add_network("Home"), "Front Door")
    media = sim.add_clip(cam, created_at=NOON, size=20_000)
    foreign = tmp_path / "archive" / "Front Door" / "12-00-00.mp4"
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"someone else's recording")
    settings = make_settings(
        tmp_path, sim, sync={"filename_template": "{camera}/{time}.mp4"}, processing={"probe": False}
    )
    assert run_sync(settings).stored == 1
    assert foreign.read_bytes() == b"someone else's recording"
    assert sha256(foreign.with_name("12-00-00-2.mp4")) == sim.clip_sha256(media)
    assert [c.archive_key for c in _rows(settings)] == ["Front Door/12-00-00-2.mp4"]
    assert all(c.state == ClipState.stored for c in _rows(settings))


def test_a_network_time_zone_that_is_a_folder_stores_the_clip_in_utc(tmp_path: Path, sim: Simulator) -> None:
    cam = sim.add_camera(sim.add_network("Home", time_zone="America"), "Front Door")
    media = sim.add_clip(cam, created_at=NOON, size=20_000)
    settings = make_settings(tmp_path, sim, processing={"probe": False}, retention={"keep_daily": 3})
    report = run_sync(settings)
    assert (report.stored, report.failed, report.errors) == (1, 0, [])
    [path] = archive_files(tmp_path / "archive", ".mp4")
    assert (
        path.relative_to(tmp_path / "archive").as_posix()
        == f"Home/Front Door/2024-05-01/17-00-00_{media}.mp4"
    )


def test_usb_clips_of_two_modules_in_same_named_networks_are_both_kept(tmp_path: Path) -> None:
    faults = Faults(manifest_ready_after_s=0.1, command_complete_after_s=0.05, upload_delay_s=0.05)
    with Simulator(SimConfig(two_factor=False), faults) as sim:
        served = []
        for _ in range(2):  # two Sync Modules, each in a network called "Home" with a "Back Door"
            net = sim.add_network("Home")
            cam = sim.add_camera(net, "Back Door")
            served.append(sim.add_local_clip(sim.add_sync_module(net), cam, created_at=NOON))
        settings = make_settings(
            tmp_path,
            sim,
            sync={"filename_template": "{network}/{camera}/{date}/{time}.mp4"},
            local_storage={"poll_interval_s": 0.05, "busy_pause_s": 0.05},
        )
        report = run_sync(settings)
        assert report.stored == 2 and report.failed == 0, report
        root = tmp_path / "archive"
        names = sorted(p.relative_to(root).as_posix() for p in archive_files(root, ".mp4"))
        assert names == ["Home/Back Door/2024-05-01/12-00-00-2.mp4", "Home/Back Door/2024-05-01/12-00-00.mp4"]
        assert len({sha256(root / n) for n in names}) == 2
