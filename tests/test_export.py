# ruff: noqa: F811  (fixtures imported from export_fixtures / s3_fixtures are shadowed by test parameters)
"""`archiver export` on real MP4s from the simulator: the zip holds exactly the selected clips byte for
byte, the real `sha256sum -c SHA256SUMS` passes in the unzipped folder, the manifest matches the database;
bad selections are one line and exit 2; the same zip from an S3 archive and from the web UI; `--video`
gives one decodable MP4 of the clips' total length with the camera and time burned in."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import shutil
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from export_fixtures import CHICAGO, ExportArchive, build, export_archive  # noqa: F401
from helpers import run_cli
from s3_fixtures import moto_server, s3_bucket  # noqa: F401
from sqlmodel import Session, select

from archiver.db.engine import open_engine
from archiver.db.models import Clip, ClipState, ObjectKind, StoredObject
from archiver.destinations import build_destinations
from archiver.export import ExportError, Selection, find_font, has_drawtext, parse_bound, plan, write_zip
from archiver.media.ffmpeg import find_ffmpeg

SHA256SUM = shutil.which("sha256sum")


def env_for(archive: ExportArchive) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVER_")}
    env["ARCHIVER_DATA_DIR"] = str(archive.settings.data_dir)
    return env


def front_clips_on(archive: ExportArchive) -> list[Clip]:
    engine = open_engine(archive.settings)
    try:
        with Session(engine) as s:
            rows = s.exec(
                select(Clip).where(Clip.camera_name == "Front Door", Clip.state == ClipState.stored)
            ).all()
            day = archive.day
            return sorted(
                (c for c in rows if c.created_at.replace(tzinfo=UTC).astimezone(CHICAGO).date() == day),
                key=lambda c: c.created_at,
            )
    finally:
        engine.dispose()


def check_zip(data: bytes, folder: Path, expected: list[Clip], archive: ExportArchive) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        zf.extractall(folder)
    videos = sorted(n for n in names if n.endswith(".mp4"))
    assert videos == sorted(c.archive_key for c in expected)  # exactly the camera's clips of that day
    assert {"SHA256SUMS", "manifest.csv", "README.txt"} <= set(names)
    assert len([n for n in names if n.endswith(".jpg")]) == len(expected)
    assert len([n for n in names if n.endswith(".json")]) == len(expected)
    if SHA256SUM:  # the real tool, as a recipient would run it
        check = subprocess.run([SHA256SUM, "-c", "SHA256SUMS"], cwd=folder, capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        assert check.stdout.count(": OK") == len(names) - 1
    else:  # pragma: no cover - coreutils is everywhere the suite runs
        pytest.skip("sha256sum not installed")
    engine = open_engine(archive.settings)
    try:
        with Session(engine) as s:
            for c in expected:  # byte for byte: the archived sha256 of every file
                for o in s.exec(select(StoredObject).where(StoredObject.clip_id == c.id)).all():
                    if o.kind in (ObjectKind.clip, ObjectKind.thumbnail, ObjectKind.sidecar):
                        body = (folder / o.key).read_bytes()
                        assert hashlib.sha256(body).hexdigest() == o.sha256 and len(body) == o.size
    finally:
        engine.dispose()
    rows = list(csv.DictReader((folder / "manifest.csv").open(encoding="utf-8")))
    assert [r["archive_key"] for r in rows] == [c.archive_key for c in expected]  # in time order
    for r, c in zip(rows, expected, strict=True):
        utc = c.created_at.replace(tzinfo=UTC)
        assert r["camera"] == "Front Door" and r["network"] == "Home"
        assert datetime.fromisoformat(r["utc_time"]) == utc
        assert datetime.fromisoformat(r["local_time"]) == utc.astimezone(CHICAGO)
        assert r["local_time"].endswith(("-06:00", "-05:00")) and r["time_zone"] == "America/Chicago"
        assert r["blink_id"] == c.blink_id and r["source"] == "cloud"
        assert r["sha256"] == c.sha256 and int(r["size"]) == c.size
        assert abs(float(r["duration_s"]) - (c.duration or 0)) < 0.01
        assert datetime.fromisoformat(r["archived_at_utc"]) == c.stored_at.replace(tzinfo=UTC)  # type: ignore[union-attr]


def test_cli_zip_holds_exactly_the_cameras_clips_of_a_local_day_and_sha256sum_passes(
    export_archive: ExportArchive, tmp_path: Path
) -> None:
    expected = front_clips_on(export_archive)
    assert (
        len(expected) == 4
    )  # 00:30, 01:15, 02:40 and 23:50 Chicago; not 23:55 the day before or 00:10 after
    out = tmp_path / "front.zip"
    day = export_archive.day.isoformat()
    r = run_cli(
        ["export", "--camera", "front door", "--from", day, "--to", day, "--out", str(out)],
        env_for(export_archive),
    )
    assert r.returncode == 0, r.stderr
    assert "4 clips" in r.stdout and "sha256sum -c SHA256SUMS" in r.stdout and "MB/s" in r.stdout
    assert not list(tmp_path.glob("*.part"))
    check_zip(out.read_bytes(), tmp_path / "unzipped", expected, export_archive)


def test_a_time_range_is_the_networks_local_time_unless_an_offset_is_given(
    export_archive: ExportArchive,
) -> None:
    day = export_archive.day
    engine = open_engine(export_archive.settings)
    try:
        with Session(engine) as s:
            local = Selection(
                cameras=["Front Door"],
                start=parse_bound(f"{day}T01:00", end=False),
                end=parse_bound(f"{day}T03:00", end=True),
            )
            got = plan(s, local, "disk")
            assert [i.local_at.strftime("%H:%M") for i in got.items] == ["01:15", "02:40"]
            # the same wall-clock hours in UTC are 6 hours earlier in Chicago: none of these clips
            utc = local.model_copy(
                update={
                    "start": parse_bound(f"{day}T01:00Z", end=False),
                    "end": parse_bound(f"{day}T03:00Z", end=True),
                }
            )
            with pytest.raises(ExportError, match="no stored clip matches"):
                plan(s, utc, "disk")
            network = plan(
                s,
                Selection(
                    network="home",
                    start=parse_bound(str(day), end=False),
                    end=parse_bound(str(day), end=True),
                ),
                "disk",
            )
            assert {i.camera for i in network.items} == {"Front Door", "Back Yard"} and len(
                network.items
            ) == 6
            times = [i.created_at for i in network.items]
            assert times == sorted(times)
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--camera", "Garage"], "no camera named 'Garage'"),
        (["--network", "Moon"], "no network named 'Moon'"),
        (["--camera", "Porch", "--from", "2001-01-01", "--to", "2001-01-02"], "no stored clip matches"),
        (["--camera", "Porch", "--from", "yesterday"], "--from 'yesterday'"),
        (["--camera", "Porch", "--destination", "tape"], "no destination named 'tape'"),
        (["--camera", "Porch", "--source", "floppy"], "--source 'floppy'"),
        (["--camera", "Porch"], "--out FILE.zip"),
    ],
)
def test_an_empty_or_bad_selection_is_one_line_and_exit_2(
    export_archive: ExportArchive, tmp_path: Path, args: list[str], message: str
) -> None:
    outs = [] if message == "--out FILE.zip" else ["--out", str(tmp_path / "x.zip")]
    r = run_cli(["export", *args, *outs], env_for(export_archive))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not list(tmp_path.iterdir())


def test_a_file_that_no_longer_matches_its_checksum_is_named_and_exit_1(tmp_path: Path) -> None:
    archive = build(tmp_path / "a")
    clip = front_clips_on(archive)[0]
    path = archive.settings.archive_dir / clip.archive_key  # type: ignore[operator]
    body = bytearray(path.read_bytes())
    body[-1] ^= 0xFF
    path.write_bytes(bytes(body))
    out = tmp_path / "x.zip"
    r = run_cli(["export", "--camera", "Front Door", "--out", str(out)], env_for(archive))
    assert r.returncode == 1 and "verify --repair" in r.stderr
    with zipfile.ZipFile(out) as zf:
        assert clip.archive_key in zf.read("PROBLEMS.txt").decode()
        assert len([n for n in zf.namelist() if n.endswith(".mp4")]) == 6  # the others are all there


def get(app: Any, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui") as c:
            return await c.get(path)

    return asyncio.run(go())


def test_the_same_zip_from_the_web_ui(export_archive: ExportArchive, tmp_path: Path) -> None:
    from archiver.web.app import create_app

    engine = open_engine(export_archive.settings)
    try:
        app = create_app(export_archive.settings, engine)
        day = export_archive.day.isoformat()
        r = get(app, f"/export?camera=Front+Door&from={day}&to={day}")
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        assert "attachment" in r.headers["content-disposition"]
        check_zip(r.content, tmp_path / "web", front_clips_on(export_archive), export_archive)
        expected = front_clips_on(export_archive)[:2]
        picked = get(app, "/export?" + "&".join(f"clip={c.id}" for c in expected))
        with zipfile.ZipFile(io.BytesIO(picked.content)) as zf:
            assert sorted(n for n in zf.namelist() if n.endswith(".mp4")) == sorted(
                c.archive_key for c in expected
            )
        bad = get(app, "/export?camera=Garage")
        assert bad.status_code == 400 and "no camera named" in bad.text
    finally:
        engine.dispose()


def test_export_from_s3_reads_through_the_destination_and_passes_sha256sum(
    tmp_path: Path, s3_bucket: tuple[str, str]
) -> None:
    endpoint, bucket = s3_bucket
    archive = build(
        tmp_path / "s3",
        destinations=[
            {"type": "s3", "name": "bucket", "bucket": bucket, "prefix": "p", "endpoint_url": endpoint}
        ],
    )
    [dest] = build_destinations(archive.settings)
    engine = open_engine(archive.settings)
    try:
        with Session(engine) as s:
            day = str(archive.day)
            chosen = plan(
                s,
                Selection(
                    cameras=["Front Door"], start=parse_bound(day, end=False), end=parse_bound(day, end=True)
                ),
                dest.name,
            )
        buf = io.BytesIO()
        result = write_zip(chosen, dest, buf)
        assert result.problems == [] and result.clips == 4
        check_zip(buf.getvalue(), tmp_path / "unzipped", front_clips_on(archive), archive)
        from archiver.web.app import create_app

        r = get(create_app(archive.settings, engine), f"/export?camera=Front+Door&from={day}&to={day}")
        check_zip(r.content, tmp_path / "web", front_clips_on(archive), archive)
    finally:
        engine.dispose()


def rgb_rows(frame: Any, width: int, height: int) -> list[bytes]:
    """A decoded frame as rows of RGB bytes at ``width`` x ``height`` (no numpy needed)."""
    plane = frame.reformat(width=width, height=height, format="rgb24").planes[0]
    data = bytes(plane)
    return [data[y * plane.line_size : y * plane.line_size + width * 3] for y in range(height)]


def mean_diff(a: list[bytes], b: list[bytes], rows: range, cols: range) -> float:
    total = n = 0
    for y in rows:
        ra, rb = a[y], b[y]
        for x in range(cols.start * 3, cols.stop * 3):
            total += abs(ra[x] - rb[x])
            n += 1
    return total / n


def test_video_is_one_decodable_mp4_of_the_clips_with_camera_and_time_burned_in(
    export_archive: ExportArchive, tmp_path: Path
) -> None:
    import av

    expected = front_clips_on(export_archive)
    out = tmp_path / "night.mp4"
    day = export_archive.day.isoformat()
    r = run_cli(
        ["export", "--camera", "Front Door", "--from", day, "--to", day, "--video", str(out)],
        env_for(export_archive),
    )
    assert r.returncode == 0, r.stderr
    total = sum(c.duration or 0 for c in expected)
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        frames = list(c.decode(stream))
        duration = float(c.duration or 0) / 1e6
        width, height = stream.codec_context.width, stream.codec_context.height
    assert frames and abs(duration - total) <= 0.1 * total, (duration, total)
    original = export_archive.settings.archive_dir / expected[0].archive_key  # type: ignore[operator]
    with av.open(str(original)) as c:
        plain = rgb_rows(next(c.decode(c.streams.video[0])), width, height)
    first = rgb_rows(frames[0], width, height)
    box = (range(0, height // 8), range(0, width // 2))  # where the caption is drawn
    rest = (range(height // 2, height, 4), range(0, width, 1))
    assert mean_diff(first, plain, *rest) < 12  # the picture itself is the clip's
    if find_font() is None or not has_drawtext(find_ffmpeg()):  # no font (fonts-dejavu-core) or drawtext
        assert "no burned-in camera name and time" in r.stderr
        return
    assert "note:" not in r.stderr
    assert mean_diff(first, plain, *box) > 20  # the text changed those pixels
    stat = original.stat()
    assert (
        hashlib.sha256(original.read_bytes()).hexdigest() == expected[0].sha256
        and stat.st_size == expected[0].size
    )
