"""Real file servers on loopback for the remote destinations' tests, started by the tests themselves:

- SFTP: asyncssh's SFTP server in a thread (password and public-key logins, an ed25519 host key);
- WebDAV: WsgiDAV on cheroot in a thread (basic auth);
- SMB: Debian's Samba ``smbd`` on a free high port with a private smb.conf and passdb (needs root and the
  ``samba`` package; skipped, naming the package, otherwise).

Use with ``from remote_fixtures import sftp_server, webdav_server, smb_server  # noqa: F401``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import free_port

USER, PASSWORD = "nas-user", "nas-Pa55word!"


@dataclass
class Server:
    host: str
    port: int
    root: Path  # the folder the server serves (for tamper fixtures and "is nothing readable" checks)
    extra: dict[str, Any]


def _wait_for_port(port: int, deadline_s: float = 20) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


# -- SFTP -------------------------------------------------------------------------------------------------
def _asyncssh() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip("asyncssh", reason="pip install 'blink-archiver[sftp]'")


@pytest.fixture(scope="module")
def sftp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _asyncssh()
    pytest.importorskip("sshfs", reason="pip install 'blink-archiver[sftp]'")
    with run_sftp(tmp_path_factory.mktemp("sftp")) as server:
        yield server


@contextlib.contextmanager
def run_sftp(base: Path) -> Iterator[Server]:
    """asyncssh's SFTP server on 127.0.0.1:<free port> serving ``base/root``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import asyncssh
    root = base / "root"
    root.mkdir(parents=True)
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    (base / "id_ed25519").write_bytes(client_key.export_private_key())
    os.chmod(base / "id_ed25519", 0o600)
    authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())

    connections: list[Any] = []

    class Auth(asyncssh.SSHServer):
        def connection_made(self, conn: Any) -> None:
            connections.append(conn)

        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return username == USER and password == PASSWORD

        def public_key_auth_supported(self) -> bool:
            return True

        def validate_public_key(self, username: str, key: Any) -> bool:
            return username == USER and authorized.validate(key, "127.0.0.1", "127.0.0.1") is not None

    loop = asyncio.new_event_loop()
    started: dict[str, Any] = {}

    async def start() -> None:
        server = await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[host_key],
            server_factory=Auth,
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=str(root).encode()),
            allow_scp=False,
        )
        started["server"] = server
        started["port"] = server.sockets[0].getsockname()[1]

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    port = started["port"]
    known = base / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_key.export_public_key().decode().strip()}\n")
    try:
        yield Server(
            "127.0.0.1",
            port,
            root,
            {
                "known_hosts": known,
                "key_file": base / "id_ed25519",
                # drop every client's connection, as a NAS that restarts does
                "drop": lambda: loop.call_soon_threadsafe(lambda: [c.abort() for c in connections]),
            },
        )
    finally:

        async def stop() -> None:
            started["server"].close()
            for conn in connections:
                conn.close()
            for conn in connections:
                await conn.wait_closed()
            await started["server"].wait_closed()
            await asyncio.sleep(0.05)

        asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


# -- WebDAV ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def webdav_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    pytest.importorskip("webdav4", reason="pip install 'blink-archiver[webdav]'")
    pytest.importorskip("wsgidav.wsgidav_app", reason="pip install wsgidav cheroot")
    pytest.importorskip("cheroot.wsgi", reason="pip install wsgidav cheroot")
    with run_webdav(tmp_path_factory.mktemp("webdav")) as server:
        yield server


@contextlib.contextmanager
def run_webdav(root: Path) -> Iterator[Server]:
    """WsgiDAV on cheroot on 127.0.0.1:<free port> serving ``root``."""
    from cheroot import wsgi as cheroot_wsgi
    from wsgidav import wsgidav_app

    config = {
        "provider_mapping": {"/": str(root)},
        "simple_dc": {"user_mapping": {"*": {USER: {"password": PASSWORD}}}},
        "http_authenticator": {"accept_basic": True, "accept_digest": False, "default_to_digest": False},
        "verbose": 0,
        "logging": {"enable": False},
        "lock_storage": True,
        "property_manager": True,
    }
    app = wsgidav_app.WsgiDAVApp(config)
    server = cheroot_wsgi.Server(("127.0.0.1", 0), app, numthreads=4)
    server.prepare()
    port = server.bind_addr[1]
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        yield Server("127.0.0.1", port, root, {"url": f"http://127.0.0.1:{port}/"})
    finally:
        server.stop()
        thread.join(5)


# -- SMB --------------------------------------------------------------------------------------------------
SMB_CONF = """[global]
  server role = standalone server
  smb ports = {port}
  interfaces = 127.0.0.1
  bind interfaces only = yes
  disable netbios = yes
  private dir = {d}/private
  lock directory = {d}/lock
  state directory = {d}/state
  cache directory = {d}/cache
  pid directory = {d}/pid
  ncalrpc dir = {d}/ncalrpc
  log file = {d}/log.smbd
  passdb backend = tdbsam:{d}/private/passdb.tdb
  server min protocol = SMB2_10
  map to guest = never
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
  host msdfs = no
  server signing = mandatory
[archive]
  path = {d}/share
  read only = no
  valid users = root
  create mask = 0600
  directory mask = 0700
"""


@pytest.fixture(scope="module")
def smb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    pytest.importorskip("smbclient", reason="pip install 'blink-archiver[smb]'")
    smbd = shutil.which("smbd") or ("/usr/sbin/smbd" if os.path.exists("/usr/sbin/smbd") else None)
    smbpasswd = shutil.which("smbpasswd") or "/usr/bin/smbpasswd"
    if smbd is None or not os.path.exists(smbpasswd):
        pytest.skip("Samba's smbd is not installed (apt-get install samba)")
    if os.geteuid() != 0:
        pytest.skip("smbd needs root here (it logs users in as themselves)")
    with run_smb(tmp_path_factory.mktemp("smb"), smbd, smbpasswd) as server:
        yield server


def _die_with_parent() -> None:
    """In the child: SIGTERM when the test process dies (a killed run leaves no smbd behind)."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def run_smb(d: Path, smbd: str = "/usr/sbin/smbd", smbpasswd: str = "/usr/bin/smbpasswd") -> Iterator[Server]:
    """Samba's smbd on 127.0.0.1:<free port> with a private config; share "archive" is ``d/share``."""
    for sub in ("private", "lock", "state", "cache", "pid", "ncalrpc", "share"):
        (d / sub).mkdir()
    port = free_port()
    conf = d / "smb.conf"
    conf.write_text(SMB_CONF.format(port=port, d=d))
    subprocess.run(
        [smbpasswd, "-c", str(conf), "-a", "-s", "root"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
        text=True,
        check=True,
        capture_output=True,
    )
    proc = subprocess.Popen(
        [smbd, "--foreground", "--no-process-group", "-s", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    try:
        _wait_for_port(port)
        yield Server("127.0.0.1", port, d / "share", {"share": "archive", "username": "root"})
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # smbd and the children it forked per connection
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
