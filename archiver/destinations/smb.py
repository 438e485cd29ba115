"""``type = "smb"``: a folder in a Windows/Samba share (a NAS), through smbprotocol (fsspec's smb).

SMB 2/3 with signing; a file is written under a temporary name and then replaced in one
``SMB2 SET_INFO`` rename with replace-if-exists. The password never reaches a message.
"""

from __future__ import annotations

import contextlib
from typing import Any

from archiver.destinations.base import DestinationError
from archiver.destinations.remote import FsspecDestination, LoginRefused, one_line
from archiver.destinations.settings import SmbDestinationSettings


def _smbclient() -> Any:
    try:
        import smbclient
    except ImportError:
        raise DestinationError(
            "smb destinations need the smb extra (pip install 'blink-archiver[smb]')", config=True
        ) from None
    return smbclient


class SmbDestination(FsspecDestination):
    kind = "smb"

    def __init__(self, cfg: SmbDestinationSettings, name: str) -> None:
        self.cfg = cfg
        path = cfg.path.strip("/")
        root = f"/{cfg.share}/{path}" if path else f"/{cfg.share}"
        port = "" if cfg.port == 445 else f":{cfg.port}"
        super().__init__(
            name,
            root,
            connect=self._open_fs,
            where=f"smb://{cfg.host}{port}{root}",
            secrets=cfg.secrets(),
            retries=cfg.retries,
            verify_writes=cfg.verify_writes,
        )

    def _unc(self, path: str) -> str:
        return "\\\\" + self.cfg.host + path.replace("/", "\\")

    def _open_fs(self) -> Any:
        smbclient = _smbclient()  # the clear message when the extra is missing
        import smbprotocol.exceptions as smbexc
        from fsspec.implementations.smb import SMBFileSystem

        cfg = self.cfg
        # smbclient pools one connection per server and reuses a session by user name alone: drop it, so
        # that this login is really checked and a reconnect starts clean
        with contextlib.suppress(Exception):
            smbclient.delete_session(cfg.host, port=cfg.port)
        try:
            return SMBFileSystem(
                cfg.host,
                port=cfg.port,
                username=cfg.username,
                password=cfg.password.get_secret_value() if cfg.password else None,
                timeout=cfg.timeout_s,
                register_session_retries=0,  # retried here, with the other backends' rule
                skip_instance_cache=True,
            )
        except (smbexc.LogonFailure, smbexc.SMBAuthenticationError) as exc:
            raise LoginRefused(f"user {cfg.username!r}: {one_line(exc.__class__.__name__)}") from None
        except ValueError as exc:  # smbprotocol's "Failed to connect to 'host:port': [Errno 111] ..."
            text = str(exc)
            if "Errno 111" in text or "Connection refused" in text:
                raise ConnectionRefusedError(111, "connection refused") from None
            if "timed out" in text or "Errno 110" in text:
                raise TimeoutError("timed out") from None
            if "Errno -2" in text or "Errno -3" in text or "Name or service" in text:
                import socket

                raise socket.gaierror(-2, "unknown host") from None
            raise ConnectionError(text) from None

    def _close(self, fs: Any) -> None:
        with contextlib.suppress(Exception):
            _smbclient().delete_session(self.cfg.host, port=self.cfg.port)

    def _rename(self, tmp: str, final: str) -> None:
        _smbclient().replace(self._unc(tmp), self._unc(final), port=self.cfg.port)

    def describe(self, exc: BaseException) -> tuple[str, bool]:
        import smbprotocol.exceptions as smbexc
        from smbprotocol.header import NtStatus

        if isinstance(exc, smbexc.SMBOSError):  # smbclient's OSError carries the NT status
            status = getattr(exc, "ntstatus", None)
            if status == NtStatus.STATUS_BAD_NETWORK_NAME:
                return f"the server has no share {self.cfg.share!r}", True
            if status == NtStatus.STATUS_ACCESS_DENIED:
                return "permission denied", True
            if status == NtStatus.STATUS_LOGON_FAILURE:
                return "login refused (wrong username or password)", True
            if status == NtStatus.STATUS_DISK_FULL:
                return "no space left on the server", False
            return f"the server said: {one_line(exc.strerror)}", False
        if isinstance(exc, smbexc.BadNetworkName):
            return f"the server has no share {self.cfg.share!r}", True
        if isinstance(exc, smbexc.AccessDenied):
            return "permission denied", True
        if isinstance(exc, smbexc.LogonFailure | smbexc.SMBAuthenticationError):
            return "login refused (wrong username or password)", True
        if isinstance(exc, smbexc.SMBResponseException):
            return f"the server said: {one_line(exc.message)}", False
        if isinstance(exc, smbexc.SMBConnectionClosed | smbexc.SMBException):
            return f"connection lost ({exc.__class__.__name__})", False
        return super().describe(exc)

    def transient(self, exc: BaseException) -> bool:
        import smbprotocol.exceptions as smbexc

        if isinstance(exc, smbexc.SMBConnectionClosed):
            return True
        return super().transient(exc)
