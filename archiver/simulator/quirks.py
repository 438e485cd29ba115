"""Media, listing and USB behaviours of the real Blink service (and of hostile servers) the simulator
can show: every knob off by default, mutable while the server runs (``sim.quirks``).

The CDN: ``redirect_media`` makes clip and thumbnail GETs answer 302 to a second loopback origin (a
pre-signed URL as a CDN would serve it). That origin serves the bytes, but refuses (403) any request
that carries the Blink token or cookies, and records it in ``Cdn.refused`` so a test can prove none
was ever sent off Blink's hosts.
"""

from __future__ import annotations

import gzip
import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Simulator
    from .wire import Request, Response

AUTH_HEADERS = ("authorization", "token-auth", "token_auth", "cookie")


@dataclass
class MediaQuirks:
    # -- the cloud listing (media/changed) -----------------------------------------------------------
    listing_date: str | None = None  # the Date header of every listing answer (a skewed edge or proxy)
    duplicate_items: bool = False  # each page lists its first item twice (the second one newer)
    malformed_items: list[Any] = field(default_factory=list)  # raw items added to page 1 as they are
    null_fields: bool = False  # optional item fields answered as null
    short_pages: int | None = None  # serve this many items per page while `limit` says page_limit
    endless_listing: bool = False  # every page number answers with page 1 again: never an empty page
    listing_padding: int = 0  # whitespace bytes in each listing answer, sent gzip-compressed
    partial_ids: set[int] = field(default_factory=set)  # listed with partial: true
    # -- cloud media -------------------------------------------------------------------------------
    forbidden_ids: set[int] = field(default_factory=set)  # clip GET answers 403
    missing_thumbnail_ids: set[int] = field(default_factory=set)  # thumbnail GET answers 404
    huge_thumbnail_ids: set[int] = field(default_factory=set)  # thumbnail of huge_thumbnail_bytes
    huge_thumbnail_bytes: int = 2 * 1024 * 1024
    redirect_media: bool = False  # clip and thumbnail GETs answer 302 to the CDN origin
    trickle_ids: set[int] = field(default_factory=set)  # these clip bodies trickle at trickle_bps
    trickle_bps: float = 200.0
    endless_ids: set[int] = field(default_factory=set)  # these clip bodies never end (no length)
    # -- the homescreen ----------------------------------------------------------------------------
    # raw items added as they are to a homescreen list ("networks", "sync_modules", "cameras", "owls",
    # "doorbells"): an id past 2**63, negative, a string or missing, as a hostile or changed server sends
    homescreen_items: dict[str, list[Any]] = field(default_factory=dict)
    # -- USB ---------------------------------------------------------------------------------------
    usb_not_found_status: int = 404  # HTTP status of "Media not found" (code 700): 404, 400, 409, 200
    hostile_manifest_ids: list[str] = field(default_factory=list)  # extra manifest entries' ids
    malformed_manifest_entries: list[Any] = field(default_factory=list)  # raw entries added as they are
    # -- cloud cleanup -----------------------------------------------------------------------------
    delete_count: bool = True  # media/delete answers with deleted_count


def gzip_json(data: Any, padding: int) -> bytes:
    """JSON with ``padding`` spaces inside, gzip-compressed (a small answer that inflates a lot)."""
    text = json.dumps(data)
    return gzip.compress((text[:-1] + " " * padding + text[-1]).encode(), compresslevel=9)


class Cdn:
    """The second origin of ``redirect_media``: serves the media, refuses any auth header or cookie."""

    def __init__(self, sim: Simulator) -> None:
        from .httpd import LoopbackServer
        from .knobs import Faults

        self.sim = sim
        self.faults = Faults()
        self.refused: list[tuple[str, list[str]]] = []  # (path, auth header names) of refused requests
        self.served: list[str] = []
        self._lock = threading.Lock()
        self._server = LoopbackServer((sim.config.host, 0), self)  # type: ignore[arg-type]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name="sim-cdn"
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.sim.config.host}:{self._server.server_address[1]}"

    def _record(self, record: Any) -> None:
        pass

    def _handle(self, req: Request) -> Response:
        from .wire import Response, media_response

        carried = [h for h in AUTH_HEADERS if req.headers.get(h)]
        if carried:
            with self._lock:
                self.refused.append((req.path, carried))
            return Response(403, b"<Error><Code>AccessDenied</Code></Error>", "application/xml")
        with self._lock:
            self.served.append(req.path)
        parts = req.path.strip("/").split("/")
        try:
            kind, name = parts[1], parts[2]
            media_id = int(name.split(".")[0])
        except (IndexError, ValueError):
            return Response(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
        state = self.sim.state
        if kind == "clip":
            return media_response(req, state.clip_body(media_id))
        return Response(200, state.thumbnail_bytes(media_id), "image/jpeg", media=True)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.close_all()
        self._server.server_close()
        self._thread.join(timeout=5)
