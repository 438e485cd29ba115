"""Serving archived objects: looked up by clip id and kind in the database, read from a configured
destination through the Destination interface only: a copy whose :meth:`~Destination.location` is a local
file is served as that file (FileResponse answers Range itself); any other copy is streamed from
:meth:`~Destination.open` with the Range passed on (206, or 416 when unsatisfiable). The request never
names a file."""

from __future__ import annotations

import itertools
import json
import mimetypes
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response, StreamingResponse

from archiver.destinations.base import Destination, check_key, read_all
from archiver.web.queries import MediaObject

CACHE = "private, max-age=31536000, immutable"  # an object's bytes never change (sha256 ETag)
SIDECAR_MAX = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def content_type(key: str) -> str:
    guessed = mimetypes.guess_type(key)[0]
    if key.endswith(".webp"):
        return "image/webp"
    return guessed or "application/octet-stream"


class Refused(Exception):
    """The destination refuses the key (it would leave its root): that copy is never served."""


def local_path(dest: Destination, key: str) -> Path | None:
    """The object's local file when the destination names one (``location`` is a path), else None (the
    object is then read through ``open``); raises Refused for a key the destination will not serve.
    Whether the file is there is the caller's question."""
    try:
        where = dest.location(check_key(key, dest.name))
    except Exception as exc:  # an unsafe key, or a link out of the root
        raise Refused(str(exc)) from None
    return Path(where) if where is not None and where.startswith("/") else None


def _is_remote(dest: Destination, key: str) -> bool:
    try:
        return local_path(dest, key) is None
    except Refused:
        return True


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
    """Finds and serves an object from the configured destinations (local copies first)."""

    def __init__(self, destinations: list[Destination]) -> None:
        self.destinations = {d.name: d for d in destinations}

    def _order(self, objects: list[MediaObject]) -> list[tuple[MediaObject, Destination]]:
        found = [(o, self.destinations[o.destination]) for o in objects if o.destination in self.destinations]
        return sorted(found, key=lambda od: _is_remote(od[1], od[0].key))

    def response(
        self, request: Request, objects: list[MediaObject], *, download_name: str | None = None
    ) -> Response:
        """The first copy that can be read; 404 when none can, 502 when a copy exists but its
        destination fails. ETag = the object's sha256. Blocking: run it in a worker thread."""
        failed = False
        for obj, dest in self._order(objects):
            etag = f'"{obj.sha256}"'
            headers = {"ETag": etag, "Cache-Control": CACHE, "X-Content-Type-Options": "nosniff"}
            if download_name:
                headers["Content-Disposition"] = _attachment(download_name)
            inm = request.headers.get("if-none-match")
            if inm and etag in [t.strip() for t in inm.split(",")]:
                return Response(status_code=304, headers=headers)
            try:
                path = local_path(dest, obj.key)
            except Refused:
                continue
            if path is not None:
                if not path.is_file():
                    continue  # a local copy that is not there: the next copy
                return FileResponse(path, headers=headers, media_type=content_type(obj.key))
            answer = self._streamed(request, dest, obj, headers)
            if answer is not None:
                return answer
            failed = True
        if failed:
            return PlainTextResponse("not available from storage\n", status_code=502)
        return PlainTextResponse("not found\n", status_code=404)

    def _streamed(
        self, request: Request, dest: Destination, obj: MediaObject, headers: dict[str, str]
    ) -> Response | None:
        """The object (or the asked range of it) from ``dest.open``; None when it cannot be read."""
        size = obj.size
        rng = parse_range(request.headers.get("range"), size)
        if request.headers.get("if-range") and request.headers.get("if-range") != headers["ETag"]:
            rng = None
        headers = {**headers, "Accept-Ranges": "bytes"}
        if rng is False:
            return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
        start, end, status = 0, None, 200
        if isinstance(rng, tuple):
            start, end = rng[0], rng[1] + 1
            headers["Content-Range"] = f"bytes {rng[0]}-{rng[1]}/{size}"
            headers["Content-Length"] = str(rng[1] - rng[0] + 1)
            status = 206
        else:
            headers["Content-Length"] = str(size)
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers, media_type=content_type(obj.key))
        try:  # the first chunk here: a missing object or a failing backend is known before the headers
            chunks = dest.open(obj.key, start, end)
            first = next(chunks, b"")
        except Exception:
            return None
        body: Iterator[bytes] = itertools.chain((first,), chunks)
        return StreamingResponse(
            iterate_in_threadpool(_closing(body, chunks)),
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
                doc = json.loads(read_all(dest, check_key(obj.key, dest.name)))
            except Exception:
                continue
            return doc if isinstance(doc, dict) else None
        return None


def _closing(body: Iterator[bytes], source: Iterator[bytes]) -> Iterator[bytes]:
    """``body``'s chunks; the destination's reader is closed however the response ends."""
    try:
        yield from body
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


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
