"""A folder on a local or mounted filesystem.

``put`` never exposes a partial file: it hard-links (same filesystem, zero copy) or copies the source to
``.<name>.<random>.part`` next to the target, fsyncs it, renames it over the final name and fsyncs the
folder. Every key is resolved under the root and refused if it would leave it (``..``, absolute paths,
symlinks pointing outside).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO, ClassVar

from archiver.destinations.base import (
    READ_CHUNK,
    Capability,
    DestinationBase,
    DestinationError,
    ObjectInfo,
    PutDone,
    PutItem,
    check_key,
    is_temporary_key,
)
from archiver.util import sha256_file

CHUNK = 1024 * 1024

_LINK_FALLBACK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES}
_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EIO: "input/output error",
}


def _reason(exc: OSError) -> str:
    if exc.errno in _REASONS:
        return _REASONS[exc.errno]
    return (exc.strerror or exc.__class__.__name__).lower()


def _read_range(
    fh: BinaryIO, start: int, end: int | None, error: Callable[[OSError], DestinationError]
) -> Iterator[bytes]:
    """An open file's bytes [start, end) in READ_CHUNK pieces; closes the file when done."""
    with fh:
        try:
            fh.seek(start)
            left = None if end is None else max(0, end - start)
            while left is None or left > 0:
                chunk = fh.read(READ_CHUNK if left is None else min(READ_CHUNK, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk
        except OSError as exc:
            raise error(exc) from None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_FOLDER_CACHE = 4096  # folders remembered by _folder (a day's folder per camera: plenty)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


PROBE_PREFIX = ".preflight."  # the preflight's probe files: ".preflight.<pid>" (".part" in a destination)
STALE_PROBE_S = 60.0  # a probe this old belongs to no running preflight (one lives for microseconds)


def sweep_probes(folder: Path) -> None:
    """Remove the probe files earlier preflights left (a run killed mid-probe, an older version)."""
    try:
        entries = os.scandir(folder)
    except OSError:
        return
    now = time.time()
    with entries:
        for entry in entries:
            if not entry.name.startswith(PROBE_PREFIX):
                continue
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) and now - st.st_mtime > STALE_PROBE_S:
                    os.unlink(entry.path)


def probe_folder(folder: Path, mode: int, suffix: str = "") -> None:
    """Prove ``folder`` takes a file: write a small probe and remove it whatever happens (a full disk
    fails the write after the file exists). Stale probes of earlier runs are swept first. Raises OSError."""
    sweep_probes(folder)
    probe = folder / f"{PROBE_PREFIX}{os.getpid()}{suffix}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        _write_all(fd, b"ok")
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)


class DiskDestination(DestinationBase):
    """Files under ``root``; ``exclude`` lists root-relative folders that are not ours (a staging dir).

    Files are 0600 and folders 0700 (clips show the inside of a home) unless ``shared``: 0644/0755.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.health_check, Capability.bulk_delete, Capability.free_space, Capability.batch_put}
    )

    def __init__(
        self,
        root: Path,
        name: str = "disk",
        *,
        exclude: Iterable[str] = (),
        shared: bool = False,
        min_free_bytes: int = 0,
    ) -> None:
        self.root = Path(root).expanduser()
        self.name = name
        self.exclude = tuple(p.strip("/") + "/" for p in exclude if p.strip("/"))
        self.file_mode = 0o644 if shared else 0o600
        self.dir_mode = 0o755 if shared else 0o700
        self.min_free_bytes = min_free_bytes
        self._real_root_cache: Path | None = None
        self._folders: dict[str, Path] = {}  # folder key -> its real path (see _folder)

    def __repr__(self) -> str:
        return f"DiskDestination(name={self.name!r}, root={str(self.root)!r})"

    # -- helpers ------------------------------------------------------------------------------------
    def _error(self, action: str, key: str, exc: OSError) -> DestinationError:
        return DestinationError(f"disk destination {self.name!r}: {_reason(exc)} {action} {key}")

    @property
    def _real_root(self) -> Path:
        """The root's real path, resolved once it exists (a prune resolves thousands of keys)."""
        cached = self._real_root_cache
        if cached is None:
            cached = self.root.resolve()
            if cached.is_dir():
                self._real_root_cache = cached
        return cached

    def _folder(self, folder: str, key: str) -> Path:
        """The real path of a key's folder ("" is the root), resolved once and remembered: a sync puts
        several files per folder and a prune deletes thousands, and a full ``realpath`` is a syscall
        per path component."""
        real = self._folders.get(folder)
        if real is None:
            root = self._real_root
            real = root.joinpath(*folder.split("/")).resolve() if folder else root
            if not real.is_relative_to(root):
                raise self._leaves_root(key)
            if len(self._folders) >= _FOLDER_CACHE:
                self._folders.clear()
            self._folders[folder] = real
        return real

    def _resolve(self, key: str) -> Path:
        """The path of ``key`` under the root's real path. A key whose folder, or which itself, is a
        symlink leading out of the root is refused."""
        check_key(key, self.name)
        folder, _, name = key.rpartition("/")
        target = self._folder(folder, key) / name
        if os.path.islink(target):  # one lstat; the full walk only for a link
            root = self._real_root
            resolved = target.resolve()
            if not resolved.is_relative_to(root) or resolved == root:
                raise self._leaves_root(key)
        return target

    def _leaves_root(self, key: str) -> DestinationError:
        return DestinationError(f"disk destination {self.name!r}: refused key {key!r}: it leaves the root")

    def _makedirs(self, folder: Path) -> None:
        """mkdir -p, fsyncing each parent that gained an entry so the new folder survives a crash."""
        missing: list[Path] = []
        p = folder
        while not p.exists():
            missing.append(p)
            if p.parent == p:
                break
            p = p.parent
        for d in reversed(missing):
            try:
                d.mkdir(self.dir_mode)
            except FileExistsError:
                continue
            with contextlib.suppress(OSError):
                os.chmod(d, self.dir_mode)  # mkdir's mode is filtered by the umask
            _fsync_dir(d.parent)

    def check(self) -> None:
        """Raise DestinationError unless the root exists and is writable.

        Never creates the root: a missing root is usually an unmounted disk, and verify or prune must
        say so instead of judging an empty folder (``put`` creates it on first use).
        """
        if not self.root.is_dir():
            raise DestinationError(
                f"disk destination {self.name!r}: {self.root} does not exist (not mounted?)"
            )
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise DestinationError(f"disk destination {self.name!r}: {self.root} is not writable")

    def preflight(self) -> list[str]:
        """Create the root if needed, prove it takes a file, and refuse when the disk is (nearly) full."""
        try:
            if not self.root.is_dir():
                self._makedirs(self.root)
            probe_folder(self.root, self.file_mode, ".part")
            st = os.statvfs(self.root)
        except OSError as exc:  # a full disk is an outage; a file in the way or no permission is config
            outage = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO)
            raise DestinationError(
                f"disk destination {self.name!r}: {self.root}: {_reason(exc)}", config=not outage
            ) from None
        free = st.f_bavail * st.f_frsize
        if free < self.min_free_bytes:
            raise DestinationError(
                f"disk destination {self.name!r}: {self.root}: disk full ({free / 1e6:.0f} MB free, "
                f"min_free_mb is {self.min_free_bytes // (1024 * 1024)})"
            )
        return []

    def read_to(self, key: str, path: Path) -> None:
        src = self._resolve(key)
        try:
            shutil.copyfile(src, path)
        except FileNotFoundError:
            raise DestinationError(f"disk destination {self.name!r}: {key} does not exist") from None
        except OSError as exc:
            raise self._error("reading", key, exc) from None

    def open(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        path = self._resolve(key)
        try:
            fh = path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise DestinationError(f"disk destination {self.name!r}: {key} does not exist") from None
        except OSError as exc:
            raise self._error("reading", key, exc) from None
        return _read_range(fh, start, end, lambda exc: self._error("reading", key, exc))

    def location(self, key: str) -> str | None:
        return str(self._resolve(key))

    # -- Destination --------------------------------------------------------------------------------
    def put(self, src: Path, key: str, *, sha256: str, metadata: Mapping[str, str]) -> ObjectInfo:
        info, folder = self._put(src, key, sha256)
        if folder is not None:
            self._sync_folder(folder, key)
        return info

    def put_many(self, items: Sequence[PutItem], done: PutDone) -> None:
        """Every item as ``put`` does, but each folder is fsynced once, after the last rename into it (a
        clip, its thumbnail and its sidecar share one): ``done`` follows for each item. When an item
        fails, the folders of those before it are made durable and reported done first."""
        renamed: list[tuple[PutItem, ObjectInfo, Path | None]] = []
        folders: dict[Path, str] = {}  # folder -> the first key put into it (for the error message)
        error: BaseException | None = None
        try:
            for item in items:
                info, folder = self._put(item.src, item.key, item.sha256)
                renamed.append((item, info, folder))
                if folder is not None:
                    folders.setdefault(folder, item.key)
        except BaseException as exc:
            error = exc
        synced: set[Path] = set()
        for folder, key in folders.items():
            try:
                self._sync_folder(folder, key)
            except DestinationError as exc:
                error = error or exc
            else:
                synced.add(folder)
        for item, info, folder in renamed:
            if folder is None or folder in synced:
                done(item, info)
        if error is not None:
            raise error

    def _sync_folder(self, folder: Path, key: str) -> None:
        try:
            _fsync_dir(folder)
        except OSError as exc:
            raise self._error("writing", key, exc) from None

    def _put(self, src: Path, key: str, sha256: str) -> tuple[ObjectInfo, Path | None]:
        """Link or copy ``src`` under ``key`` (the file fsynced, then renamed into place); the folder
        that gained the entry, which the caller fsyncs (None: the object was there already)."""
        dest = self._resolve(key)
        try:
            size = os.stat(src).st_size
        except OSError as exc:
            raise DestinationError(
                f"disk destination {self.name!r}: cannot read source {src}: {_reason(exc)}"
            ) from None
        current = self.stat(key)
        if current is not None and current.size == size and self.hash(key) == sha256:
            return ObjectInfo(key=key, size=size, sha256=sha256), None

        # One temp name per key (one writer per key: the account lease), so a put killed half-way leaves
        # nothing behind once the key is put again; no directory scan needed.
        tmp = dest.parent / f".{dest.name}.part"
        self._discard(tmp)
        try:
            for attempt in range(3):  # a concurrent prune may remove an empty folder under us
                self._makedirs(dest.parent)
                try:
                    self._link_or_copy(Path(src), tmp, sha256, key)
                    os.chmod(tmp, self.file_mode)
                    break
                except FileNotFoundError:
                    if attempt == 2 or not Path(src).exists():
                        raise
            os.replace(tmp, dest)
        except OSError as exc:
            self._discard(tmp)
            raise self._error("writing", key, exc) from None
        except BaseException:
            self._discard(tmp)
            raise
        self._discard(tmp)  # rename of a hard link onto the same inode is a no-op that leaves tmp behind
        return ObjectInfo(key=key, size=size, sha256=sha256), dest.parent

    def _link_or_copy(self, src: Path, tmp: Path, sha256: str, key: str) -> None:
        try:
            os.link(src, tmp, follow_symlinks=True)
        except OSError as exc:
            if exc.errno not in _LINK_FALLBACK:
                raise
        else:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return
        digest = hashlib.sha256()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.file_mode)
        try:
            with open(src, "rb") as fsrc:
                while chunk := fsrc.read(CHUNK):
                    digest.update(chunk)
                    _write_all(fd, chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        if digest.hexdigest() != sha256:
            raise DestinationError(
                f"disk destination {self.name!r}: source for {key} does not match its sha256 (changed?)"
            )

    @staticmethod
    def _discard(tmp: Path) -> None:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        except OSError:  # pragma: no cover - nothing more we can do; list() hides .part names anyway
            pass

    def stat(self, key: str) -> ObjectInfo | None:
        path = self._resolve(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._error("reading", key, exc) from None
        if not path.is_file():
            return None
        return ObjectInfo(key=key, size=st.st_size)

    def hash(self, key: str) -> str:
        path = self._resolve(key)
        try:
            return sha256_file(path)
        except FileNotFoundError:
            raise DestinationError(f"disk destination {self.name!r}: {key} does not exist") from None
        except OSError as exc:
            raise self._error("reading", key, exc) from None

    def delete(self, key: str) -> None:
        failures = self.delete_many([key])
        if key in failures:
            raise failures[key]

    def delete_many(self, keys: Sequence[str]) -> dict[str, Exception]:
        """Unlink every key, then fsync each folder that lost an entry once and tidy the date/camera
        folders retention emptied (stopping at the first one still in use)."""
        failures: dict[str, Exception] = {}
        touched: set[Path] = set()
        root = self._real_root
        for key in keys:
            try:
                check_key(key, self.name)
                folder, _, name = key.rpartition("/")
                real = self._folder(folder, key)
                path = real / name  # unlink removes a link itself, never what it points to
                os.unlink(path)
            except FileNotFoundError:
                continue
            except DestinationError as exc:
                failures[key] = exc
                continue
            except OSError as exc:
                failures[key] = self._error("deleting", key, exc)
                continue
            touched.add(path.parent)
        for folder in sorted(touched, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                _fsync_dir(folder)
            parent = folder
            with contextlib.suppress(OSError):
                while parent != root and parent.is_relative_to(root):
                    parent.rmdir()
                    parent = parent.parent
        return failures

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        root = self._real_root
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = root.joinpath(*folder.split("/")) if folder else root
        if folder:
            try:
                check_key(folder, self.name)
            except DestinationError:
                return
        if not start.is_dir():
            return
        for dirpath, dirnames, filenames in os.walk(start):
            rel_dir = Path(dirpath).relative_to(root).as_posix()
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            dirnames[:] = sorted(
                d
                for d in dirnames
                if not d.startswith(".") and not any((rel_dir + d + "/").startswith(x) for x in self.exclude)
            )
            for fname in sorted(filenames):
                key = rel_dir + fname
                if not key.startswith(prefix) or is_temporary_key(key):
                    continue
                full = Path(dirpath) / fname
                try:
                    st = full.lstat()
                except OSError:
                    continue
                if not full.is_file() or full.is_symlink():
                    continue
                yield ObjectInfo(key=key, size=st.st_size)
