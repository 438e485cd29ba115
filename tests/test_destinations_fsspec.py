from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from destination_suite import DestinationSuite, Tamper, make_file

from archiver.config import Settings
from archiver.destinations import BACKENDS, DestinationError, build_destinations
from archiver.destinations.remote import FsspecDestination, generic
from archiver.destinations.settings import FsspecDestinationSettings


def fsdest(url: str, name: str = "drive", **kw) -> FsspecDestination:
    return generic(FsspecDestinationSettings(url=url, retries=1, **kw), name)


class TestFsspecConformance(DestinationSuite):
    """The generic type over fsspec's local filesystem: what a user's gdrive:// or onedrive:// gets."""

    @pytest.fixture
    def dest(self, tmp_path: Path) -> FsspecDestination:
        return fsdest(f"file://{tmp_path}/remote")

    @pytest.fixture
    def tamper(self, tmp_path: Path) -> Tamper:
        def write(key: str, data: bytes) -> None:
            (tmp_path / "remote" / key).write_bytes(data)

        return write

    @pytest.fixture
    def broken(self, tmp_path: Path) -> FsspecDestination:
        (tmp_path / "a-file").write_bytes(b"")
        return fsdest(f"file://{tmp_path}/a-file/remote")


class TestFsspecMemoryWithoutRename(DestinationSuite):
    """``atomic_rename = false``: written in place, then verified."""

    @pytest.fixture
    def dest(self) -> FsspecDestination:
        return fsdest(f"memory://archive-{uuid.uuid4().hex[:8]}", atomic_rename=False)

    @pytest.fixture
    def tamper(self, dest: FsspecDestination) -> Tamper:
        def write(key: str, data: bytes) -> None:
            dest.fs.pipe_file(f"{dest.base}/{key}", data)

        return write

    @pytest.fixture
    def broken(self, tmp_path: Path) -> FsspecDestination:
        (tmp_path / "a-file").write_bytes(b"")
        return fsdest(f"file://{tmp_path}/a-file/remote")


def test_an_unknown_protocol_is_one_config_line(tmp_path: Path) -> None:
    dest = fsdest("nosuchproto://somewhere/x", name="odd")
    with pytest.raises(DestinationError) as info:
        dest.check()
    assert info.value.config and "'odd'" in str(info.value) and "nosuchproto" in str(info.value)


def test_secret_options_never_reach_a_message(tmp_path: Path) -> None:
    dest = fsdest("nosuchproto://host/x", options={"token": "tok-SECRET-123"})
    with pytest.raises(DestinationError) as info:
        dest.preflight()
    assert "tok-SECRET-123" not in str(info.value)
    assert (
        "tok-SECRET-123"
        in FsspecDestinationSettings(url="x://y", options={"token": "tok-SECRET-123"}).secrets()
    )


def test_every_remote_type_is_registered_and_builds_without_connecting(tmp_path: Path) -> None:
    assert {"sftp", "webdav", "smb", "fsspec"} <= set(BACKENDS)
    built = build_destinations(
        Settings(
            data_dir=tmp_path,
            destinations=[
                {"type": "sftp", "host": "nas.invalid", "username": "u", "password": "p"},
                {"type": "webdav", "url": "https://nas.invalid/dav"},
                {"type": "smb", "host": "nas.invalid", "share": "archive"},
                {"type": "fsspec", "url": "memory://x"},
            ],
        )
    )
    assert [type(d).__name__ for d in built] == [
        "SftpDestination",
        "WebdavDestination",
        "SmbDestination",
        "FsspecDestination",
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"type": "sftp", "host": "nas", "username": "u"}, "password or a key_file"),
        ({"type": "sftp", "host": "me@nas", "username": "u", "password": "p"}, "host name"),
        ({"type": "webdav", "url": "ftp://nas/dav"}, "http"),
        ({"type": "smb", "host": "nas", "share": "a/b"}, "share"),
        ({"type": "fsspec", "url": "no-protocol"}, "protocol://"),
        ({"type": "fsspec", "url": "sftp://me:pw@nas/x"}, "user:password"),
        ({"type": "disk", "encrypt_names": True}, "encrypt_names needs encrypt"),
    ],
)
def test_settings_are_validated(entry: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(data_dir=tmp_path, destinations=[entry])


def test_put_refuses_a_source_that_does_not_match(tmp_path: Path) -> None:
    dest = fsdest(f"file://{tmp_path}/remote")
    src, _ = make_file(tmp_path / "a.mp4", b"abc")
    with pytest.raises(DestinationError, match="does not read back as written"):
        dest.put(src, "cam/a.mp4", sha256="0" * 64, metadata={})
    assert list(dest.list()) == []
