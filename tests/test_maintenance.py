"""verify --repair, prune's report and start-up checks, against the simulator, disk and moto's S3."""

# ruff: noqa: F811
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import boto3
from helpers import archive_files, free_port, make_settings, run_cli, run_sync, sha256, sim_config
from s3_fixtures import moto_server, s3_bucket  # noqa: F401
from sqlmodel import select

from archiver.db.engine import open_database, session_scope
from archiver.db.models import Clip, ClipState
from archiver.maintenance import run_verify
from archiver.simulator import Simulator


def _two_destinations(tmp_path: Path, sim: Simulator, endpoint: str, bucket: str, **over):  # type: ignore[no-untyped-def]
    return make_settings(
        tmp_path,
        sim,
        destinations=[
            {"type": "disk", "path": str(tmp_path / "nas")},
            {"type": "s3", "bucket": bucket, "endpoint_url": endpoint},
        ],
        processing={"probe": False},
        **over,
    )


def _s3_keys(endpoint: str, bucket: str) -> list[str]:
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_repair_queues_clips_blink_still_has_and_the_next_sync_restores_them(
    tmp_path: Path, sim: Simulator, camera: int, s3_bucket: tuple[str, str]
) -> None:
    endpoint, bucket = s3_bucket
    ids = sim.add_clips(camera, 4, size=20_000)
    settings = _two_destinations(tmp_path, sim, endpoint, bucket)
    assert run_sync(settings).stored == 4
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    mp4s = [k for k in _s3_keys(endpoint, bucket) if k.endswith(".mp4")]
    client.delete_object(Bucket=bucket, Key=mp4s[0])  # the bucket lost objects
    client.delete_object(Bucket=bucket, Key=mp4s[1].replace(".mp4", ".jpg"))
    damaged = archive_files(tmp_path / "nas", ".mp4")[2]
    damaged.write_bytes(b"x" * damaged.stat().st_size)  # bit rot on the NAS, same size
    engine = open_database(settings.database_url)

    report = run_verify(settings, engine, repair=True)
    assert (len(report.missing), len(report.corrupt), report.requeued, report.copied) == (2, 1, 3, 0)
    with session_scope(engine) as s:
        states = sorted(c.state.value for c in s.exec(select(Clip)).all())
    assert states == ["discovered"] * 3 + ["stored"]

    sim.reset_requests()
    assert run_sync(settings).stored == 3
    assert sim.request_count("/media/clip/") == 3  # only the damaged clips came again
    assert run_verify(settings, engine).ok
    assert len(_s3_keys(endpoint, bucket)) == 12
    assert {sha256(p) for p in archive_files(tmp_path / "nas", ".mp4")} == {sim.clip_sha256(i) for i in ids}


def test_repair_copies_from_another_destination_when_blink_no_longer_has_the_clip(
    tmp_path: Path, sim: Simulator, camera: int, s3_bucket: tuple[str, str]
) -> None:
    endpoint, bucket = s3_bucket
    ids = sim.add_clips(camera, 2, size=20_000)
    settings = _two_destinations(tmp_path, sim, endpoint, bucket)
    assert run_sync(settings).stored == 2
    engine = open_database(settings.database_url)
    with session_scope(engine) as s:
        for c in s.exec(select(Clip)).all():
            c.deleted_upstream = True  # gone from Blink (or deleted by cloud cleanup)
            s.add(c)
    mp4 = next(k for k in _s3_keys(endpoint, bucket) if k.endswith(".mp4"))
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").delete_object(Bucket=bucket, Key=mp4)
    lost = archive_files(tmp_path / "nas", ".json")[1]
    lost.unlink()  # and the NAS lost a sidecar

    report = run_verify(settings, engine, repair=True)
    assert (len(report.missing), report.requeued, report.copied, report.unrepairable) == (2, 0, 2, [])
    assert run_verify(settings, engine).ok
    assert lost.exists()
    body = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").get_object(
        Bucket=bucket, Key=mp4
    )
    assert hashlib.sha256(body["Body"].read()).hexdigest() in {sim.clip_sha256(i) for i in ids}
    with session_scope(engine) as s:
        assert {c.state for c in s.exec(select(Clip)).all()} == {ClipState.stored}


def test_prune_with_s3_down_says_it_deleted_nothing(
    tmp_path: Path, sim: Simulator, camera: int, s3_bucket: tuple[str, str]
) -> None:
    endpoint, bucket = s3_bucket
    sim.add_clips(camera, 3, size=10_000)
    extra = (
        "[retention]\nkeep_last = 1\nprune_after_sync = false\n"
        '[[destinations]]\ntype = "disk"\n'
        f'[[destinations]]\ntype = "s3"\nbucket = "{bucket}"\nendpoint_url = "{endpoint}"\n'
        'region = "us-east-1"\n'
    )
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_MAX_ATTEMPTS": "1"}
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}, **env}
    cfg = sim_config(tmp_path, sim, extra)
    assert run_cli(["--config", str(cfg), "sync"], env).returncode == 0
    down = cfg.read_text().replace(endpoint, f"http://127.0.0.1:{free_port()}")
    cfg.write_text(down)
    res = run_cli(["--config", str(cfg), "prune"], env)
    assert res.returncode == 1
    assert "3 stored clips checked; deleted 0 clips, " in res.stdout
    assert "(2 of 2 to forget are kept for now)" in res.stdout
    assert "error:" in res.stderr and "cannot reach the endpoint" in res.stderr
    assert len(_s3_keys(endpoint, bucket)) == 9  # nothing was deleted from S3


def test_the_worker_downloads_nothing_while_a_destination_is_down(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    import asyncio

    from archiver.pipeline.runner import open_engine
    from archiver.worker import Worker

    sim.add_clips(camera, 3, size=20_000)
    settings = make_settings(
        tmp_path,
        sim,
        destinations=[
            {"type": "disk"},
            {
                "type": "s3",
                "bucket": "blink",
                "endpoint_url": f"http://127.0.0.1:{free_port()}",
                "access_key_id": "AKID",
                "secret_access_key": "secret",
                "region": "us-east-1",
            },
        ],
    )
    sim.reset_requests()
    asyncio.run(Worker(settings, open_engine(settings)).sync_account("default"))
    assert sim.request_count("/media/clip/") == 0  # not 3 downloads thrown away
    assert archive_files(tmp_path / "archive", ".mp4") == []
