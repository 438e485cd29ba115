"""Destinations: where finished clips are made durable (a folder, an S3 bucket), chosen by config.

The types live in :data:`archiver.destinations.registry.BACKENDS` (type -> settings model + factory).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archiver.destinations.base import (
    Capability,
    Destination,
    DestinationBase,
    DestinationError,
    ObjectInfo,
    preflight_all,
)
from archiver.destinations.disk import DiskDestination
from archiver.destinations.registry import BACKENDS, BuildContext, create

if TYPE_CHECKING:
    from archiver.config import Settings

__all__ = [
    "BACKENDS",
    "Capability",
    "Destination",
    "DestinationBase",
    "DestinationError",
    "DiskDestination",
    "ObjectInfo",
    "build_destinations",
    "preflight_all",
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


def build_destinations(settings: Settings) -> list[Destination]:
    """One backend per configured destination (default: one disk destination at ``<data_dir>/archive``).

    Names are stored in the database with every object, so give destinations an explicit ``name`` when
    you configure several of one type: an automatic "-2" follows the order of the list.
    """
    configs = settings.destination_list()
    names = unique_names([c.name or c.type for c in configs])
    ctx = BuildContext(
        archive_dir=settings.archive_dir,
        staging_dir=settings.staging_dir,
        data_dir=settings.data_dir,
        encryption_key_file=settings.encryption.key_file,
    )
    return [create(cfg, name, ctx) for cfg, name in zip(configs, names, strict=True)]
