"""Deterministic clip and thumbnail bytes for the simulator.

A clip is the small real H.264 asset (``assets/sample.mp4``, faststart) followed by one MP4 ``free`` box
whose payload is pseudo-random bytes derived from the clip's key, sized so the whole file is exactly
``size`` bytes. The payload is produced block by block (64 KiB) and never held in memory as a whole, so
a 512 MB clip streams and hashes in constant memory. Every byte at a given offset is a pure function of
``(key, size)``, which makes Range requests and truncated-download tests straightforward.

Thumbnails are the asset JPEG with a JPEG COM segment carrying the key inserted after SOI, so each media
item has different (but still valid) JPEG bytes.

The runtime needs no ffmpeg: the assets are committed files.
"""

from __future__ import annotations

import functools
import hashlib
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ASSET_DIR = Path(__file__).parent / "assets"
BLOCK_SIZE = 64 * 1024
_PREFIX = 16  # bytes of each block that depend on the block index
_MAX_BOX32 = 0xFFFFFFFF

_sha_cache: dict[tuple[str, int], str] = {}


@functools.cache
def asset_mp4() -> bytes:
    """The committed ~1 s 160x90 H.264 MP4 (faststart: ftyp, moov, free, mdat)."""
    return (ASSET_DIR / "sample.mp4").read_bytes()


@functools.cache
def asset_jpeg() -> bytes:
    """The committed 160x90 JPEG."""
    return (ASSET_DIR / "sample.jpg").read_bytes()


def min_clip_size() -> int:
    """Smallest allowed clip size: asset + ``free`` box header + 16 payload bytes."""
    return len(asset_mp4()) + 8 + _PREFIX


@functools.lru_cache(maxsize=64)
def _base_block(key: str) -> bytes:
    seed = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")
    return random.Random(seed).randbytes(BLOCK_SIZE)


def _block(key: str, index: int) -> bytes:
    prefix = hashlib.sha256(f"{key}#{index}".encode()).digest()[:_PREFIX]
    return prefix + _base_block(key)[_PREFIX:]


@dataclass(frozen=True)
class ClipBody:
    """Lazily generated MP4 bytes of one clip (``key`` identifies the clip, e.g. ``"cloud:123"``)."""

    key: str
    size: int
    content_type: str = "video/mp4"

    def __post_init__(self) -> None:
        if self.size < min_clip_size():
            raise ValueError(f"clip size {self.size} below minimum {min_clip_size()}")

    @functools.cached_property
    def header(self) -> bytes:
        """Asset bytes plus the header of the trailing ``free`` box."""
        asset = asset_mp4()
        box = self.size - len(asset)
        if box <= _MAX_BOX32:
            return asset + struct.pack(">I", box) + b"free"
        return asset + struct.pack(">I", 1) + b"free" + struct.pack(">Q", box)

    def iter_range(self, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
        """Yield the bytes ``[start, stop)`` in pieces of at most 64 KiB."""
        stop = self.size if stop is None else min(stop, self.size)
        head = self.header
        pos = max(0, start)
        if pos < len(head) and pos < stop:
            piece = head[pos:stop]
            yield piece
            pos += len(piece)
        while pos < stop:
            index, offset = divmod(pos - len(head), BLOCK_SIZE)
            piece = _block(self.key, index)[offset : offset + (stop - pos)]
            yield piece
            pos += len(piece)

    def read(self) -> bytes:
        """The whole body (use for small clips only)."""
        return b"".join(self.iter_range())

    def sha256(self) -> str:
        """Hex SHA-256 of the whole body, computed by streaming and cached."""
        cache_key = (self.key, self.size)
        if cache_key not in _sha_cache:
            digest = hashlib.sha256()
            for piece in self.iter_range():
                digest.update(piece)
            _sha_cache[cache_key] = digest.hexdigest()
        return _sha_cache[cache_key]


def thumbnail_bytes(key: str) -> bytes:
    """The asset JPEG with a COM segment naming ``key`` inserted right after SOI."""
    jpeg = asset_jpeg()
    comment = f"blink-sim thumbnail {key}".encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + jpeg[2:]


def thumbnail_sha256(key: str) -> str:
    return hashlib.sha256(thumbnail_bytes(key)).hexdigest()
