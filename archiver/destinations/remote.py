"""Remote folders through fsspec: any fsspec filesystem (``type = "fsspec"``) and, as thin mappings with
validated settings, SFTP (asyncssh via sshfs), WebDAV (webdav4) and SMB (smbprotocol).

A put never exposes a partial object: the file is uploaded to ``.<name>.part`` beside its final name (one
temporary name per key, so an interrupted put is overwritten by the next), read back and compared with
its sha256 (``verify_writes``), then renamed over the final name; where a filesystem cannot rename
(``atomic_rename = false``) it is written in place and verified. Every operation runs with bounded
timeouts and retries transient errors (tenacity, a fresh connection each try); errors are one line
that names the destination and its server but never a password, a token or a URL's user info.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import posixpath
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from archiver.destinations.base import (
    READ_CHUNK,
    Capability,
    DestinationBase,
    DestinationError,
    ObjectInfo,
    check_key,
    is_temporary_key,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
CHUNK = 1024 * 1024


class LoginRefused(Exception):
    """Raised by a backend's connect when the server refused the credentials (config)."""


def one_line(text: object) -> str:
    return " ".join(str(text).split())


def is_missing(exc: BaseException) -> bool:
    """A "no such file" in any library's dress (smbprotocol's SMBOSError is an OSError with ENOENT)."""
    return isinstance(exc, FileNotFoundError) or (
        isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.ENOTDIR)
    )


def _reason(exc: BaseException) -> tuple[str, bool] | None:
    """Generic OS-level reasons: (text, config?)."""
    if isinstance(exc, LoginRefused):
        return f"login refused ({one_line(exc)})" if str(exc) else "login refused", True
    if isinstance(exc, socket.gaierror):
        return "unknown host (name does not resolve)", False
    if isinstance(exc, ConnectionRefusedError):
        return "cannot reach the server (connection refused)", False
    if isinstance(exc, TimeoutError | socket.timeout):
        return "cannot reach the server (timed out)", False
    if isinstance(exc, ConnectionError | BrokenPipeError | EOFError):
        return f"connection lost ({exc.__class__.__name__})", False
    if isinstance(exc, PermissionError):
        return "permission denied", True
    if isinstance(exc, NotADirectoryError | FileExistsError):
        return "a file is in the way of a folder", True
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on the server", False
    if isinstance(exc, OSError) and exc.errno == errno.EHOSTUNREACH:
        return "cannot reach the server (no route to host)", False
    return None


class FsspecDestination(DestinationBase):
    """Objects under ``root`` of an fsspec filesystem made by ``connect``.

    Subclasses (the named types) change how to connect, how a library's errors read, and how to
    rename over an existing name; everything else is shared.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.health_check})
    kind = "fsspec"

    def __init__(
        self,
        name: str,
        root: str | None,
        *,
        connect: Callable[[], Any],
        where: str,
        secrets: Sequence[str] = (),
        retries: int = 3,
        verify_writes: bool = True,
        atomic_rename: bool = True,
        retry_wait: float = 0.5,
    ) -> None:
        self.name = name
        self.root: str | None = None if root is None else root.rstrip("/") if root not in ("", "/") else root
        self.where = where  # server and folder as shown in messages (no secrets)
        self._connect = connect
        self._secrets = [s for s in secrets if s]
        self.retries = retries
        self.verify_writes = verify_writes
        self.atomic_rename = atomic_rename
        self.retry_wait = retry_wait
        self._fs: Any = None
        self._lock = threading.Lock()
        self._folders: set[str] = set()  # folders known to exist (a day's folder per camera)
        self._root_name: str | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, where={self.where!r})"

    # -- plumbing -----------------------------------------------------------------------------------
    @property
    def fs(self) -> Any:
        fs = self._fs
        if fs is None:
            with self._lock:  # a sync stores from several worker threads: one connection
                if self._fs is None:
                    self._fs = self._connect()
                fs = self._fs
        return fs

    def _reset(self) -> None:
        """Drop the connection: the next operation connects again."""
        fs, self._fs = self._fs, None
        self._folders.clear()
        if fs is not None:
            with contextlib.suppress(Exception):
                self._close(fs)

    def _close(self, fs: Any) -> None:
        return None

    @property
    def base(self) -> str:
        """The folder inside the filesystem ("" for the login's home); known once connected when the
        URL decides it."""
        if self.root is None:
            self._run("connecting", None, lambda: self.fs)
        return self.root or ""

    def _path(self, key: str) -> str:
        check_key(key, self.name)
        base = self.base
        return posixpath.join(base, key) if base else key

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def describe(self, exc: BaseException) -> tuple[str, bool]:
        """A library's exception as (one-line reason, config?); subclasses know their library's."""
        known = _reason(exc)
        if known is not None:
            return known
        return f"{exc.__class__.__name__}: {one_line(exc)}".rstrip(": "), False

    def transient(self, exc: BaseException) -> bool:
        """Worth another try on a fresh connection (a dropped connection, a timeout, a server hiccup)."""
        if isinstance(exc, LoginRefused | PermissionError | FileNotFoundError | DestinationError):
            return False
        if isinstance(exc, NotADirectoryError | IsADirectoryError | FileExistsError):
            return False
        return isinstance(exc, ConnectionError | TimeoutError | EOFError | socket.timeout)

    def _fail(self, what: str, exc: BaseException | None = None, *, config: bool = False) -> DestinationError:
        text = what
        if exc is not None:
            reason, config = self.describe(exc)
            text = f"{what}: {reason}" if what else reason
        message = f"{self.kind} destination {self.name!r} ({self.where}): {one_line(text)}"
        return DestinationError(self._scrub(message), config=config)

    def _run(self, action: str, key: str | None, fn: Callable[[], T]) -> T:
        """``fn`` with retries on transient errors (reconnecting between tries); FileNotFoundError
        passes through for the caller to judge, anything else becomes one DestinationError line."""

        def again(state: Any) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.info(
                "%s: %s %s failed (%s), retrying", self.name, action, key or "", self._scrub(one_line(exc))
            )
            self._reset()

        try:
            for attempt in Retrying(
                stop=stop_after_attempt(self.retries),
                wait=wait_exponential(multiplier=self.retry_wait, max=8),
                retry=retry_if_exception(self.transient),
                before_sleep=again,
                reraise=True,
            ):
                with attempt:
                    return fn()
        except (DestinationError, FileNotFoundError):
            raise
        except Exception as exc:
            if is_missing(exc):
                raise FileNotFoundError(errno.ENOENT, one_line(exc)) from None
            if not self.transient(exc) and self._is_connection_problem(exc):
                self._reset()
            target = f" {key}" if key else ""
            raise self._fail(f"{action}{target} failed", exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _is_connection_problem(self, exc: BaseException) -> bool:
        return not isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError)

    def _missing(self, key: str) -> DestinationError:
        return self._fail(f"{key} does not exist")

    # -- filesystem steps subclasses may change -----------------------------------------------------
    def _rename(self, tmp: str, final: str) -> None:
        """Move ``tmp`` over ``final`` (replacing it)."""
        try:
            self.fs.mv(tmp, final)
        except FileNotFoundError:
            raise
        except OSError:
            if not self.fs.exists(final):
                raise
            self.fs.rm_file(final)
            self.fs.mv(tmp, final)

    def _makedirs(self, folder: str) -> None:
        if not folder or folder in self._folders:
            return
        self.fs.makedirs(folder, exist_ok=True)
        self._folders.add(folder)

    def _upload(self, src: Path, target: str) -> None:
        with open(src, "rb") as fsrc, self.fs.open(target, "wb") as out:
            while chunk := fsrc.read(CHUNK):
                out.write(chunk)

    def _info(self, path: str) -> dict[str, Any] | None:
        try:
            info = self.fs.info(path)
        except OSError as exc:
            if is_missing(exc):
                return None
            raise
        return info if info.get("type") == "file" else None

    def _sha256_of(self, path: str) -> str:
        digest = hashlib.sha256()
        with self.fs.open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
        return digest.hexdigest()

    # -- Destination --------------------------------------------------------------------------------
    def check(self) -> None:
        """The server answers, accepts the login, and the folder exists (read-only)."""

        root = self.base

        def probe() -> None:
            if root in ("", "/"):
                self.fs.ls(root, detail=False)
                return
            info = self.fs.info(root)
            if info.get("type") != "directory":
                raise NotADirectoryError(errno.ENOTDIR, "not a folder", root)

        try:
            self._run("checking", root or "/", probe)
        except FileNotFoundError:
            raise self._fail(f"folder {root} does not exist (run a sync to create it)") from None

    def preflight(self) -> list[str]:
        """Create the folder, prove it takes a file (write, read back, delete)."""
        root = self.base
        probe = posixpath.join(root, f".preflight.{os.getpid()}.part")

        def run() -> None:
            if root not in ("", "/"):
                self.fs.makedirs(root, exist_ok=True)
            with self.fs.open(probe, "wb") as out:
                out.write(b"ok")
            with self.fs.open(probe, "rb") as fh:
                if fh.read() != b"ok":
                    raise OSError(errno.EIO, "a test file did not read back as written")
            self.fs.rm_file(probe)

        try:
            self._run("preparing", root or "/", run)
        except FileNotFoundError as exc:
            raise self._fail(f"preparing {root or '/'} failed: {one_line(exc)}", config=True) from None
        return []

    def put(self, src: Path, key: str, *, sha256: str, metadata: Mapping[str, str]) -> ObjectInfo:
        path = self._path(key)
        try:
            size = os.stat(src).st_size
        except OSError as exc:
            raise self._fail(f"cannot read source {src}: {exc.strerror}") from None
        current = self.stat(key)
        if current is not None and current.size == size:
            with contextlib.suppress(DestinationError):
                if self.hash(key) == sha256:
                    return ObjectInfo(key=key, size=size, sha256=sha256)

        folder, _, base = path.rpartition("/")
        tmp = f"{folder}/.{base}.part" if folder else f".{base}.part"
        target = tmp if self.atomic_rename else path

        def write() -> None:
            try:
                self._makedirs(folder)
                self._upload(src, target)
            except FileNotFoundError:  # a prune removed the folder we remembered: make it again
                self._folders.discard(folder)
                self._makedirs(folder)
                self._upload(src, target)
            if self.verify_writes:
                written = self._sha256_of(target)
                if written != sha256:
                    raise self._fail(f"{key} does not read back as written (source changed or damaged)")
            else:
                info = self._info(target)
                if info is None or int(info.get("size") or 0) != size:
                    raise self._fail(f"{key} has the wrong size right after writing")
            if self.atomic_rename:
                self._rename(tmp, path)

        try:
            self._run("writing", key, write)
        except FileNotFoundError as exc:
            raise self._fail(f"writing {key} failed: {one_line(exc)}") from None
        except BaseException:
            if self.atomic_rename:
                with contextlib.suppress(Exception):
                    self.fs.rm_file(tmp)
            raise
        return ObjectInfo(key=key, size=size, sha256=sha256)

    def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        info = self._run("checking", key, lambda: self._info(path))
        if info is None:
            return None
        return ObjectInfo(key=key, size=int(info.get("size") or 0))

    def open(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        path = self._path(key)
        if end is not None and end <= start:
            return iter(())
        try:
            fh = self._run("reading", key, lambda: self._open_read(path))
        except FileNotFoundError:
            raise self._missing(key) from None
        return self._read(fh, path, key, start, end)

    def _open_read(self, path: str) -> Any:
        if self._info(path) is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        return self.fs.open(path, "rb")

    def _read(self, fh: Any, path: str, key: str, start: int, end: int | None) -> Iterator[bytes]:
        """Chunks of [start, end); a transient error reopens the file where the read stopped."""
        pos, tries = start, 0
        try:
            while True:
                try:
                    if fh is None:
                        fh = self._open_read(path)
                    fh.seek(pos)
                    while end is None or pos < end:
                        want = READ_CHUNK if end is None else min(READ_CHUNK, end - pos)
                        chunk = fh.read(want)
                        if not chunk:
                            return
                        pos += len(chunk)
                        yield chunk
                    return
                except DestinationError:
                    raise
                except Exception as exc:
                    if is_missing(exc):
                        raise self._missing(key) from None
                    tries += 1
                    if not self.transient(exc) or tries >= self.retries:
                        raise self._fail(f"reading {key} failed", exc) from None
                    with contextlib.suppress(Exception):
                        fh.close()
                    fh = None
                    self._reset()
        finally:
            if fh is not None:
                with contextlib.suppress(Exception):
                    fh.close()

    def delete(self, key: str) -> None:
        failures = self.delete_many([key])
        if key in failures:
            raise failures[key]

    def delete_many(self, keys: Sequence[str]) -> dict[str, Exception]:
        """Delete each object, then the folders that became empty (up to the root)."""
        failures: dict[str, Exception] = {}
        touched: set[str] = set()
        for key in keys:
            try:
                path = self._path(key)

                def rm(path: str = path) -> None:
                    try:
                        self.fs.rm_file(path)
                    except OSError as exc:
                        if not is_missing(exc):
                            raise

                self._run("deleting", key, rm)
            except DestinationError as exc:
                failures[key] = exc
                continue
            if "/" in key:
                touched.add(key.rsplit("/", 1)[0])
        for folder in sorted(touched, key=lambda f: f.count("/"), reverse=True):
            self._tidy(folder)
        return failures

    def _tidy(self, folder: str) -> None:
        """Remove emptied folders from ``folder`` upwards (never the root); stop at the first in use."""
        while folder:
            path = self._path(folder)
            try:
                if self.fs.ls(path, detail=False):
                    return
                self.fs.rmdir(path)
            except Exception:
                return
            self._folders.discard(path)
            folder = folder.rsplit("/", 1)[0] if "/" in folder else ""

    def _relative(self, name: str) -> str:
        if self._root_name is None:
            root = self.base
            if root not in ("", "/"):
                with contextlib.suppress(Exception):
                    root = str(self.fs.info(root).get("name", root))
            self._root_name = root.strip("/")
        name = name.strip("/")
        if self._root_name and name.startswith(self._root_name + "/"):
            return name[len(self._root_name) + 1 :]
        return name if not self._root_name else name.removeprefix(self._root_name).lstrip("/")

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self._path(folder) if folder else self.base

        def find() -> dict[str, Any]:
            with contextlib.suppress(Exception):
                self.fs.invalidate_cache()
            try:
                return dict(self.fs.find(base, detail=True, withdirs=False))
            except OSError as exc:
                if is_missing(exc):
                    return {}
                raise

        found = self._run("listing", base or "/", find)
        out: list[ObjectInfo] = []
        for name, info in found.items():
            if info.get("type") not in (None, "file"):
                continue
            key = self._relative(str(info.get("name") or name))
            if not key or is_temporary_key(key) or not key.startswith(prefix):
                continue
            out.append(ObjectInfo(key=key, size=int(info.get("size") or 0)))
        out.sort(key=lambda o: o.key)
        yield from out


def generic(cfg: Any, name: str) -> FsspecDestination:
    """``type = "fsspec"``: ``url`` and ``options`` handed to fsspec as they are."""
    from urllib.parse import urlsplit

    try:
        import fsspec
        from fsspec.core import url_to_fs
    except ImportError:
        raise DestinationError(
            f"fsspec destination {name!r}: needs the fsspec package (pip install 'blink-archiver[fsspec]')",
            config=True,
        ) from None
    parts = urlsplit(cfg.url)
    where = f"{parts.scheme}://{parts.netloc}{parts.path}"  # no user info: the settings refuse it
    dest: FsspecDestination

    def connect() -> Any:
        try:
            fs, path = url_to_fs(cfg.url, skip_instance_cache=True, **cfg.options)
        except (ImportError, ValueError) as exc:
            hint = (
                ""
                if parts.scheme in fsspec.available_protocols()
                else f" (no fsspec protocol {parts.scheme!r})"
            )
            raise DestinationError(
                f"fsspec destination {name!r} ({where}): {one_line(exc)}{hint}", config=True
            ) from None
        if dest.root is None:  # the folder inside the filesystem is what fsspec makes of the URL
            dest.root = path.rstrip("/") if path not in ("", "/") else path
        return fs

    dest = FsspecDestination(
        name,
        None,
        connect=connect,
        where=where,
        secrets=cfg.secrets(),
        retries=cfg.retries,
        verify_writes=cfg.verify_writes,
        atomic_rename=cfg.atomic_rename,
    )
    return dest
