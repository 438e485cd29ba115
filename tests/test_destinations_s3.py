# ruff: noqa: F811  (pytest fixtures imported from s3_fixtures are shadowed by test parameters)
from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import boto3
import pytest
from destination_suite import DestinationSuite, Tamper, make_file
from helpers import free_port
from s3_fixtures import moto_server, s3_bucket  # noqa: F401

from archiver.config import S3DestinationSettings
from archiver.destinations import Destination, DestinationError
from archiver.destinations.s3 import S3Destination

MIB = 1024 * 1024


def s3dest(endpoint: str, bucket: str, **kw) -> S3Destination:
    settings = S3DestinationSettings(bucket=bucket, endpoint_url=endpoint, region="us-east-1", **kw)
    return S3Destination(settings, "s3")


def raw_client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


class TestS3Conformance(DestinationSuite):
    @pytest.fixture
    def dest(self, s3_bucket) -> S3Destination:
        endpoint, bucket = s3_bucket
        return s3dest(endpoint, bucket, prefix="blink")

    @pytest.fixture
    def tamper(self, dest: S3Destination, s3_bucket) -> Tamper:
        def write(key: str, data: bytes) -> None:  # keeps the metadata: only a re-read can tell
            head = dest.client.head_object(Bucket=dest.bucket, Key=dest.prefix + key)
            raw_client(s3_bucket[0]).put_object(
                Bucket=dest.bucket, Key=dest.prefix + key, Body=data, Metadata=head["Metadata"]
            )

        return write

    @pytest.fixture
    def broken(self, moto_server: str, monkeypatch) -> S3Destination:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        return s3dest(moto_server, "no-such-bucket-anywhere")


def test_preflight_aborts_interrupted_multipart_uploads_under_its_prefix(s3_bucket) -> None:
    endpoint, bucket = s3_bucket
    client = raw_client(endpoint)
    up = client.create_multipart_upload(Bucket=bucket, Key="blink/cam/killed.mp4")
    client.upload_part(
        Bucket=bucket,
        Key="blink/cam/killed.mp4",
        UploadId=up["UploadId"],
        PartNumber=1,
        Body=b"p" * (5 * MIB),
    )
    client.create_multipart_upload(Bucket=bucket, Key="other-app/x.bin")  # not ours: kept
    # moto dates every upload in 2010, so "older than 24 h" holds; a young upload is never listed as stale
    dest = s3dest(endpoint, bucket, prefix="blink")
    assert dest.abort_incomplete_uploads(timedelta(days=365 * 100)) == (0, 0)
    assert dest.preflight() == ["s3 destination 's3': aborted 1 interrupted upload(s), 5.2 MB"]
    left = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in left] == ["other-app/x.bin"]
    assert dest.preflight() == []


def test_protocol_and_prefix_normalised(s3_bucket) -> None:
    endpoint, bucket = s3_bucket
    dest = s3dest(endpoint, bucket, prefix="/archive//")
    assert isinstance(dest, Destination)
    assert dest.prefix == "archive/"
    assert s3dest(endpoint, bucket).prefix == ""


def test_objects_bytes_sha_and_metadata(s3_bucket, tmp_path: Path) -> None:
    endpoint, bucket = s3_bucket
    dest = s3dest(endpoint, bucket, prefix="blink", storage_class="STANDARD_IA", sse="AES256")
    client = raw_client(endpoint)
    expected = {}
    for i in range(5):
        data = os.urandom(1000 + i * 4096)
        src, sha = make_file(tmp_path / f"clip{i}.mp4", data)
        key = f"Home/Cam {i}/2024-05-01/12-00-0{i}_{i}.mp4"
        meta = {"Clip-ID": str(i), "camera": f"Cam {i} Vordertür", "recorded-at": "2024-05-01T12:00:00Z"}
        info = dest.put(src, key, sha256=sha, metadata=meta)
        assert (info.key, info.size, info.sha256) == (key, len(data), sha)
        expected[key] = (data, sha)

    for key, (data, sha) in expected.items():
        obj = client.get_object(Bucket=bucket, Key=f"blink/{key}")
        assert obj["Body"].read() == data
        assert obj["ContentType"] == "video/mp4"
        assert obj["StorageClass"] == "STANDARD_IA"
        assert obj["ServerSideEncryption"] == "AES256"
        assert obj["Metadata"]["sha256"] == sha
        assert obj["Metadata"]["clip-id"] == key.rsplit("_", 1)[1].removesuffix(".mp4")
        assert obj["Metadata"]["camera"].endswith("Vordert%C3%BCr")
        stat = dest.stat(key)
        assert stat is not None and stat.size == len(data) and stat.sha256 == sha
        assert dest.hash(key) == sha

    listed = {o.key: o.size for o in dest.list()}
    assert listed == {k: len(v[0]) for k, v in expected.items()}
    assert {o.key for o in dest.list("Home/Cam 1/")} == {"Home/Cam 1/2024-05-01/12-00-01_1.mp4"}

    key = next(iter(expected))
    dest.delete(key)
    assert dest.stat(key) is None
    dest.delete(key)  # missing is fine
    assert len(list(dest.list())) == 4


def test_put_is_idempotent(s3_bucket, tmp_path: Path) -> None:
    endpoint, bucket = s3_bucket
    dest = s3dest(endpoint, bucket)
    src, sha = make_file(tmp_path / "a.mp4", b"abc" * 100)
    dest.put(src, "a.mp4", sha256=sha, metadata={})
    calls: list[str] = []
    dest.client.meta.events.register("before-call.s3.*", lambda model, **kw: calls.append(model.name))
    dest.put(src, "a.mp4", sha256=sha, metadata={})
    assert calls == ["HeadObject"]


def test_put_rejects_a_source_that_does_not_match(s3_bucket, tmp_path: Path) -> None:
    endpoint, bucket = s3_bucket
    dest = s3dest(endpoint, bucket)
    src, _ = make_file(tmp_path / "a.mp4", b"abc")
    with pytest.raises(DestinationError, match="SHA-256"):
        dest.put(src, "a.mp4", sha256="0" * 64, metadata={})


def test_multipart_upload(s3_bucket, tmp_path: Path) -> None:
    endpoint, bucket = s3_bucket
    dest = s3dest(endpoint, bucket, multipart_threshold_mb=5)
    data = os.urandom(12 * MIB)
    src, sha = make_file(tmp_path / "big.mp4", data)
    calls: list[str] = []
    dest.client.meta.events.register("before-call.s3.*", lambda model, **kw: calls.append(model.name))
    dest.put(src, "big.mp4", sha256=sha, metadata={"clip-id": "7"})
    assert calls.count("UploadPart") == 3 and "CompleteMultipartUpload" in calls
    head = raw_client(endpoint).head_object(Bucket=bucket, Key="big.mp4")
    assert head["ETag"].strip('"').endswith("-3")
    assert dest.hash("big.mp4") == sha


def test_key_escapes_refused(s3_bucket, tmp_path: Path) -> None:
    endpoint, bucket = s3_bucket
    dest = s3dest(endpoint, bucket, prefix="p")
    src, sha = make_file(tmp_path / "a.mp4", b"x")
    for key in ("../x", "/abs", "a//b", ""):
        with pytest.raises(DestinationError):
            dest.put(src, key, sha256=sha, metadata={})


def test_missing_bucket(moto_server: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    dest = s3dest(moto_server, "no-such-bucket-here")
    src, sha = make_file(tmp_path / "a.mp4", b"x")
    with pytest.raises(DestinationError) as info:
        dest.put(src, "a.mp4", sha256=sha, metadata={})
    assert "bucket does not exist" in str(info.value) and "no-such-bucket-here" in str(info.value)
    with pytest.raises(DestinationError, match="bucket does not exist"):
        dest.check()


def test_unreachable_endpoint_is_quick_and_secret_free(tmp_path: Path) -> None:
    secret = "SuperSecretKey/123+abc"
    endpoint = f"http://127.0.0.1:{free_port()}"
    settings = S3DestinationSettings(
        bucket="bkt", endpoint_url=endpoint, access_key_id="AKIDTEST", secret_access_key=secret
    )
    dest = S3Destination(settings, "offsite", connect_timeout=1, read_timeout=1, max_attempts=1)
    src, sha = make_file(tmp_path / "a.mp4", b"x")
    started = time.monotonic()
    for action in (
        lambda: dest.put(src, "a.mp4", sha256=sha, metadata={}),
        lambda: dest.stat("a.mp4"),
        lambda: dest.hash("a.mp4"),
        lambda: dest.delete("a.mp4"),
        lambda: list(dest.list()),
        dest.check,
    ):
        with pytest.raises(DestinationError) as info:
            action()
        message = str(info.value)
        assert endpoint in message and "'bkt'" in message and "offsite" in message
        assert secret not in message and "\n" not in message
        assert "cannot reach the endpoint" in message
    assert time.monotonic() - started < 10


def test_bad_credentials_message(s3_bucket, tmp_path: Path, monkeypatch) -> None:
    endpoint, bucket = s3_bucket
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    monkeypatch.delenv("AWS_SECURITY_TOKEN")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    dest = S3Destination(S3DestinationSettings(bucket=bucket, endpoint_url=endpoint, region="us-east-1"))
    with pytest.raises(DestinationError, match="no usable AWS credentials"):
        dest.stat("a.mp4")
