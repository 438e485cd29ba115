# ruff: noqa: F811  (pytest fixtures imported from remote_fixtures are shadowed by test parameters)
from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from destination_suite import DestinationSuite, Tamper, make_file
from helpers import free_port
from remote_fixtures import PASSWORD, USER, Server, webdav_server  # noqa: F401

from archiver.destinations import DestinationError
from archiver.destinations.settings import WebdavDestinationSettings
from archiver.destinations.webdav import WebdavDestination


def davdest(server: Server, name: str = "nas", **kw) -> WebdavDestination:
    kw.setdefault("password", PASSWORD)
    kw.setdefault("path", f"archive-{uuid.uuid4().hex[:8]}")
    kw.setdefault("url", server.extra["url"])
    cfg = WebdavDestinationSettings(username=USER, timeout_s=5, retries=2, **kw)
    return WebdavDestination(cfg, name)


class TestWebdavConformance(DestinationSuite):
    @pytest.fixture
    def dest(self, webdav_server: Server) -> WebdavDestination:
        return davdest(webdav_server)

    @pytest.fixture
    def tamper(self, dest: WebdavDestination, webdav_server: Server) -> Tamper:
        def write(key: str, data: bytes) -> None:
            (webdav_server.root / dest.cfg.path / key).write_bytes(data)

        return write

    @pytest.fixture
    def broken(self, webdav_server: Server) -> WebdavDestination:
        return davdest(webdav_server, password="wrong-" + PASSWORD)


def test_a_refused_login_is_one_config_line_without_the_password(webdav_server: Server) -> None:
    dest = davdest(webdav_server, password="not-the-password-xyz")
    with pytest.raises(DestinationError) as info:
        dest.check()
    message = str(info.value)
    assert info.value.config and "login refused" in message and "\n" not in message
    assert "not-the-password-xyz" not in message and webdav_server.extra["url"].rstrip("/") in message


def test_an_unreachable_server_is_one_line(webdav_server: Server) -> None:
    dest = davdest(webdav_server, url=f"http://127.0.0.1:{free_port()}/")
    with pytest.raises(DestinationError) as info:
        dest.check()
    assert "cannot reach the server" in str(info.value) and not info.value.config


def test_a_url_with_credentials_is_refused() -> None:
    with pytest.raises(ValueError, match="user:password"):
        WebdavDestinationSettings(url="https://me:secret@nas.local/dav")


def test_put_moves_over_an_existing_object_and_leaves_no_temporary(
    webdav_server: Server, tmp_path: Path
) -> None:
    dest = davdest(webdav_server)
    old, old_sha = make_file(tmp_path / "old.mp4", b"old" * 100)
    new, new_sha = make_file(tmp_path / "new.mp4", b"new!" * 100)
    dest.put(old, "cam/a.mp4", sha256=old_sha, metadata={})
    dest.put(new, "cam/a.mp4", sha256=new_sha, metadata={})
    folder = webdav_server.root / dest.cfg.path / "cam"
    assert [p.name for p in folder.iterdir()] == ["a.mp4"]
    assert (folder / "a.mp4").read_bytes() == b"new!" * 100
