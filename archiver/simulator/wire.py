"""The simulator's HTTP vocabulary: a parsed request, the response a route returns (a body, or a media
body streamed with the fault knobs applied), the record of each request, and Range handling for media."""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl

from .common import ApiError
from .media import ClipBody


@dataclass
class RequestRecord:
    method: str
    path: str
    query: str
    status: int  # 0 = connection reset by an injected fault
    started: float  # wall clock (time.time()) when the request line was read
    duration: float  # seconds until the response was written (updated once the body is out)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    raw_query: str
    headers: Any
    body: bytes

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            data = json.loads(self.body)
        except ValueError as exc:
            raise ApiError(400, {"message": "Invalid JSON body", "code": 400}) from exc
        return data if isinstance(data, dict) else {}

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))

    def cookie(self, name: str) -> str | None:
        raw = self.headers.get("Cookie")
        if not raw:
            return None
        jar: SimpleCookie = SimpleCookie()
        with contextlib.suppress(Exception):
            jar.load(raw)
        morsel = jar.get(name)
        return morsel.value if morsel else None


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: ClipBody | None = None  # streamed media body (overrides ``body``)
    media: bool = False  # a media download: eligible for garbage/truncate faults
    bps: float = 0.0  # quirk: this body trickles at this many bytes per second
    endless: bool = False  # quirk: no Content-Length, the body never ends (until the client hangs up)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return cls(status, json.dumps(data).encode(), "application/json", dict(headers or {}))


RESET = Response(0)


def media_response(req: Request, body: ClipBody) -> Response:
    """200 with the whole clip, or 206 for a single ``Range: bytes=a-b``."""
    rng = re.fullmatch(r"bytes=(\d*)-(\d*)", (req.headers.get("Range") or "").strip())
    if rng and (rng[1] or rng[2]):
        if rng[1]:
            start = int(rng[1])
            stop = min(int(rng[2]) + 1, body.size) if rng[2] else body.size
        else:
            start, stop = max(0, body.size - int(rng[2])), body.size
        if start >= body.size or start >= stop:
            return Response(416, b"", None, {"Content-Range": f"bytes */{body.size}"})
        resp = Response(
            206,
            content_type=body.content_type,
            stream=body,
            media=True,
            headers={"Content-Range": f"bytes {start}-{stop - 1}/{body.size}", "Accept-Ranges": "bytes"},
        )
        resp.headers["X-Sim-Range"] = f"{start}-{stop}"
        return resp
    return Response(
        200, content_type=body.content_type, stream=body, media=True, headers={"Accept-Ranges": "bytes"}
    )

