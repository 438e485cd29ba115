"""Where clips come from. ``SOURCES`` maps a source's name (stored in ``Clip.source``) to its factory, in
discovery order: a source listed earlier is preferred when the same recording comes from two sources."""

from __future__ import annotations

from archiver.sources.base import Source, SourceContext, SourceFactory, SourceReport, SourceUnavailable
from archiver.sources.cloud import CloudSource
from archiver.sources.usb import UsbSource

SOURCES: dict[str, SourceFactory] = {
    CloudSource.name: CloudSource.build,
    UsbSource.name: UsbSource.build,
}

__all__ = ["SOURCES", "Source", "SourceContext", "SourceFactory", "SourceReport", "SourceUnavailable"]
