# ruff: noqa: F811  (pytest fixtures imported from remote_fixtures are shadowed by test parameters)
from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from destination_suite import DestinationSuite, Tamper, make_file
from helpers import free_port
from remote_fixtures import PASSWORD, USER, Server, sftp_server  # noqa: F401

from archiver.destinations import DestinationError
from archiver.destinations.settings import SftpDestinationSettings
from archiver.destinations.sftp import SftpDestination


def sftpdest(server: Server, data_dir: Path, name: str = "nas", **kw) -> SftpDestination:
    kw.setdefault("password", PASSWORD)
    kw.setdefault("known_hosts", str(server.extra["known_hosts"]))
    kw.setdefault("path", f"archive-{uuid.uuid4().hex[:8]}")
    cfg = SftpDestinationSettings(
        host=server.host, port=server.port, username=USER, timeout_s=5, retries=2, **kw
    )
    return SftpDestination(cfg, name, data_dir=data_dir)


class TestSftpConformance(DestinationSuite):
    @pytest.fixture
    def dest(self, sftp_server: Server, tmp_path: Path) -> SftpDestination:
        return sftpdest(sftp_server, tmp_path)

    @pytest.fixture
    def tamper(self, dest: SftpDestination, sftp_server: Server) -> Tamper:
        def write(key: str, data: bytes) -> None:
            (sftp_server.root / dest.cfg.path / key).write_bytes(data)

        return write

    @pytest.fixture
    def broken(self, sftp_server: Server, tmp_path: Path) -> SftpDestination:
        return sftpdest(sftp_server, tmp_path, password="wrong-" + PASSWORD)


def test_a_refused_login_is_one_config_line_without_the_password(sftp_server: Server, tmp_path: Path) -> None:
    dest = sftpdest(sftp_server, tmp_path, password="not-the-password-xyz")
    with pytest.raises(DestinationError) as info:
        dest.check()
    message = str(info.value)
    assert info.value.config and "login refused" in message and "\n" not in message
    assert "not-the-password-xyz" not in message and f"127.0.0.1]:{sftp_server.port}" in message


def test_key_file_login(sftp_server: Server, tmp_path: Path) -> None:
    dest = sftpdest(sftp_server, tmp_path, password=None, key_file=sftp_server.extra["key_file"])
    src, sha = make_file(tmp_path / "k.mp4", b"key login" * 10)
    dest.put(src, "cam/k.mp4", sha256=sha, metadata={})
    assert dest.hash("cam/k.mp4") == sha


def test_an_unknown_host_key_is_refused(sftp_server: Server, tmp_path: Path) -> None:
    other = tmp_path / "known_hosts"
    other.write_text(
        f"[127.0.0.1]:{sftp_server.port} ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    )
    dest = sftpdest(sftp_server, tmp_path, known_hosts=str(other))
    with pytest.raises(DestinationError, match="host key is not trusted") as info:
        dest.check()
    assert info.value.config
    missing = sftpdest(sftp_server, tmp_path, known_hosts=str(tmp_path / "none"))
    with pytest.raises(DestinationError, match="ssh-keyscan"):
        missing.check()


def test_accept_new_trusts_the_first_key_and_then_holds_to_it(sftp_server: Server, tmp_path: Path) -> None:
    dest = sftpdest(sftp_server, tmp_path, known_hosts="accept-new")
    dest.preflight()
    remembered = (tmp_path / "ssh_known_hosts").read_text()
    assert remembered.startswith(f"[127.0.0.1]:{sftp_server.port} ssh-ed25519 ")
    assert remembered.split()[2] == sftp_server.extra["known_hosts"].read_text().split()[2]
    assert (tmp_path / "ssh_known_hosts").stat().st_mode & 0o077 == 0
    # a different key for that host later (a new server, or someone in between): refused
    (tmp_path / "ssh_known_hosts").write_text(
        f"[127.0.0.1]:{sftp_server.port} ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    )
    again = sftpdest(sftp_server, tmp_path, known_hosts="accept-new")
    with pytest.raises(DestinationError, match="host key is not trusted"):
        again.check()


def test_an_unreachable_server_is_one_quick_line(tmp_path: Path, sftp_server: Server) -> None:
    down = Server("127.0.0.1", free_port(), sftp_server.root, sftp_server.extra)
    dest = sftpdest(down, tmp_path, known_hosts="accept-new")
    started = time.monotonic()
    with pytest.raises(DestinationError) as info:
        dest.check()
    assert "cannot reach the server" in str(info.value) and not info.value.config
    assert time.monotonic() - started < 10


def test_put_leaves_no_temporary_file_and_replaces_a_different_object(
    sftp_server: Server, tmp_path: Path
) -> None:
    dest = sftpdest(sftp_server, tmp_path)
    old, old_sha = make_file(tmp_path / "old.mp4", b"old" * 100)
    new, new_sha = make_file(tmp_path / "new.mp4", b"new!" * 100)
    dest.put(old, "cam/a.mp4", sha256=old_sha, metadata={})
    dest.put(new, "cam/a.mp4", sha256=new_sha, metadata={})
    folder = sftp_server.root / dest.cfg.path / "cam"
    assert [p.name for p in folder.iterdir()] == ["a.mp4"]
    assert (folder / "a.mp4").read_bytes() == b"new!" * 100
    with pytest.raises(DestinationError, match="does not read back as written"):
        dest.put(old, "cam/b.mp4", sha256="0" * 64, metadata={})
    assert [p.name for p in folder.iterdir()] == ["a.mp4"]


def test_a_dropped_connection_is_retried_on_a_new_one(sftp_server: Server, tmp_path: Path) -> None:
    dest = sftpdest(sftp_server, tmp_path)
    src, sha = make_file(tmp_path / "r.mp4", b"retry" * 1000)
    dest.put(src, "cam/r.mp4", sha256=sha, metadata={})
    sftp_server.extra["drop"]()
    time.sleep(0.2)
    assert dest.hash("cam/r.mp4") == sha  # the first try meets the dead connection; the next reconnects
    src2, sha2 = make_file(tmp_path / "s.mp4", b"again" * 1000)
    sftp_server.extra["drop"]()
    time.sleep(0.2)
    dest.put(src2, "cam/s.mp4", sha256=sha2, metadata={})
    assert sorted(o.key for o in dest.list()) == ["cam/r.mp4", "cam/s.mp4"]
