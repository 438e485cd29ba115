"""Destinations: where finished clips are made durable (a folder, an S3 bucket), chosen by config."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from archiver.destinations.base import Destination, DestinationError, ObjectInfo
from archiver.destinations.disk import DiskDestination

if TYPE_CHECKING:
    from archiver.config import Settings

__all__ = [
    "Destination",
    "DestinationError",
    "DiskDestination",
    "ObjectInfo",
    "build_destinations",
    "unique_names",
]


def unique_names(bases: list[str]) -> list[str]:
    """Keep the first use of a name; later repeats get "-2", "-3"... (never clashing with a given name)."""
    taken = set(bases)
    used: set[str] = set()
    out: list[str] = []
    for base in bases:
        name = base
        if name in used:
            n = 2
            while f"{base}-{n}" in used or f"{base}-{n}" in taken:
                n += 1
            name = f"{base}-{n}"
        used.add(name)
        out.append(name)
    return out


def _relative_inside(path: Path, root: Path) -> str | None:
    try:
        rel = path.expanduser().resolve().relative_to(root.expanduser().resolve())
    except ValueError:
        return None
    return rel.as_posix() if rel.parts else None


def build_destinations(settings: Settings) -> list[Destination]:
    """One backend per configured destination (default: one disk destination at ``<data_dir>/archive``).

    Names are stored in the database with every object, so give destinations an explicit ``name`` when
    you configure several of one type: an automatic "-2" follows the order of the list.
    """
    configs = settings.destination_list()
    names = unique_names([c.name or c.type for c in configs])
    out: list[Destination] = []
    for cfg, name in zip(configs, names, strict=True):
        if cfg.type == "disk":
            root = cfg.path or settings.archive_dir
            staging = _relative_inside(settings.staging_dir, root)
            out.append(DiskDestination(root, name, exclude=[staging] if staging else ()))
        else:
            from archiver.destinations.s3 import S3Destination  # boto3 is heavy: import only when used

            out.append(S3Destination(cfg, name))
    return out
