"""Through the CLI, on disk and on S3 (moto's server): 30 clips synced, Blink forgets the 10 oldest, the
database is lost; `archiver reindex` brings every clip back, the next sync downloads nothing and writes no
"-2" copy, and `archiver prune` removes the clips Blink no longer has too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import PASSWORD, USER, cli_env, run_cli
from s3_fixtures import moto_server, s3_bucket  # noqa: F401
from sqlalchemy import func
from sqlmodel import select

from archiver.db.engine import open_database, session_scope
from archiver.db.models import Clip, ClipState
from archiver.destinations.base import Destination
from archiver.destinations.disk import DiskDestination
from archiver.simulator import Simulator


def _destination(kind: str, data: Path, request: pytest.FixtureRequest) -> tuple[dict[str, str], Destination]:
    if kind == "disk":
        return {}, DiskDestination(data / "archive")
    endpoint, bucket = request.getfixturevalue("s3_bucket")
    from archiver.config import S3DestinationSettings
    from archiver.destinations.s3 import S3Destination

    cfg = {"type": "s3", "bucket": bucket, "endpoint_url": endpoint, "prefix": "blink/"}
    dest = S3Destination(S3DestinationSettings.model_validate(cfg), "s3")
    return {"ARCHIVER_DESTINATIONS": json.dumps([cfg])}, dest


def _stored(data: Path) -> int:
    """Stored clips, as the database and what `archiver status` (and Home Assistant) read count them."""
    from archiver.db.summary import account_summaries

    engine = open_database(f"sqlite:///{data / 'archiver.db'}")
    try:
        with session_scope(engine) as s:
            q = select(func.count()).select_from(Clip).where(Clip.state == ClipState.stored)
            stored = int(s.exec(q).one())
        [summary] = account_summaries(engine)
        assert summary.counts[("cloud", "stored")] == stored
        return stored
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["disk", "s3"])
def test_reindex_after_a_lost_database_then_sync_downloads_nothing_and_prune_sees_every_clip(
    tmp_path: Path, sim: Simulator, camera: int, kind: str, request: pytest.FixtureRequest
) -> None:
    data = tmp_path / "data"
    extra, dest = _destination(kind, data, request)
    env = cli_env(
        data,
        sim,
        ARCHIVER_BLINK__USERNAME=USER,
        ARCHIVER_BLINK__PASSWORD=PASSWORD,
        ARCHIVER_PROCESSING__PROBE="false",
        **extra,
    )
    sim.add_clips(camera, 30, size=20_000)
    res = run_cli(["sync"], env)
    assert res.returncode == 0, res.stderr
    assert len([o for o in dest.list("") if o.key.endswith(".mp4")]) == 30

    forgotten = sim.forget_oldest_clips(10)
    for suffix in ("", "-wal", "-shm"):
        (data / f"archiver.db{suffix}").unlink(missing_ok=True)

    res = run_cli(["reindex"], env)
    assert res.returncode == 0, res.stderr
    assert "30 clips found; 30 added, 0 already known, 0 problems" in res.stdout
    assert _stored(data) == 30

    sim.reset_requests()
    res = run_cli(["sync"], env)
    assert res.returncode == 0, res.stderr
    assert sim.request_count("/media/clip/") == 0
    keys = [o.key for o in dest.list("")]
    assert len([k for k in keys if k.endswith(".mp4")]) == 30
    assert not [k for k in keys if k.endswith("-2.mp4") or k.endswith("-2.json")]

    res = run_cli(["prune"], {**env, "ARCHIVER_RETENTION__KEEP_LAST": "5"})
    assert res.returncode == 0, res.stderr
    assert "deleted 25 clips" in res.stdout
    left = [o.key for o in dest.list("") if o.key.endswith(".mp4")]
    assert len(left) == 5
    assert not [k for k in left if any(k.endswith(f"_{i}.mp4") for i in forgotten)]
