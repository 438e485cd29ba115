"""``type = "sftp"``: a folder on an SSH server (a NAS, a Pi), through sshfs (asyncssh) for fsspec.

The server's host key is always checked: against ``known_hosts`` (a file, ``~/.ssh/known_hosts`` by
default), or with ``known_hosts = "accept-new"`` the key seen at the first connection is trusted and
written to ``<data_dir>/ssh_known_hosts``, and a different key later is refused (OpenSSH's
``StrictHostKeyChecking=accept-new``). Renames use the ``posix-rename@openssh.com`` extension (atomic,
replaces the target); the login's password, key passphrase and the ssh agent never reach a message.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from pathlib import Path
from typing import Any

from archiver.destinations.base import DestinationError
from archiver.destinations.remote import FsspecDestination, LoginRefused, one_line
from archiver.destinations.settings import SftpDestinationSettings


def _asyncssh() -> Any:
    logging.getLogger("asyncssh").setLevel(logging.WARNING)  # a line per connection and channel at INFO
    with warnings.catch_warnings():  # asyncssh imports DSA support: cryptography warns at import
        warnings.simplefilter("ignore")
        try:
            import asyncssh
            from sshfs import SSHFileSystem  # noqa: F401
        except ImportError:
            raise DestinationError(
                "sftp destinations need the sftp extra (pip install 'blink-archiver[sftp]')", config=True
            ) from None
    return asyncssh


def host_pattern(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class SftpDestination(FsspecDestination):
    kind = "sftp"

    def __init__(self, cfg: SftpDestinationSettings, name: str, *, data_dir: Path) -> None:
        self.cfg = cfg
        self.tofu_file = data_dir / "ssh_known_hosts"
        where = f"sftp://{cfg.username}@{host_pattern(cfg.host, cfg.port)}/{cfg.path.lstrip('/')}"
        super().__init__(
            name,
            cfg.path,
            connect=self._open_fs,
            where=where,
            secrets=cfg.secrets(),
            retries=cfg.retries,
            verify_writes=cfg.verify_writes,
        )

    # -- connecting ----------------------------------------------------------------------------------
    def _known_hosts(self) -> str:
        asyncssh = _asyncssh()
        cfg = self.cfg
        if cfg.known_hosts != "accept-new":
            path = Path(cfg.known_hosts).expanduser()
            if not path.is_file():
                raise DestinationError(
                    f"sftp destination {self.name!r}: known_hosts file {path} does not exist: add the "
                    f"server's key (ssh-keyscan -p {cfg.port} {cfg.host} >> {path}) or set "
                    'known_hosts = "accept-new"',
                    config=True,
                )
            return str(path)
        path = self.tofu_file
        if path.is_file():
            trusted = asyncssh.read_known_hosts(str(path)).match(cfg.host, "", cfg.port)[0]
            if trusted:
                return str(path)
        # first contact: remember the key the server shows now (trust on first use)
        from fsspec.asyn import get_loop, sync

        key = sync(get_loop(), asyncssh.get_server_host_key, cfg.host, cfg.port, timeout=cfg.timeout_s)
        if key is None:
            raise ConnectionError("the server showed no host key")
        line = f"{host_pattern(cfg.host, cfg.port)} {key.export_public_key('openssh').decode().strip()}\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return str(path)

    def _open_fs(self) -> Any:
        asyncssh = _asyncssh()
        from sshfs import SSHFileSystem

        cfg = self.cfg
        options: dict[str, Any] = {
            "port": cfg.port,
            "username": cfg.username,
            "known_hosts": self._known_hosts(),
            "connect_timeout": cfg.timeout_s,
            "login_timeout": cfg.timeout_s,
            "keepalive_interval": max(1.0, cfg.timeout_s / 3),
            "keepalive_count_max": 3,
            "agent_path": None,  # only what the config names: no agent, no ~/.ssh/config, no default keys
            "config": None,
            "client_keys": [str(cfg.key_file.expanduser())] if cfg.key_file else None,
            "skip_instance_cache": True,
            "timeout": cfg.timeout_s,
        }
        if cfg.password is not None:
            options["password"] = cfg.password.get_secret_value()
        if cfg.key_passphrase is not None:
            options["passphrase"] = cfg.key_passphrase.get_secret_value()
        try:
            return SSHFileSystem(cfg.host, **options)
        except PermissionError as exc:  # sshfs turns asyncssh's PermissionDenied into this
            raise LoginRefused(f"user {cfg.username!r}: {one_line(exc) or 'wrong password or key'}") from None
        except asyncssh.HostKeyNotVerifiable as exc:
            raise DestinationError(
                self._scrub(
                    f"sftp destination {self.name!r} ({self.where}): the server's host key is not trusted "
                    f"({one_line(exc.reason)}); check known_hosts ({cfg.known_hosts})"
                ),
                config=True,
            ) from None
        except asyncssh.KeyImportError as exc:
            raise DestinationError(
                f"sftp destination {self.name!r}: key_file {cfg.key_file} cannot be used: {one_line(exc)}",
                config=True,
            ) from None

    def _close(self, fs: Any) -> None:
        with contextlib.suppress(Exception):
            fs.client.close()

    # -- errors ----------------------------------------------------------------------------------------
    def describe(self, exc: BaseException) -> tuple[str, bool]:
        asyncssh = _asyncssh()
        if isinstance(exc, asyncssh.sftp.SFTPPermissionDenied):
            return "permission denied", True
        if isinstance(exc, asyncssh.sftp.SFTPNoSpaceOnFilesystem | asyncssh.sftp.SFTPQuotaExceeded):
            return "no space left on the server", False
        if isinstance(exc, asyncssh.sftp.SFTPConnectionLost | asyncssh.sftp.SFTPNoConnection):
            return f"connection lost ({one_line(exc.reason)})", False
        if isinstance(exc, asyncssh.sftp.SFTPError):
            return f"the server said: {one_line(exc.reason)}", False
        if isinstance(exc, asyncssh.DisconnectError | asyncssh.ConnectionLost):
            return f"connection lost ({one_line(exc.reason)})", False
        return super().describe(exc)

    def transient(self, exc: BaseException) -> bool:
        asyncssh = _asyncssh()
        if isinstance(exc, asyncssh.HostKeyNotVerifiable | asyncssh.PermissionDenied):
            return False
        lost = (
            asyncssh.DisconnectError,
            asyncssh.ConnectionLost,
            asyncssh.ChannelOpenError,
            asyncssh.sftp.SFTPConnectionLost,
            asyncssh.sftp.SFTPNoConnection,
        )
        if isinstance(exc, lost):
            return True
        return super().transient(exc)
