"""The USB source's bookkeeping against a small fake context (a real database, no server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from helpers import source_context
from sqlmodel import select

from archiver.blink.local_storage import ModuleRef
from archiver.blink.models import Manifest
from archiver.db import repo
from archiver.db.engine import session_scope
from archiver.db.models import Clip, ClipState
from archiver.sources.base import SourceContext
from archiver.sources.usb import GONE, ModuleReport, UsbSource, upsert_manifest
from archiver.sources.usb_topology import Topology

AT = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
MODULE = ModuleRef(blink_id=5, network_id=1, name="SM2", status="online", local_storage_status="active")


def topology() -> Topology:
    topo = Topology(networks={1: ("Home", "Europe/Berlin")})
    topo.add_camera(1, 70, "Back Door")
    topo.add_camera(1, 71, "Garage")
    return topo


def manifest(mid: str, *clips: tuple[str, str, datetime]) -> Manifest:
    return Manifest.model_validate(
        {
            "manifest_id": mid,
            "clips": [
                {"id": cid, "camera_name": cam, "created_at": at.isoformat(), "size": "150"}
                for cid, cam, at in clips
            ],
        }
    )


def rows(ctx: SourceContext) -> list[Clip]:
    with session_scope(ctx.engine) as s:
        return list(repo.pending_clips(s, ctx.account_id))


def test_manifest_clips_become_rows_mapped_to_cameras_oldest_first(tmp_path: Path) -> None:
    ctx = source_context(tmp_path)
    result = ModuleReport(name="SM2", id=5, network_id=1)
    later, earlier = AT + timedelta(minutes=5), AT
    todo = upsert_manifest(
        ctx, MODULE, topology(), manifest("m1", ("2", "BackDoor", later), ("1", "Stray Cam", earlier)), result
    )
    assert [c.blink_id for c in todo] == ["1", "2"] and result.new == 2
    stray, back = todo
    assert back.camera_blink_id == 70 and back.camera_name == "Back Door" and back.network_name == "Home"
    assert stray.camera_blink_id is None and stray.identity == f"local:5:StrayCam:{earlier.isoformat()}"
    assert back.source == UsbSource.name and back.size_hint == 150 and back.time_zone == "Europe/Berlin"


def test_a_renumbered_manifest_updates_ids_and_creates_nothing(tmp_path: Path) -> None:
    ctx = source_context(tmp_path)
    first = ModuleReport(name="SM2", id=5, network_id=1)
    upsert_manifest(ctx, MODULE, topology(), manifest("m1", ("1", "Garage", AT)), first)
    again = ModuleReport(name="SM2", id=5, network_id=1)
    [row] = upsert_manifest(ctx, MODULE, topology(), manifest("m2", ("9", "Garage", AT)), again)
    assert again.new == 0 and row.blink_id == "9"


def test_pending_clips_that_left_the_card_are_marked_gone(tmp_path: Path) -> None:
    ctx = source_context(tmp_path)
    result = ModuleReport(name="SM2", id=5, network_id=1)
    later = AT + timedelta(minutes=1)
    upsert_manifest(
        ctx, MODULE, topology(), manifest("m1", ("1", "Garage", AT), ("2", "Garage", later)), result
    )
    upsert_manifest(ctx, MODULE, topology(), manifest("m2", ("1", "Garage", AT)), result)
    with session_scope(ctx.engine) as s:
        gone = [c for c in s.exec(select(Clip)) if c.deleted_upstream]
    assert [(c.blink_id, c.state, c.last_error) for c in gone] == [("2", ClipState.failed, GONE)]


def test_new_clips_of_filtered_cameras_are_not_recorded(tmp_path: Path) -> None:
    ctx = source_context(tmp_path, cameras=["Back Door"])
    result = ModuleReport(name="SM2", id=5, network_id=1)
    todo = upsert_manifest(
        ctx, MODULE, topology(), manifest("m1", ("1", "BackDoor", AT), ("2", "Garage", AT)), result
    )
    assert [c.camera_name for c in todo] == ["Back Door"] and result.new == 1
    assert [c.camera_name for c in rows(ctx)] == ["Back Door"]


def test_each_module_is_its_own_lane(tmp_path: Path) -> None:
    source = UsbSource(source_context(tmp_path))
    a = Clip(account_id=1, source="local", identity="a", blink_id="1", created_at=AT, sync_module_blink_id=5)
    b = Clip(account_id=1, source="local", identity="b", blink_id="2", created_at=AT, sync_module_blink_id=6)
    assert source.lane(a) != source.lane(b) and source.lane(a) == source.lane(a.model_copy())
