"""Deterministic clip and thumbnail bytes for the simulator.

A clip is the small real H.264 asset (``assets/sample.mp4``, faststart) followed by one MP4 ``free`` box
whose payload is pseudo-random bytes derived from the clip's key, sized so the whole file is exactly
``size`` bytes. The payload is produced block by block (64 KiB) and never held in memory as a whole, so
a 512 MB clip streams and hashes in constant memory. Every byte at a given offset is a pure function of
``(key, size)``, which makes Range requests and truncated-download tests straightforward.

Thumbnails are the asset JPEG with a JPEG COM segment carrying the key inserted after SOI, so each media
item has different (but still valid) JPEG bytes.

The runtime needs no ffmpeg: the assets are committed files. The demo may :func:`render_clip` a clip
instead (ffmpeg draws the camera's name and time on a moving test picture): that clip's file then starts
with the rendered MP4 instead of the asset, and its thumbnail is the rendered first frame.
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
_renders: dict[str, tuple[bytes, bytes]] = {}  # key -> (mp4, jpeg) drawn for that clip (the demo)


@functools.cache
def asset_mp4() -> bytes:
    """The committed ~1 s 160x90 H.264 MP4 (faststart: ftyp, moov, free, mdat)."""
    return (ASSET_DIR / "sample.mp4").read_bytes()


@functools.cache
def asset_jpeg() -> bytes:
    """The committed 160x90 JPEG."""
    return (ASSET_DIR / "sample.jpg").read_bytes()


def min_clip_size(key: str | None = None) -> int:
    """Smallest allowed clip size: asset (or the clip's rendered MP4) + ``free`` box header + 16 bytes."""
    return len(_asset_for(key)) + 8 + _PREFIX


def _asset_for(key: str | None) -> bytes:
    rendered = _renders.get(key) if key is not None else None
    return rendered[0] if rendered else asset_mp4()


def render_clip(caption: str, *, seconds: float = 2.0, hue: float = 0.0) -> tuple[bytes, bytes] | None:
    """Draw a clip: a moving test picture (turned by ``hue`` degrees) with ``caption`` (the camera's name
    and time) burned in, and its first frame as the thumbnail: (mp4, jpeg). None when ffmpeg, its
    drawtext filter or a font is missing. :func:`install_render` makes a clip's key serve it."""
    import subprocess
    import tempfile

    try:
        from archiver.export import find_font, has_drawtext
        from archiver.media.ffmpeg import find_ffmpeg

        ffmpeg = find_ffmpeg()
        font = find_font()
        if font is None or not has_drawtext(ffmpeg):
            return None
    except Exception:
        return None
    with tempfile.TemporaryDirectory(prefix="sim-render-") as tmp:
        folder = Path(tmp)
        (folder / "caption.txt").write_text(caption, encoding="utf-8")
        font_arg = font.replace("\\", "\\\\").replace(":", "\\:").replace("'", "\\'")
        text_arg = str(folder / "caption.txt").replace(":", "\\:")
        graph = (
            f"testsrc2=size=480x270:rate=15:duration={seconds},hue=h={hue},"
            f"drawtext=fontfile={font_arg}:textfile={text_arg}:expansion=none:x=(w-tw)/2:y=(h-th)/2:"
            "fontsize=24:fontcolor=white:box=1:boxcolor=black@0.7:boxborderw=10,split=2[v][t]"
        )
        cmd = [
            ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-y", "-filter_complex", graph,
            "-map", "[v]", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "32", "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", str(folder / "clip.mp4"),
            "-map", "[t]", "-frames:v", "1", str(folder / "thumb.jpg"),
        ]  # fmt: skip
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=60)
            mp4, jpeg = (folder / "clip.mp4").read_bytes(), (folder / "thumb.jpg").read_bytes()
        except (OSError, subprocess.SubprocessError):
            return None
    return mp4, jpeg


def install_render(key: str, rendered: tuple[bytes, bytes]) -> None:
    """Serve ``rendered`` (from :func:`render_clip`) as the clip ``key``'s video and thumbnail; the clip's
    size must leave room for it (:func:`min_clip_size`)."""
    _renders[key] = rendered
    for cached in [k for k in _sha_cache if k[0] == key]:
        del _sha_cache[cached]


def clear_renders() -> None:
    """Forget every rendered clip (the keys of another simulator would otherwise match)."""
    _renders.clear()
    _sha_cache.clear()


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
        if self.size < min_clip_size(self.key):
            raise ValueError(f"clip size {self.size} below minimum {min_clip_size(self.key)}")

    @functools.cached_property
    def header(self) -> bytes:
        """Asset bytes plus the header of the trailing ``free`` box."""
        asset = _asset_for(self.key)
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
    """The asset JPEG with a COM segment naming ``key`` inserted right after SOI (or the rendered one)."""
    rendered = _renders.get(key)
    if rendered:
        return rendered[1]
    jpeg = asset_jpeg()
    comment = f"blink-sim thumbnail {key}".encode()
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment + jpeg[2:]


def thumbnail_sha256(key: str) -> str:
    return hashlib.sha256(thumbnail_bytes(key)).hexdigest()
