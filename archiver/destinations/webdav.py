"""``type = "webdav"``: a folder on a WebDAV server (Synology/QNAP WebDAV, Nextcloud, Apache mod_dav),
through webdav4's fsspec filesystem (httpx underneath).

Renames are one ``MOVE`` with ``Overwrite: T``; the password travels only in the Authorization header
(use https:// beyond the local network) and never reaches a message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archiver.destinations.base import DestinationError
from archiver.destinations.remote import FsspecDestination, LoginRefused, one_line
from archiver.destinations.settings import WebdavDestinationSettings


class WebdavDestination(FsspecDestination):
    kind = "webdav"

    def __init__(self, cfg: WebdavDestinationSettings, name: str) -> None:
        self.cfg = cfg
        path = cfg.path.strip("/")
        super().__init__(
            name,
            path,
            connect=self._open_fs,
            where=cfg.url.rstrip("/") + ("/" + path if path else ""),
            secrets=cfg.secrets(),
            retries=cfg.retries,
            verify_writes=cfg.verify_writes,
        )

    def _open_fs(self) -> Any:
        try:
            import httpx
            from webdav4.fsspec import WebdavFileSystem
        except ImportError:
            raise DestinationError(
                "webdav destinations need the webdav extra (pip install 'blink-archiver[webdav]')",
                config=True,
            ) from None
        cfg = self.cfg
        auth = None
        if cfg.username is not None:
            auth = (cfg.username, cfg.password.get_secret_value() if cfg.password else "")
        verify: bool | str = str(Path(cfg.ca_file).expanduser()) if cfg.ca_file else True
        return WebdavFileSystem(
            cfg.url,
            auth=auth,
            timeout=httpx.Timeout(cfg.timeout_s),
            retry=False,  # retried here, on a fresh connection, with the other backends' rule
            verify=verify,
            skip_instance_cache=True,
        )

    def _close(self, fs: Any) -> None:
        fs.client.http.close()

    def _rename(self, tmp: str, final: str) -> None:
        self.fs.client.move(tmp, final, overwrite=True)

    def _upload(self, src: Path, target: str) -> None:
        with open(src, "rb") as fh:
            self.fs.client.upload_fileobj(fh, target, overwrite=True)

    def describe(self, exc: BaseException) -> tuple[str, bool]:
        import httpx
        from webdav4.client import ClientError, HTTPError, InsufficientStorage

        if isinstance(exc, HTTPError):
            status = exc.response.status_code
            if status == 401:
                return "login refused (HTTP 401: wrong username or password)", True
            if status == 403:
                return "permission denied (HTTP 403)", True
            if status == 507:
                return "no space left on the server (HTTP 507)", False
            return f"the server answered HTTP {status}", status in (400, 404, 405, 409)
        if isinstance(exc, InsufficientStorage):
            return "no space left on the server (HTTP 507)", False
        if isinstance(exc, ClientError):
            return f"the server refused: {one_line(exc)}", False
        if isinstance(exc, httpx.ConnectError):
            return "cannot reach the server (connection refused or no route)", False
        if isinstance(exc, httpx.TimeoutException):
            return "cannot reach the server (timed out)", False
        if isinstance(exc, httpx.TransportError):
            return f"connection lost ({exc.__class__.__name__})", False
        if isinstance(exc, LoginRefused):
            return super().describe(exc)
        return super().describe(exc)

    def transient(self, exc: BaseException) -> bool:
        import httpx
        from webdav4.client import BadGatewayError, HTTPError

        if isinstance(exc, httpx.TransportError | BadGatewayError):
            return True
        if isinstance(exc, HTTPError):
            return exc.response.status_code in (429, 500, 502, 503, 504)
        return super().transient(exc)
