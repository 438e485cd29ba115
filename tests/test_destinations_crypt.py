# ruff: noqa: F811  (pytest fixtures imported from s3_fixtures are shadowed by test parameters)
from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import boto3
import pytest
from destination_suite import DestinationSuite, Tamper, make_file
from s3_fixtures import moto_server, s3_bucket  # noqa: F401

from archiver.config import S3DestinationSettings, Settings
from archiver.destinations import Capability, DestinationError, DiskDestination, build_destinations
from archiver.destinations.base import ObjectCorrupt, read_all
from archiver.destinations.crypt import (
    CCHUNK,
    CHUNK,
    HEADER_LEN,
    EncryptedDestination,
    cipher_size,
    keygen,
    load_key,
    plain_size,
)
from archiver.destinations.s3 import S3Destination
from archiver.errors import ConfigError
from archiver.verify import object_problem

KEY = bytes(range(32))


def encrypted_disk(root: Path, names: bool = False, key: bytes = KEY) -> EncryptedDestination:
    return EncryptedDestination(DiskDestination(root, "vault"), key, encrypt_names=names)


class TestEncryptedDiskConformance(DestinationSuite):
    @pytest.fixture
    def dest(self, tmp_path: Path) -> EncryptedDestination:
        return encrypted_disk(tmp_path / "archive")

    @pytest.fixture
    def tamper(self, tmp_path: Path) -> Tamper:
        def write(key: str, data: bytes) -> None:  # someone with the key put other bytes there
            src, sha = make_file(tmp_path / "tamper" / "x", data)
            encrypted_disk(tmp_path / "archive").put(src, key, sha256=sha, metadata={})

        return write

    @pytest.fixture
    def broken(self, tmp_path: Path) -> EncryptedDestination:
        (tmp_path / "a-file").write_bytes(b"")
        return encrypted_disk(tmp_path / "a-file" / "archive")


class TestEncryptedS3WithNamesConformance(DestinationSuite):
    @pytest.fixture
    def dest(self, s3_bucket) -> EncryptedDestination:
        endpoint, bucket = s3_bucket
        s3 = S3Destination(S3DestinationSettings(bucket=bucket, endpoint_url=endpoint, prefix="p"), "offsite")
        return EncryptedDestination(s3, KEY, encrypt_names=True)

    @pytest.fixture
    def tamper(self, dest: EncryptedDestination, tmp_path: Path) -> Tamper:
        def write(key: str, data: bytes) -> None:
            src, sha = make_file(tmp_path / "tamper" / "x", data)
            EncryptedDestination(dest.inner, KEY, encrypt_names=True).put(src, key, sha256=sha, metadata={})

        return write

    @pytest.fixture
    def broken(self, moto_server: str, monkeypatch) -> EncryptedDestination:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        s3 = S3Destination(
            S3DestinationSettings(bucket="no-such-bucket", endpoint_url=moto_server), "offsite"
        )
        return EncryptedDestination(s3, KEY)


def put(dest: EncryptedDestination, tmp_path: Path, key: str, data: bytes) -> str:
    src, sha = make_file(tmp_path / "src" / key.replace("/", "_"), data)
    dest.put(src, key, sha256=sha, metadata={"camera": "Front Door", "clip-id": "cloud:42"})
    return sha


def test_sizes_round_trip() -> None:
    for n in (0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 10**7 + 3):
        assert plain_size(cipher_size(n)) == n
    assert plain_size(HEADER_LEN + 15) is None and plain_size(3) is None


def test_nothing_readable_is_stored(tmp_path: Path) -> None:
    dest = encrypted_disk(tmp_path / "archive", names=True)
    data = b"\x00\x00\x00\x18ftypmp42" + os.urandom(200_000) + b"Front Door" * 10
    put(dest, tmp_path, "Home/Front Door/2024-05-01/12-00-00_42.mp4", data)
    [stored] = [p for p in (tmp_path / "archive").rglob("*") if p.is_file()]
    raw = stored.read_bytes()
    assert len(raw) == cipher_size(len(data))
    assert b"ftyp" not in raw and b"Front Door" not in raw
    assert all(data[i : i + 64] not in raw for i in range(0, len(data) - 64, 997))
    relative = stored.relative_to(tmp_path / "archive").as_posix()
    assert "Home" not in relative and "Front" not in relative and ".mp4" not in relative
    assert relative == relative.lower() and relative.count("/") == 3  # base32: safe on SMB
    assert [o.key for o in dest.list()] == ["Home/Front Door/2024-05-01/12-00-00_42.mp4"]
    assert [o.key for o in dest.list("Home/Front")] == ["Home/Front Door/2024-05-01/12-00-00_42.mp4"]
    assert list(dest.list("Home/Back")) == []
    assert dest.location("Home/Front Door/2024-05-01/12-00-00_42.mp4") is None
    assert dest.delete_many(["Home/Front Door/2024-05-01/12-00-00_42.mp4", "Home/x.mp4"]) == {}
    assert list((tmp_path / "archive").iterdir()) == []  # the emptied (encrypted) folders are tidied too


def test_a_flipped_byte_is_corrupt_only_in_the_chunks_that_hold_it(tmp_path: Path) -> None:
    dest = encrypted_disk(tmp_path / "archive")
    data = os.urandom(3 * CHUNK + 100)
    sha = put(dest, tmp_path, "cam/a.mp4", data)
    path = tmp_path / "archive" / "cam" / "a.mp4"
    raw = bytearray(path.read_bytes())
    raw[HEADER_LEN + CCHUNK + 5] ^= 0x01  # in chunk 1
    path.unlink()
    path.write_bytes(raw)
    assert dest.stat("cam/a.mp4").size == len(data)  # type: ignore[union-attr]
    with pytest.raises(ObjectCorrupt, match="chunk 1 fails authentication"):
        dest.hash("cam/a.mp4")
    assert object_problem(dest, "cam/a.mp4", len(data), sha) == (
        "corrupt",
        "destination 'vault': cam/a.mp4: chunk 1 fails authentication (damaged or truncated)",
    )
    assert b"".join(dest.open("cam/a.mp4", 10, CHUNK)) == data[10:CHUNK]  # chunk 0 only: fine
    assert b"".join(dest.open("cam/a.mp4", 2 * CHUNK, None)) == data[2 * CHUNK :]
    with pytest.raises(ObjectCorrupt):
        b"".join(dest.open("cam/a.mp4", CHUNK - 1, CHUNK + 1))


@pytest.mark.parametrize("damage", ["truncate-at-chunk", "drop-last-byte", "swap-chunks", "header", "empty"])
def test_truncated_reordered_or_altered_objects_are_detected(tmp_path: Path, damage: str) -> None:
    dest = encrypted_disk(tmp_path / "archive")
    data = os.urandom(3 * CHUNK)
    put(dest, tmp_path, "cam/b.mp4", data)
    path = tmp_path / "archive" / "cam" / "b.mp4"
    raw = path.read_bytes()
    body = raw[HEADER_LEN:]
    chunks = [body[i : i + CCHUNK] for i in range(0, len(body), CCHUNK)]
    damaged = {
        "truncate-at-chunk": raw[: HEADER_LEN + 2 * CCHUNK],
        "drop-last-byte": raw[:-1],
        "swap-chunks": raw[:HEADER_LEN] + chunks[1] + chunks[0] + chunks[2],
        "header": raw[:20] + bytes([raw[20] ^ 1]) + raw[21:],  # the salt: another file key
        "empty": b"",
    }[damage]
    path.unlink()
    path.write_bytes(damaged)
    with pytest.raises(ObjectCorrupt):
        dest.hash("cam/b.mp4")


def test_another_key_is_a_config_error_not_corruption(tmp_path: Path) -> None:
    put(encrypted_disk(tmp_path / "archive"), tmp_path, "cam/c.mp4", b"c" * 1000)
    other = encrypted_disk(tmp_path / "archive", key=os.urandom(32))
    with pytest.raises(DestinationError, match="another key") as info:
        other.hash("cam/c.mp4")
    assert info.value.config and not isinstance(info.value, ObjectCorrupt)


def test_the_backend_gets_no_metadata_and_no_plaintext_hash(s3_bucket, tmp_path: Path) -> None:
    endpoint, bucket = s3_bucket
    s3 = S3Destination(S3DestinationSettings(bucket=bucket, endpoint_url=endpoint), "offsite")
    dest = EncryptedDestination(s3, KEY)
    assert Capability.stored_sha256 in s3.capabilities
    assert Capability.stored_sha256 not in dest.capabilities
    sha = put(dest, tmp_path, "cam/d.mp4", b"d" * 5000)
    head = boto3.client("s3", endpoint_url=endpoint).head_object(Bucket=bucket, Key="cam/d.mp4")
    assert set(head["Metadata"]) == {"sha256"} and head["Metadata"]["sha256"] != sha
    info = dest.stat("cam/d.mp4")
    assert info is not None and (info.size, info.sha256) == (5000, None)
    assert read_all(dest, "cam/d.mp4") == b"d" * 5000


def test_put_is_idempotent_without_rewriting(tmp_path: Path) -> None:
    dest = encrypted_disk(tmp_path / "archive")
    put(dest, tmp_path, "cam/e.mp4", b"e" * 100)
    before = (tmp_path / "archive" / "cam" / "e.mp4").read_bytes()
    put(dest, tmp_path, "cam/e.mp4", b"e" * 100)
    assert (tmp_path / "archive" / "cam" / "e.mp4").read_bytes() == before  # same salt: not re-encrypted


def test_a_source_that_does_not_match_its_hash_is_refused(tmp_path: Path) -> None:
    dest = encrypted_disk(tmp_path / "archive")
    src, _ = make_file(tmp_path / "f.mp4", b"abc")
    with pytest.raises(DestinationError, match="does not match its sha256"):
        dest.put(src, "cam/f.mp4", sha256=hashlib.sha256(b"other").hexdigest(), metadata={})
    assert list(dest.list()) == [] and [p.name for p in tmp_path.iterdir()] == ["f.mp4"]


def test_keygen_writes_a_private_key_once(tmp_path: Path) -> None:
    path = tmp_path / "archive.key"
    keygen(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = load_key(path, "vault")
    assert len(key) == 32
    with pytest.raises(FileExistsError):
        keygen(path)
    assert load_key(path, "vault") == key
    path.write_text("blink-archiver-key-v1:AAAA\n")
    with pytest.raises(ConfigError, match="damaged key"):
        load_key(path, "vault")
    with pytest.raises(ConfigError, match="does not exist"):
        load_key(tmp_path / "none", "vault")


def test_encrypt_is_applied_by_the_registry_from_the_config(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(ValueError, match="key_file"):
        Settings(data_dir=tmp_path, destinations=[{"type": "disk", "encrypt": True}])
    keygen(tmp_path / "k")
    monkeypatch.setenv("ARCHIVER_ENCRYPTION__KEY_FILE", str(tmp_path / "k"))
    [dest] = build_destinations(
        Settings(data_dir=tmp_path, destinations=[{"type": "disk", "encrypt": True, "name": "vault"}])
    )
    assert type(dest).__name__ == "EncryptedDestination" and dest.name == "vault"
    put(dest, tmp_path, "cam/g.mp4", b"g" * 10)  # type: ignore[arg-type]
    assert (tmp_path / "archive" / "cam" / "g.mp4").read_bytes()[:7] == b"BLKAENC"
