# ruff: noqa: F811  (pytest fixtures imported from remote_fixtures are shadowed by test parameters)
from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from destination_suite import DestinationSuite, Tamper, make_file
from helpers import free_port
from remote_fixtures import PASSWORD, Server, smb_server  # noqa: F401

from archiver.destinations import DestinationError
from archiver.destinations.settings import SmbDestinationSettings
from archiver.destinations.smb import SmbDestination


def smbdest(server: Server, name: str = "nas", **kw) -> SmbDestination:
    kw.setdefault("password", PASSWORD)
    kw.setdefault("path", f"archive-{uuid.uuid4().hex[:8]}")
    kw.setdefault("share", server.extra["share"])
    kw.setdefault("port", server.port)
    cfg = SmbDestinationSettings(
        host=server.host, username=server.extra["username"], timeout_s=5, retries=2, **kw
    )
    return SmbDestination(cfg, name)


class TestSmbConformance(DestinationSuite):
    @pytest.fixture
    def dest(self, smb_server: Server) -> SmbDestination:
        return smbdest(smb_server)

    @pytest.fixture
    def tamper(self, dest: SmbDestination, smb_server: Server) -> Tamper:
        def write(key: str, data: bytes) -> None:
            (smb_server.root / dest.cfg.path / key).write_bytes(data)

        return write

    @pytest.fixture
    def broken(self, smb_server: Server) -> SmbDestination:
        return smbdest(smb_server, share="no-such-share")


def test_a_refused_login_is_one_config_line_without_the_password(smb_server: Server) -> None:
    dest = smbdest(smb_server, password="not-the-password-xyz")
    with pytest.raises(DestinationError) as info:
        dest.check()
    message = str(info.value)
    assert info.value.config and "login refused" in message and "\n" not in message
    assert "not-the-password-xyz" not in message and f"smb://127.0.0.1:{smb_server.port}/" in message


def test_an_unreachable_server_is_one_line(smb_server: Server) -> None:
    dest = smbdest(smb_server, port=free_port())
    with pytest.raises(DestinationError) as info:
        dest.check()
    assert "cannot reach the server" in str(info.value) and not info.value.config


def test_put_replaces_an_existing_object_and_leaves_no_temporary(smb_server: Server, tmp_path: Path) -> None:
    dest = smbdest(smb_server)
    old, old_sha = make_file(tmp_path / "old.mp4", b"old" * 100)
    new, new_sha = make_file(tmp_path / "new.mp4", b"new!" * 100)
    dest.put(old, "cam/a.mp4", sha256=old_sha, metadata={})
    dest.put(new, "cam/a.mp4", sha256=new_sha, metadata={})
    folder = smb_server.root / dest.cfg.path / "cam"
    assert [p.name for p in folder.iterdir()] == ["a.mp4"]
    assert (folder / "a.mp4").read_bytes() == b"new!" * 100
