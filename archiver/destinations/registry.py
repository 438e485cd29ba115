"""The destination types, restic-style: ``type`` -> settings model + factory.

Adding a destination type is one backend module (a :class:`~archiver.destinations.base.Destination`:
``DestinationBase`` gives the optional operations), one settings model in
:mod:`archiver.destinations.settings` and one :class:`Backend` line in :data:`BACKENDS`; the config's
``[[destinations]]`` union, ``build_destinations`` and the conformance tests follow from here, and every
reader (web UI, Home Assistant, verify, repair, cloud cleanup) reads through the interface's ``open`` /
``location``, so nothing else names the type. :func:`register` adds a type at run time (a plug-in, a
test): ``create`` builds it; only the config file's union, fixed when this module is imported, does not
know it. Factories import their backend library lazily (boto3 is heavy), so reading the config stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field

from archiver.destinations.settings import (
    DestinationSettingsBase,
    DiskDestinationSettings,
    FsspecDestinationSettings,
    S3DestinationSettings,
    SftpDestinationSettings,
    SmbDestinationSettings,
    WebdavDestinationSettings,
)

if TYPE_CHECKING:
    from archiver.destinations.base import Destination


@dataclass(frozen=True)
class BuildContext:
    """What a factory may need beyond its own settings."""

    archive_dir: Path  # the default folder (<data_dir>/archive)
    staging_dir: Path  # never listed as part of an archive that contains it
    data_dir: Path | None = None  # where a backend keeps its own state (sftp's accept-new host keys)
    encryption_key_file: Path | None = None  # [encryption] key_file, for destinations with encrypt = true


@dataclass(frozen=True)
class Backend:
    type: str
    settings: type[DestinationSettingsBase]
    factory: Callable[[Any, str, BuildContext], Destination]
    summary: str


def _relative_inside(path: Path, root: Path) -> str | None:
    try:
        rel = path.expanduser().resolve().relative_to(root.expanduser().resolve())
    except ValueError:
        return None
    return rel.as_posix() if rel.parts else None


def _disk(cfg: DiskDestinationSettings, name: str, ctx: BuildContext) -> Destination:
    from archiver.destinations.disk import DiskDestination

    root = cfg.path or ctx.archive_dir
    staging = _relative_inside(ctx.staging_dir, root)
    return DiskDestination(
        root,
        name,
        exclude=[staging] if staging else (),
        shared=cfg.permissions == "shared",
        min_free_bytes=cfg.min_free_mb * 1024 * 1024,
    )


def _s3(cfg: S3DestinationSettings, name: str, ctx: BuildContext) -> Destination:
    from archiver.destinations.s3 import S3Destination

    return S3Destination(cfg, name)


def _fsspec(cfg: FsspecDestinationSettings, name: str, ctx: BuildContext) -> Destination:
    from archiver.destinations.remote import generic

    return generic(cfg, name)


def _sftp(cfg: SftpDestinationSettings, name: str, ctx: BuildContext) -> Destination:
    from archiver.destinations.sftp import SftpDestination

    return SftpDestination(cfg, name, data_dir=ctx.data_dir or ctx.archive_dir.parent)


def _webdav(cfg: WebdavDestinationSettings, name: str, ctx: BuildContext) -> Destination:
    from archiver.destinations.webdav import WebdavDestination

    return WebdavDestination(cfg, name)


def _smb(cfg: SmbDestinationSettings, name: str, ctx: BuildContext) -> Destination:
    from archiver.destinations.smb import SmbDestination

    return SmbDestination(cfg, name)


_BACKENDS: dict[str, Backend] = {
    b.type: b
    for b in (
        Backend("disk", DiskDestinationSettings, _disk, "a folder on a local or mounted filesystem"),
        Backend("s3", S3DestinationSettings, _s3, "an S3 bucket (AWS, MinIO, Ceph, Garage, R2)"),
        Backend("sftp", SftpDestinationSettings, _sftp, "a folder on an SSH server (sftp extra)"),
        Backend(
            "webdav", WebdavDestinationSettings, _webdav, "a folder on a WebDAV server (webdav extra)"
        ),
        Backend("smb", SmbDestinationSettings, _smb, "a folder in a Windows/Samba share (smb extra)"),
        Backend("fsspec", FsspecDestinationSettings, _fsspec, "any fsspec filesystem (its package)"),
    )
}
BACKENDS: Mapping[str, Backend] = MappingProxyType(_BACKENDS)  # read-only view; see register()

# The config's [[destinations]] entry: one of the registered settings models, chosen by ``type``.
DestinationSettings = Annotated[
    Union[tuple(b.settings for b in BACKENDS.values())],  # type: ignore[valid-type]  # noqa: UP007
    Field(discriminator="type"),
]


def register(backend: Backend) -> None:
    """Add a destination type at run time; a type name is registered once."""
    if backend.type in _BACKENDS:
        raise ValueError(f"destination type {backend.type!r} is registered already")
    _BACKENDS[backend.type] = backend


def unregister(type_: str) -> None:
    """Remove a type :func:`register` added (tests)."""
    _BACKENDS.pop(type_, None)


# Layers ``create`` may put around any backend (class names start with these, as backends' start with
# their type): "encrypted" for ``encrypt = true``.
LAYERS = ("encrypted",)


def create(cfg: DestinationSettingsBase, name: str, ctx: BuildContext) -> Destination:
    dest = BACKENDS[cfg.type].factory(cfg, name, ctx)
    if cfg.encrypt:
        from archiver.destinations.crypt import EncryptedDestination, load_key

        key = load_key(ctx.encryption_key_file, name)
        dest = EncryptedDestination(dest, key, encrypt_names=cfg.encrypt_names)
    return dest
