"""Fetch: stream one Blink file to a staging path, hashing as it goes, and refuse anything that is not
the media it claims to be (JSON error bodies, 20-byte files, truncated bodies, wrong content type)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx

from archiver.blink.http import BlinkHTTP, RetryableError
from archiver.errors import MediaError

Kind = Literal["clip", "thumbnail"]

_EXPECT: dict[str, tuple[tuple[str, ...], str]] = {
    "clip": (("video/mp4", "video/quicktime", "application/octet-stream", "binary/octet-stream"), "MP4"),
    "thumbnail": (("image/jpeg", "image/jpg", "application/octet-stream", "binary/octet-stream"), "JPEG"),
}


def _signature_ok(kind: Kind, head: bytes) -> bool:
    if kind == "clip":
        return len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide")
    return head[:3] == b"\xff\xd8\xff"


@dataclass(frozen=True)
class Fetched:
    path: Path
    size: int
    sha256: str
    content_type: str


class NotFoundUpstream(MediaError):
    """Blink says the media does not exist (404 / code 700). For USB clips: not uploaded yet."""


async def _download_once(http: BlinkHTTP, url: str, dest: Path, kind: Kind, min_bytes: int) -> Fetched:
    what = f"download {kind}"
    allowed, label = _EXPECT[kind]
    async with http.stream("GET", url, what=what) as resp:
        ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
        if resp.status_code in (404, 410) or (resp.status_code == 200 and "json" in ctype):
            body = await resp.aread()
            if b'"code":700' in body.replace(b" ", b"") or resp.status_code != 200:
                raise NotFoundUpstream(f"{what}: Blink says the media is not there (HTTP {resp.status_code})")
            raise RetryableError(f"{what}: Blink sent a JSON error body instead of the {label}")
        if resp.status_code != 200:
            raise MediaError(f"{what}: Blink answered HTTP {resp.status_code}")
        if ctype and ctype not in allowed:
            raise RetryableError(f"{what}: Blink sent {ctype} instead of the {label}")
        expected = resp.headers.get("content-length")
        digest = hashlib.sha256()
        size = 0
        head = b""
        tmp = dest.with_name(dest.name + ".part")
        try:
            with tmp.open("wb") as fh:
                async for chunk in resp.aiter_raw():  # as the socket delivers them: no re-chunking copies
                    if len(head) < 16:
                        head += chunk[: 16 - len(head)]
                    digest.update(chunk)
                    fh.write(chunk)
                    size += len(chunk)
        except httpx.HTTPError as exc:
            tmp.unlink(missing_ok=True)
            raise RetryableError(
                f"{what}: connection lost after {size} bytes ({type(exc).__name__})"
            ) from exc
        if expected is not None and expected.isdigit() and int(expected) != size:
            tmp.unlink(missing_ok=True)
            raise RetryableError(f"{what}: body truncated ({size} of {expected} bytes)")
        if size < min_bytes or not _signature_ok(kind, head):
            tmp.unlink(missing_ok=True)
            raise RetryableError(f"{what}: {size}-byte body is not a valid {label}")
    # No fsync: staging never outlives a crash (it is fetched again), and every destination makes its
    # own copy durable (the disk destination fsyncs the very inode it links).
    os.replace(tmp, dest)
    return Fetched(path=dest, size=size, sha256=digest.hexdigest(), content_type=ctype)


async def download(
    http: BlinkHTTP, url: str, dest: Path, *, kind: Kind, min_bytes: int, attempts: int | None = None
) -> Fetched:
    """Download with the client's retry policy; each attempt starts over (no partial file survives)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    async for attempt in http.retrying(attempts):
        with attempt:
            return await _download_once(http, url, dest, kind, min_bytes)
    raise AssertionError("unreachable")  # pragma: no cover
