# ruff: noqa: F811  (pytest fixtures imported from the *_fixtures modules are shadowed by test parameters)
"""Through the CLI: a sync into an SFTP server and an encrypted S3 bucket at once, what the bucket holds,
verify on both, export and the web UI (a Range request) reading the encrypted bucket, a flipped byte found
by verify, a byte range decrypted through ``open``, and
``archiver copy`` into a new encrypted destination (resumable, recorded)."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import boto3
import pytest
from helpers import asgi_get, cli_env, run_cli, sim_config
from remote_fixtures import PASSWORD, USER, Server, sftp_server  # noqa: F401
from s3_fixtures import moto_server, s3_bucket  # noqa: F401
from sqlmodel import Session, select

from archiver.config import load_settings
from archiver.db.engine import open_engine
from archiver.db.models import StoredObject
from archiver.destinations import build_destinations
from archiver.destinations.base import read_all
from archiver.destinations.crypt import HEADER_LEN
from archiver.simulator import Simulator
from archiver.web.app import create_app


@pytest.fixture
def setup(tmp_path: Path, sim: Simulator, camera: int, sftp_server: Server, s3_bucket):
    endpoint, bucket = s3_bucket
    sim.add_clips(camera, 2, size=200_000)
    env = cli_env(tmp_path / "data", sim)
    res = run_cli(["keygen", str(tmp_path / "archive.key")], env)
    assert res.returncode == 0, res.stderr
    extra = f"""
[encryption]
key_file = "{tmp_path / "archive.key"}"

[[destinations]]
type = "sftp"
name = "nas"
host = "127.0.0.1"
port = {sftp_server.port}
username = "{USER}"
password = "{PASSWORD}"
known_hosts = "{sftp_server.extra["known_hosts"]}"
path = "e2e-{tmp_path.name}"

[[destinations]]
type = "s3"
name = "offsite"
bucket = "{bucket}"
endpoint_url = "{endpoint}"
region = "us-east-1"
encrypt = true
"""
    cfg = sim_config(tmp_path, sim, extra)
    return cfg, env, endpoint, bucket


VAULT = """
[[destinations]]
type = "disk"
name = "vault"
path = "{path}"
encrypt = true
encrypt_names = true
"""


def objects(cfg: Path, destination: str) -> list[StoredObject]:
    engine = open_engine(load_settings(cfg))
    try:
        with Session(engine) as s:
            return list(s.exec(select(StoredObject).where(StoredObject.destination == destination)))
    finally:
        engine.dispose()


def test_sync_to_sftp_and_encrypted_s3_then_verify_copy_and_tamper(setup, sftp_server: Server) -> None:
    cfg, env, endpoint, bucket = setup
    res = run_cli(["-c", str(cfg), "sync"], env)
    assert res.returncode == 0, res.stderr
    assert PASSWORD not in res.stdout + res.stderr
    nas = {o.key: o for o in objects(cfg, "nas")}
    offsite = {o.key: o for o in objects(cfg, "offsite")}
    clips = [k for k in nas if k.endswith(".mp4")]
    assert len(clips) == 2 and set(nas) == set(offsite)  # clips, thumbnails and sidecars in both
    assert all(offsite[k].sha256 == nas[k].sha256 and offsite[k].size == nas[k].size for k in nas)

    # the NAS holds the plaintext; the bucket holds nothing of it
    root = sftp_server.root / f"e2e-{cfg.parent.name}"
    plain = {k: (root / k).read_bytes() for k in nas}
    assert all(hashlib.sha256(plain[k]).hexdigest() == nas[k].sha256 for k in nas)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    stored = {
        o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])
        for o in s3.list_objects_v2(Bucket=bucket)["Contents"]
    }
    assert set(stored) == set(nas)
    raw = {k: v["Body"].read() for k, v in stored.items()}
    for key, data in plain.items():
        assert all(set(v["Metadata"]) == {"sha256"} for v in stored.values())
        for blob in raw.values():
            if key.endswith(".mp4"):
                assert b"ftyp" in data[:16] and b"ftyp" not in blob
            assert all(data[i : i + 64] not in blob for i in range(0, max(1, len(data) - 64), 61))

    # everything reads back exactly, whole and by range, through the interface readers use
    dests = {d.name: d for d in build_destinations(load_settings(cfg))}
    for key, data in plain.items():
        assert read_all(dests["offsite"], key) == data
    clip = clips[0]
    assert b"".join(dests["offsite"].open(clip, 70_000, 140_001)) == plain[clip][70_000:140_001]

    res = run_cli(["-c", str(cfg), "verify"], env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"checked {2 * len(nas)} objects: {2 * len(nas)} intact" in res.stdout

    # export reads the encrypted destination it is told to: the originals byte for byte, checksummed
    out = cfg.parent / "handover.zip"
    res = run_cli(["-c", str(cfg), "export", "--destination", "offsite", "--out", str(out)], env)
    assert res.returncode == 0, res.stdout + res.stderr
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        exported = {n: z.read(n) for n in names if n.endswith(".mp4")}
        sums = z.read(next(n for n in names if n.endswith("SHA256SUMS"))).decode()
    assert sorted(exported.values()) == sorted(plain[k] for k in clips)
    assert all(hashlib.sha256(plain[k]).hexdigest() in sums for k in clips)

    # the web UI serves a byte range of a clip that only the encrypted bucket holds
    settings = load_settings(cfg)
    only_offsite = settings.model_copy(
        update={"destinations": [d for d in settings.destinations if d.name == "offsite"]}
    )
    engine = open_engine(only_offsite)
    with Session(engine) as s:
        row = s.exec(select(StoredObject).where(StoredObject.key == clip)).first()
    assert row is not None
    app = create_app(only_offsite, engine)
    part = asgi_get(app, f"/media/{row.clip_id}/video", headers={"Range": "bytes=70000-140000"})
    engine.dispose()
    assert part.status_code == 206 and part.content == plain[clip][70_000:140_001]

    # archiver copy into a new encrypted destination (names too); a second run has nothing to send
    cfg.write_text(cfg.read_text() + VAULT.format(path=cfg.parent / "vault"))
    dests = {d.name: d for d in build_destinations(load_settings(cfg))}
    res = run_cli(["-c", str(cfg), "copy", "--from", "offsite", "--to", "vault"], env)
    assert res.returncode == 0, res.stderr
    assert f"{len(nas)} objects, {len(nas)} copied" in res.stdout
    vault = {o.key: o for o in objects(cfg, "vault")}
    assert {k: o.sha256 for k, o in vault.items()} == {k: o.sha256 for k, o in nas.items()}
    assert not any(p.name.endswith((".mp4", ".json", ".jpg")) for p in (cfg.parent / "vault").rglob("*"))
    assert all(read_all(dests["vault"], k) == plain[k] for k in nas)
    res = run_cli(["-c", str(cfg), "copy", "--from", "nas", "--to", "vault"], env)
    assert res.returncode == 0 and f"0 copied (0.0 MB), {len(nas)} already there" in res.stdout

    # one flipped byte in the bucket: verify names that clip
    blob = bytearray(raw[clip])
    blob[HEADER_LEN + 1000] ^= 0x01
    s3.put_object(Bucket=bucket, Key=clip, Body=bytes(blob), Metadata=stored[clip]["Metadata"])
    res = run_cli(["-c", str(cfg), "verify"], env)
    assert res.returncode == 1
    assert f"corrupt: offsite:{clip} " in res.stderr and "fails authentication" in res.stderr
    assert "1 corrupt" in res.stdout


def test_a_refused_nas_login_stops_the_sync_with_one_line_and_exit_2(
    tmp_path: Path, sim: Simulator, camera: int, sftp_server: Server
) -> None:
    sim.add_clips(camera, 1, size=10_000)
    cfg = sim_config(
        tmp_path,
        sim,
        f"""
[[destinations]]
type = "sftp"
name = "nas"
host = "127.0.0.1"
port = {sftp_server.port}
username = "{USER}"
password = "not-the-Pa55word"
known_hosts = "{sftp_server.extra["known_hosts"]}"
""",
    )
    res = run_cli(["-c", str(cfg), "sync"], cli_env(tmp_path / "data", sim))
    assert res.returncode == 2, res.stdout + res.stderr
    errors = [line for line in res.stderr.splitlines() if "login refused" in line]
    assert len(errors) == 1 and "'nas'" in errors[0]
    assert "not-the-Pa55word" not in res.stdout + res.stderr
