# ruff: noqa: F811  (fixtures imported from s3_fixtures are shadowed by test parameters)
"""The web UI on an S3-only archive (moto's server over HTTP): media is proxied from the bucket with the
browser's Range passed on (206), never a redirect off the origin; thumbnails and the sidecar too."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import boto3
from helpers import asgi_get as get
from helpers import make_settings, run_sync
from s3_fixtures import moto_server, s3_bucket  # noqa: F401

from archiver.db.engine import open_engine
from archiver.simulator import Simulator
from archiver.web.app import create_app


def test_s3_archive_pages_and_ranged_video(
    tmp_path: Path, sim: Simulator, camera: int, s3_bucket: tuple[str, str]
) -> None:
    endpoint, bucket = s3_bucket
    sim.add_clips(camera, 2, size=30_000)
    s = make_settings(
        tmp_path,
        sim,
        processing={"probe": False},
        destinations=[
            {"type": "s3", "name": "bucket", "bucket": bucket, "prefix": "blink", "endpoint_url": endpoint}
        ],
    )
    assert run_sync(s).stored == 2
    engine = open_engine(s)
    app = create_app(s, engine)
    try:
        home = get(app, "/").text
        thumb = re.search(r'src="(/media/\d+/thumbnail)"', home)
        assert thumb, home
        img = get(app, thumb[1])
        assert img.status_code == 200 and img.content[:2] == b"\xff\xd8" and img.headers["etag"]
        camera_page = get(app, re.findall(r'href="(/camera/\d+/\d+)"', home)[0]).text
        clip_url = re.findall(r'href="(/clip/\d+)"', camera_page)[0]
        clip = get(app, clip_url)
        assert "<dt>camera.name</dt><dd>Front Door</dd>" in clip.text  # the sidecar, read from S3
        clip_id = clip_url.rsplit("/", 1)[1]
        full = get(app, f"/media/{clip_id}/video")
        assert full.status_code == 200 and len(full.content) == 30_000
        assert f'"{hashlib.sha256(full.content).hexdigest()}"' == full.headers["etag"]
        keys = [
            o["Key"]
            for o in boto3.client("s3", endpoint_url=endpoint).list_objects_v2(Bucket=bucket)["Contents"]
        ]
        assert all(k.startswith("blink/") for k in keys) and endpoint not in clip.text
        part = get(app, f"/media/{clip_id}/video", headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206
        assert part.headers["content-range"] == "bytes 1000-1999/30000"
        assert part.content == full.content[1000:2000]
        assert get(app, f"/media/{clip_id}/video", headers={"Range": "bytes=40000-"}).status_code == 416
        cached = get(app, f"/media/{clip_id}/video", headers={"If-None-Match": full.headers["etag"]})
        assert cached.status_code == 304
        status = get(app, "/status").text
        assert "<td>bucket</td>" in status
    finally:
        engine.dispose()
