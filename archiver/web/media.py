"""Serving archived objects: looked up by clip id and kind in the database, read from a configured
destination (a folder: the file, after checking it resolves inside the root; S3: a proxied GET that
passes the Range on). The request never names a file."""

from __future__ import annotations

import json
import mimetypes
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response, StreamingResponse

from archiver.destinations.base import Destination, DestinationError, check_key
from archiver.destinations.disk import DiskDestination
from archiver.web.queries import MediaObject

if TYPE_CHECKING:
    from archiver.destinations.s3 import S3Destination

CACHE = "private, max-age=31536000, immutable"  # an object's bytes never change (sha256 ETag)
CHUNK = 256 * 1024
SIDECAR_MAX = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def content_type(key: str) -> str:
    guessed = mimetypes.guess_type(key)[0]
    if key.endswith(".webp"):
        return "image/webp"
    return guessed or "application/octet-stream"


def disk_path(dest: DiskDestination, key: str) -> Path | None:
    """The object's file, only when it resolves to a regular file inside the destination root."""
    try:
        check_key(key, dest.name)
    except DestinationError:
        return None
    root = dest.root.resolve()
    path = root.joinpath(*key.split("/")).resolve()
    if not path.is_relative_to(root) or path == root or not path.is_file():
        return None
    return path


def _as_s3(dest: Destination) -> S3Destination | None:
    if isinstance(dest, DiskDestination):
        return None
    from archiver.destinations.s3 import S3Destination  # boto3 is loaded already when S3 is configured

    return dest if isinstance(dest, S3Destination) else None


def parse_range(header: str | None, size: int) -> tuple[int, int] | bool | None:
    """One ``bytes=a-b`` range as (start, end inclusive); None = whole object; False = unsatisfiable."""
    if not header:
        return None
    m = _RANGE.match(header.strip())
    if not m or (not m[1] and not m[2]):
        return None  # several ranges or garbage: answer with the whole object (allowed by RFC 9110)
    if not m[1]:  # suffix: the last N bytes
        n = int(m[2])
        if n == 0:
            return False
        return max(0, size - n), size - 1
    start = int(m[1])
    end = int(m[2]) if m[2] else size - 1
    if start >= size or end < start:
        return False
    return start, min(end, size - 1)


class MediaReader:
    """Finds and serves an object from the configured destinations (disk preferred to S3)."""

    def __init__(self, destinations: list[Destination]) -> None:
        self.destinations = {d.name: d for d in destinations}

    def _order(self, objects: list[MediaObject]) -> list[tuple[MediaObject, Destination]]:
        found = [(o, self.destinations[o.destination]) for o in objects if o.destination in self.destinations]
        return sorted(found, key=lambda od: 0 if isinstance(od[1], DiskDestination) else 1)

    def response(
        self, request: Request, objects: list[MediaObject], *, download_name: str | None = None
    ) -> Response:
        """The first copy that can be read; 404 when none can. ETag = the object's sha256."""
        for obj, dest in self._order(objects):
            etag = f'"{obj.sha256}"'
            headers = {"ETag": etag, "Cache-Control": CACHE, "X-Content-Type-Options": "nosniff"}
            if download_name:
                headers["Content-Disposition"] = _attachment(download_name)
            inm = request.headers.get("if-none-match")
            if inm and etag in [t.strip() for t in inm.split(",")]:
                return Response(status_code=304, headers=headers)
            if isinstance(dest, DiskDestination):
                path = disk_path(dest, obj.key)
                if path is None:
                    continue
                return FileResponse(path, headers=headers, media_type=content_type(obj.key))
            s3 = _as_s3(dest)
            if s3 is not None:
                return self._s3(request, s3, obj, headers)
        return PlainTextResponse("not found\n", status_code=404)

    def _s3(
        self, request: Request, dest: S3Destination, obj: MediaObject, headers: dict[str, str]
    ) -> Response:
        size = obj.size
        rng = parse_range(request.headers.get("range"), size)
        if request.headers.get("if-range") and request.headers.get("if-range") != headers["ETag"]:
            rng = None
        headers = {**headers, "Accept-Ranges": "bytes"}
        if rng is False:
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        key = dest.prefix + check_key(obj.key, dest.name)
        extra: dict[str, str] = {}
        status = 200
        if isinstance(rng, tuple):
            start, end = rng
            extra["Range"] = f"bytes={start}-{end}"
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            headers["Content-Length"] = str(end - start + 1)
            status = 206
        else:
            headers["Content-Length"] = str(size)
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers, media_type=content_type(obj.key))
        try:
            got = dest.client.get_object(Bucket=dest.bucket, Key=key, **extra)
        except Exception:
            return PlainTextResponse("not available from storage\n", status_code=502)
        body = got["Body"]

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(CHUNK)
            finally:
                body.close()

        return StreamingResponse(
            iterate_in_threadpool(chunks()),
            status_code=status,
            headers=headers,
            media_type=content_type(obj.key),
        )

    async def read_json(self, objects: list[MediaObject]) -> dict[str, Any] | None:
        return await run_in_threadpool(self._read_json, objects)

    def _read_json(self, objects: list[MediaObject]) -> dict[str, Any] | None:
        for obj, dest in self._order(objects):
            if obj.size > SIDECAR_MAX:
                return None
            try:
                if isinstance(dest, DiskDestination):
                    path = disk_path(dest, obj.key)
                    if path is None:
                        continue
                    data = path.read_bytes()[:SIDECAR_MAX]
                elif (s3 := _as_s3(dest)) is not None:
                    key = s3.prefix + check_key(obj.key, s3.name)
                    data = s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"].read(SIDECAR_MAX)
                else:
                    continue
                doc = json.loads(data)
            except Exception:
                continue
            return doc if isinstance(doc, dict) else None
        return None


def _attachment(name: str) -> str:
    from urllib.parse import quote

    ascii_name = re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "clip"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"


def flatten(doc: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Sidecar fields as (name, text) rows; the per-file list is shown elsewhere."""
    out: list[tuple[str, str]] = []
    for k, v in doc.items():
        name = f"{prefix}{k}"
        if not prefix and k == "files":
            continue
        if any(word in k.lower() for word in ("token", "password", "secret", "url")):
            continue
        if isinstance(v, dict):
            out += flatten(v, f"{name}.")
        elif v is not None:
            out.append((name, str(v)[:300]))
    return out
