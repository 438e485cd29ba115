"""Sync into disk and S3 (moto's server over HTTP) at once; S3 outages; retention after sync; cleanup."""

# ruff: noqa: F811
from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import boto3
import pytest
from helpers import archive_files, make_settings, run_sync
from s3_fixtures import moto_server, s3_bucket  # noqa: F401
from sqlmodel import select

from archiver.db.engine import open_database, session_scope
from archiver.db.models import Clip, ClipState, StoredObject
from archiver.errors import Unavailable
from archiver.pipeline.report import SyncReport
from archiver.pipeline.runner import build_job, open_engine
from archiver.simulator import Simulator


def _s3(endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def test_sync_to_disk_and_s3_stores_every_clip_in_both_with_metadata(
    tmp_path: Path, sim: Simulator, camera: int, s3_bucket: tuple[str, str]
) -> None:
    endpoint, bucket = s3_bucket
    ids = sim.add_clips(camera, 4, size=30_000)
    settings = make_settings(
        tmp_path,
        sim,
        destinations=[
            {"type": "disk", "path": str(tmp_path / "nas")},
            {"type": "s3", "bucket": bucket, "prefix": "blink", "endpoint_url": endpoint},
        ],
    )
    report = run_sync(settings)
    assert report.stored == 4 and report.exit_code == 0
    assert len(archive_files(tmp_path / "nas", ".mp4")) == 4
    s3 = _s3(endpoint)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    mp4s = [k for k in keys if k.endswith(".mp4")]
    assert len(mp4s) == 4 and all(k.startswith("blink/") for k in keys) and len(keys) == 12
    served = {sim.clip_sha256(i) for i in ids}
    for k in mp4s:
        obj = s3.get_object(Bucket=bucket, Key=k)
        body = obj["Body"].read()
        assert hashlib.sha256(body).hexdigest() in served
        assert obj["Metadata"]["sha256"] == hashlib.sha256(body).hexdigest()
        assert obj["Metadata"]["clip-id"].startswith("cloud:")


def test_s3_unreachable_marks_nothing_stored_and_the_next_sync_completes(
    tmp_path: Path, sim: Simulator, camera: int, s3_bucket: tuple[str, str]
) -> None:
    endpoint, bucket = s3_bucket
    sim.add_clips(camera, 3, size=20_000)
    dead = make_settings(
        tmp_path,
        sim,
        sync={"retry_backoff": "0s"},  # the failed clips are due again at once
        destinations=[
            {"type": "disk"},
            {"type": "s3", "bucket": bucket, "endpoint_url": "http://127.0.0.1:9"},  # nothing listens
        ],
    )
    with pytest.raises(Unavailable, match="nothing was downloaded"):  # the runner's preflight
        run_sync(dead)
    assert sim.request_count("/media/clip/") == 0

    async def past_the_preflight() -> SyncReport:  # S3 goes down while the sync runs
        engine = open_engine(dead)
        job = build_job(dead, engine, dead.account_list()[0])
        try:
            return await job.run()
        finally:
            await job.aclose()
            engine.dispose()

    report = asyncio.run(past_the_preflight())
    assert report.stored == 0 and report.failed == 3 and report.exit_code == 1
    engine = open_database(dead.database_url)
    with session_scope(engine) as s:
        assert all(c.state == ClipState.failed for c in s.exec(select(Clip)).all())
        assert {o.destination for o in s.exec(select(StoredObject)).all()} == {"disk"}
    alive = make_settings(
        tmp_path,
        sim,
        sync={"retry_backoff": "0s"},
        destinations=[
            {"type": "disk"},
            {"type": "s3", "bucket": bucket, "endpoint_url": endpoint},
        ],
    )
    sim.reset_requests()
    assert run_sync(alive).stored == 3
    keys = [o["Key"] for o in _s3(endpoint).list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) == 9
    assert sim.request_count("/media/clip/") == 3  # the clips were refetched, the disk copies kept


def test_retention_runs_after_sync_and_rows_follow(tmp_path: Path, sim: Simulator, camera: int) -> None:
    sim.add_clips(camera, 5, size=10_000)
    from archiver.pipeline.runner import open_engine, sync_and_prune

    settings = make_settings(tmp_path, sim, retention={"keep_last": 2})
    [report] = asyncio.run(sync_and_prune(settings, open_engine(settings)))
    assert report.stored == 5 and report.pruned == 3
    assert len(archive_files(tmp_path / "archive", ".mp4")) == 2
    with session_scope(open_database(settings.database_url)) as s:
        states = sorted(c.state.value for c in s.exec(select(Clip)).all())
        assert states == ["pruned"] * 3 + ["stored"] * 2
        assert len(s.exec(select(StoredObject)).all()) == 6
    run_sync(settings)  # pruned clips are never fetched again
    assert len(archive_files(tmp_path / "archive", ".mp4")) == 2


def test_cloud_cleanup_is_off_by_default_and_deletes_only_archived_clips(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    ids = sim.add_clips(camera, 3, size=10_000)
    run_sync(make_settings(tmp_path, sim))
    assert sim.deleted_cloud_ids == set()
    (tmp_path / "archive").joinpath(
        next(p for p in archive_files(tmp_path / "archive", ".mp4")).relative_to(tmp_path / "archive")
    ).write_bytes(b"x" * 10)  # one copy is damaged: that clip must stay in the cloud
    report = run_sync(make_settings(tmp_path, sim, cloud_cleanup={"enabled": True}))
    assert report.cloud_deleted == 2 and len(sim.deleted_cloud_ids) == 2
    assert sim.deleted_cloud_ids < set(ids)


def test_worker_prune_and_verify_jobs_use_the_configured_destinations(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    from archiver.pipeline.runner import open_engine
    from archiver.worker import Worker

    sim.add_clips(camera, 3, size=10_000)
    settings = make_settings(tmp_path, sim, retention={"keep_last": 1, "prune_after_sync": False})
    run_sync(settings)
    worker = Worker(settings, open_engine(settings))
    report = worker.prune_once()
    assert report is not None and report.pruned == 2
    verified = worker.verify_once()
    assert verified.ok and verified.checked == 3
    assert len(archive_files(tmp_path / "archive", ".mp4")) == 1


def test_the_worker_prunes_after_its_syncs_under_the_prune_lease(
    tmp_path: Path, sim: Simulator, camera: int
) -> None:
    from datetime import timedelta

    from archiver.db.lease import release, try_acquire
    from archiver.pipeline.runner import open_engine
    from archiver.worker import Worker

    sim.add_clips(camera, 3, size=10_000)
    settings = make_settings(tmp_path, sim, retention={"keep_last": 1})
    engine = open_engine(settings)
    assert try_acquire(engine, "job:prune", "another-process", timedelta(minutes=5))
    asyncio.run(Worker(settings, engine).sync_job())
    assert len(archive_files(tmp_path / "archive", ".mp4")) == 3  # another process is pruning: skipped
    release(engine, "job:prune", "another-process")
    asyncio.run(Worker(settings, engine).sync_job())
    assert len(archive_files(tmp_path / "archive", ".mp4")) == 1


def test_cloud_cleanup_compares_sha256_not_size(tmp_path: Path, sim: Simulator, camera: int) -> None:
    ids = sim.add_clips(camera, 2, size=10_000)
    run_sync(make_settings(tmp_path, sim))
    damaged = archive_files(tmp_path / "archive", ".mp4")[0]
    size = damaged.stat().st_size
    damaged.unlink()  # replace, not write through: the staged file was hard-linked
    damaged.write_bytes(b"\0" * size)  # same size, other bytes
    report = run_sync(make_settings(tmp_path, sim, cloud_cleanup={"enabled": True}))
    assert report.cloud_deleted == 1 and len(sim.deleted_cloud_ids) == 1
    assert sim.deleted_cloud_ids < set(ids)
