"""Fetch: stream one Blink file to a staging path, hashing as it goes, and refuse anything that is not
the media it claims to be (JSON error bodies, 20-byte files, truncated bodies, wrong content type).

Bounds (``[limits]``): a size cap per kind (counted while streaming, after decompression) and a
wall-clock deadline that grows with the body (``download_grace_s`` + size / ``min_download_bytes_per_s``),
so a trickled or endless body fails its clip instead of hanging the sync."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import httpx

from archiver.blink.api import media_not_found
from archiver.blink.http import BlinkHTTP, RetryableError
from archiver.config import LimitsSettings
from archiver.db.models import Clip
from archiver.errors import ArchiverError, AuthError, MediaError
from archiver.media.probe import looks_like_jpeg, starts_like_mp4
from archiver.util import as_utc

log = logging.getLogger("archiver.fetch")

Kind = Literal["clip", "thumbnail"]

_EXPECT: dict[str, tuple[tuple[str, ...], str]] = {
    "clip": (("video/mp4", "video/quicktime", "application/octet-stream", "binary/octet-stream"), "MP4"),
    "thumbnail": (("image/jpeg", "image/jpg", "application/octet-stream", "binary/octet-stream"), "JPEG"),
}


def _signature_ok(kind: Kind, head: bytes) -> bool:
    return starts_like_mp4(head) if kind == "clip" else looks_like_jpeg(head)


@dataclass(frozen=True)
class Fetched:
    path: Path
    size: int
    sha256: str
    content_type: str


class NotFoundUpstream(MediaError):
    """Blink says the media does not exist (404 / code 700). For USB clips: not uploaded yet."""


class TooSlow(MediaError):
    """The body did not arrive within its deadline (trickled or stalled): that clip fails this run."""


class TooLarge(MediaError):
    """The body is over its size cap: that clip fails (a thumbnail is replaced by a generated one)."""


def deadline_for(size: int, limits: LimitsSettings) -> float:
    """Seconds a body of ``size`` bytes may take: a fixed grace plus its size at the minimum rate."""
    return limits.download_grace_s + max(size, 0) / limits.min_download_bytes_per_s


def cap_for(kind: Kind, limits: LimitsSettings) -> int:
    return limits.max_clip_bytes if kind == "clip" else limits.max_thumbnail_bytes


async def _download_once(
    http: BlinkHTTP, url: str | httpx.URL, dest: Path, kind: Kind, min_bytes: int, limits: LimitsSettings
) -> Fetched:
    what = f"download {kind}"
    async with http.stream("GET", url, what=what, headers={"Accept-Encoding": "identity"}) as resp:
        # from the first byte of the answer on, the body runs under a deadline that grows with it
        started = asyncio.get_running_loop().time()
        async with asyncio.timeout_at(started + deadline_for(0, limits)) as budget:
            size, digest, ctype = await _receive(resp, dest, kind, min_bytes, what, limits, budget)
    # Written in place, no fsync: a failed attempt removes its file, staging never outlives a crash (it
    # is fetched again), and every destination makes its own copy durable (the disk destination fsyncs
    # the very inode it links).
    return Fetched(path=dest, size=size, sha256=digest, content_type=ctype)


async def _receive(
    resp: httpx.Response,
    dest: Path,
    kind: Kind,
    min_bytes: int,
    what: str,
    limits: LimitsSettings,
    budget: asyncio.Timeout,
) -> tuple[int, str, str]:
    """Check the answer and stream its body to ``dest`` (removed again on failure): (size, sha256,
    content type)."""
    allowed, label = _EXPECT[kind]
    cap = cap_for(kind, limits)
    started = asyncio.get_running_loop().time()
    ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
    if resp.status_code != 200 or "json" in ctype:
        body = b""
        try:
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > 65536:
                    break
        except httpx.HTTPError:
            pass
        if media_not_found(resp.status_code, body):
            raise NotFoundUpstream(f"{what}: Blink says the media is not there (HTTP {resp.status_code})")
        if resp.status_code == 200:
            raise RetryableError(f"{what}: Blink sent a JSON error body instead of the {label}")
        raise MediaError(f"{what}: Blink answered HTTP {resp.status_code}")
    if ctype and ctype not in allowed:
        raise RetryableError(f"{what}: Blink sent {ctype} instead of the {label}")
    declared = resp.headers.get("content-length")
    expected = int(declared) if declared and declared.isdigit() else None
    if "content-encoding" in resp.headers:
        expected = None  # the header counts compressed bytes
    if expected is not None and expected > cap:
        raise TooLarge(f"{what}: {expected:,} bytes is over the {cap:,}-byte limit")
    budget.reschedule(started + deadline_for(expected or 0, limits))
    digest = hashlib.sha256()
    size = 0
    head = b""
    try:
        with open(dest, "wb") as fh:
            async for chunk in resp.aiter_bytes():  # as they arrive: no re-chunking copies, little memory
                if len(head) < 16:
                    head += chunk[: 16 - len(head)]
                size += len(chunk)
                if size > cap:
                    raise TooLarge(f"{what}: body is over the {cap:,}-byte limit")
                digest.update(chunk)
                fh.write(chunk)
                # the deadline follows what has arrived (a body of unknown length gets longer); while
                # no more than the declared length has come, it is the one set above
                if size > (expected or 0):
                    budget.reschedule(started + deadline_for(size, limits))
    except httpx.HTTPError as exc:
        dest.unlink(missing_ok=True)
        raise RetryableError(f"{what}: connection lost after {size} bytes ({type(exc).__name__})") from exc
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    if expected is not None and expected != size:
        dest.unlink(missing_ok=True)
        raise RetryableError(f"{what}: body truncated ({size} of {expected} bytes)")
    if size < min_bytes or not _signature_ok(kind, head):
        small = dest.read_bytes() if size <= 65536 else b""
        dest.unlink(missing_ok=True)
        if small and media_not_found(200, small):  # code 700 in a 200 with no JSON type
            raise NotFoundUpstream(f"{what}: Blink says the media is not there (HTTP 200)")
        raise RetryableError(f"{what}: {size}-byte body is not a valid {label}")
    return size, digest.hexdigest(), ctype


async def download(
    http: BlinkHTTP,
    url: str | httpx.URL,
    dest: Path,
    *,
    kind: Kind,
    min_bytes: int,
    attempts: int | None = None,
) -> Fetched:
    """Download into ``dest`` (its folder exists: the clip's staging folder) with the client's retry
    policy; each attempt starts over (no partial file survives). A body over its deadline or cap is not
    retried: the clip fails this run and is tried next run."""
    limits = http.limits
    async for attempt in http.retrying(attempts):
        with attempt:
            started = time.monotonic()
            try:
                return await _download_once(http, url, dest, kind, min_bytes, limits)
            except TimeoutError:
                dest.unlink(missing_ok=True)
                raise TooSlow(
                    f"download {kind}: too slow, stopped after {time.monotonic() - started:.0f} s "
                    f"(limits.min_download_bytes_per_s = {limits.min_download_bytes_per_s:g})"
                ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def partial_ready(clip: Clip, grace: timedelta, now: datetime | None = None) -> bool:
    """When to fetch: a clip Blink lists as ``partial`` once it is older than ``grace`` (Blink may never
    clear the flag); any other clip at once."""
    if not clip.partial:
        return True
    now = now or datetime.now(UTC)
    try:
        return now - grace >= as_utc(clip.created_at)
    except OverflowError:
        return True


@dataclass(frozen=True)
class Thumbnail:
    fetched: Fetched | None  # None: a generated thumbnail stands in
    error: str | None = None  # why Blink's could not be used


async def fetch_thumbnail(http: BlinkHTTP, url: httpx.URL, dest: Path) -> Thumbnail:
    """Blink's thumbnail, or why not. Never fails the clip: a thumbnail that cannot be fetched (404,
    403, too big, not a JPEG, an unusable URL) is replaced by a generated one. Auth failures still
    stop the run."""
    try:
        try:
            return Thumbnail(await download(http, url, dest, kind="thumbnail", min_bytes=64))
        except NotFoundUpstream:
            if url.path.endswith(".jpg"):
                raise
            # recorded thumbnail paths have no extension; some servers want ".jpg" appended
            alt = url.copy_with(path=url.path + ".jpg")
            return Thumbnail(await download(http, alt, dest, kind="thumbnail", min_bytes=64))
    except AuthError:
        raise
    except (ArchiverError, httpx.HTTPError, OSError) as exc:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        log.warning("thumbnail unavailable (%s); a generated one is used", text)
        return Thumbnail(None, text)
