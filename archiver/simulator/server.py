"""The ``Simulator`` facade: it starts the HTTP server (``httpd.py``), applies the fault knobs to each
request and dispatches it to the routes (``routes.py``), which answer from the model (``state.py``).

One ``ThreadingHTTPServer`` on loopback answers every Blink host (OAuth, rest-prod, rest-{tier}); point
all of a client's base URLs at ``Simulator.url``. HTTP/1.1 keep-alive, ``Content-Length`` on every
response, bodies streamed in 64 KiB pieces (optionally bandwidth-capped).

Fault order per request: ``on_request`` hook → ``latency_s`` sleep → (API/media only, or also auth with
``faults_on_auth``) rate limit 429 → connection reset → 5xx → route. For media downloads that would answer
200, ``garbage_rate`` and ``truncate_rate`` are drawn afterwards. A request is recorded once it is
answered, so ``request_count`` does not count one the hook is still holding.

Offline sync modules: every local-storage call on an offline module answers HTTP 409
``{"message":"Sync Module is offline","code":1007}`` (not the "busy" message, so clients that retry on
busy do not spin), and commands already issued for it report ``complete: true`` with
``status_code: 999`` (blinkpy treats a non-908 status as a failed command).

Local clip uploads: one in flight per module; "in flight" lasts until the upload command completes
(``command_complete_after_s``); the clip GET answers code 700 until ``upload_delay_s`` after that.
"""

from __future__ import annotations

import collections
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .common import ApiError
from .httpd import LoopbackServer
from .knobs import Faults, SimConfig
from .oauth import SentPin
from .quirks import Cdn, MediaQuirks
from .routes import ROUTES, Handler, is_auth_path
from .state import SimState
from .wire import RESET, Request, RequestRecord, Response

__all__ = ["Request", "RequestRecord", "Response", "Simulator"]


# ------------------------------------------------------------------------------------------ the facade
class Simulator:
    """A stateful fake Blink cloud on loopback. See the module docstring for the fault model."""

    def __init__(self, config: SimConfig | None = None, faults: Faults | None = None) -> None:
        self.config = config or SimConfig()
        self._faults = faults or Faults()
        self.state = SimState(self.config, self._faults)
        self.requests: list[RequestRecord] = []
        self.on_request: Callable[[str, str], Any] | None = None
        self._records_lock = threading.Lock()
        self._rate_window: collections.deque[float] = collections.deque()
        self._rate_lock = threading.Lock()
        self._server: LoopbackServer | None = None
        self._thread: threading.Thread | None = None
        self._cdn: Cdn | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> Simulator:
        if self._server is not None:
            return self
        self._server = LoopbackServer((self.config.host, self.config.port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="blink-simulator",
            daemon=True,
        )
        self._thread.start()
        return self

    @property
    def quirks(self) -> MediaQuirks:
        """Media, listing and USB behaviours of the real service (see quirks.py)."""
        return self.state.quirks

    @property
    def cdn(self) -> Cdn:
        """The second origin ``quirks.redirect_media`` sends media GETs to (started on first use)."""
        with self._records_lock:
            if self._cdn is None:
                self._cdn = Cdn(self)
            return self._cdn

    def stop(self) -> None:
        cdn, self._cdn = self._cdn, None
        if cdn is not None:
            cdn.stop()
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_all()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("simulator not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    # ---------------------------------------------------------------- faults and records
    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        self._faults = value
        self.state.faults = value

    def _record(self, record: RequestRecord) -> None:
        with self._records_lock:
            self.requests.append(record)

    def request_count(self, path_contains: str | None = None, method: str | None = None) -> int:
        with self._records_lock:
            return sum(
                1
                for r in self.requests
                if (path_contains is None or path_contains in r.path)
                and (method is None or r.method == method.upper())
            )

    def reset_requests(self) -> None:
        with self._records_lock:
            self.requests.clear()

    def _rate_limited(self) -> bool:
        rps = self.faults.rate_limit_rps
        if rps <= 0:
            return False
        now = time.monotonic()
        with self._rate_lock:
            while self._rate_window and now - self._rate_window[0] >= 1.0:
                self._rate_window.popleft()
            if len(self._rate_window) >= rps:
                return True
            self._rate_window.append(now)
            return False

    def _handle(self, req: Request) -> Response:
        hook = self.on_request
        if hook is not None:
            try:
                hook(req.method, req.path)
            except Exception:
                traceback.print_exc(file=sys.stderr)
        faults = self.faults
        if faults.latency_s > 0:
            time.sleep(faults.latency_s)
        method = "GET" if req.method == "HEAD" else req.method
        match: tuple[Handler, re.Match[str], str] | None = None
        path_known = False
        for r_method, pattern, fn, kind in ROUTES:
            m = pattern.match(req.path)
            if m:
                path_known = True
                if r_method == method:
                    match = (fn, m, kind)
                    break
        kind = match[2] if match else ("auth" if is_auth_path(req.path) else "api")
        if kind == "api" or faults.faults_on_auth:
            if self._rate_limited():
                retry = max(1, int(faults.retry_after_s + 0.999))
                return Response.json(
                    {"message": "Too Many Requests", "code": 429}, 429, {"Retry-After": str(retry)}
                )
            if faults.chance(faults.reset_rate):
                return RESET
            if faults.chance(faults.error_rate):
                status = faults.choice([500, 502, 503])
                if status == 502:
                    return Response(502, b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html")
                return Response.json({"message": "Internal Server Error", "code": status}, status)
        if match is None:
            if path_known:
                return Response.json({"message": "Method Not Allowed", "code": 405}, 405)
            return Response.json({"message": "Not Found", "code": 404}, 404)
        fn, m, _ = match
        try:
            return fn(self, req, m)
        except ApiError as err:
            if isinstance(err.body, str):
                return Response(err.status, err.body.encode(), err.content_type or "text/plain", err.headers)
            return Response.json(err.body, err.status, err.headers)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return Response.json({"message": "Simulator error", "code": 500}, 500)

    # ---------------------------------------------------------------- world building (delegates)
    def add_network(self, name: str, time_zone: str = "America/Chicago") -> int:
        return self.state.add_network(name, time_zone)

    def add_camera(self, network_id: int, name: str, type: str = "catalina") -> int:
        return self.state.add_camera(network_id, name, type)

    def add_sync_module(
        self, network_id: int, name: str = "SM2", local_storage: bool = True, online: bool = True
    ) -> int:
        return self.state.add_sync_module(network_id, name, local_storage, online)

    def add_clip(self, camera_id: int, created_at: datetime | None = None, size: int = 200_000) -> int:
        return self.state.add_clip(camera_id, created_at, size)

    def add_clips(self, camera_id: int, n: int, size: int = 200_000) -> list[int]:
        return self.state.add_clips(camera_id, n, size)

    def add_local_clip(
        self, sync_module_id: int, camera_id: int, created_at: datetime | None = None, size: int = 150_000
    ) -> str:
        return self.state.add_local_clip(sync_module_id, camera_id, created_at, size)

    def delete_clip(self, media_id: int) -> None:
        self.state.delete_clip(media_id)

    def forget_oldest_clips(self, n: int) -> list[int]:
        return self.state.forget_oldest_clips(n)

    def remove_camera(self, camera_id: int) -> None:
        self.state.remove_camera(camera_id)

    def set_sync_module_online(self, sync_module_id: int, online: bool) -> None:
        self.state.set_sync_module_online(sync_module_id, online)

    def renumber_local_clips(self, sync_module_id: int) -> None:
        self.state.renumber_local_clips(sync_module_id)

    def expire_tokens(self) -> None:
        self.state.expire_tokens()

    # ---------------------------------------------------------------- expected bytes
    def clip_bytes(self, media_id: int) -> bytes:
        return self.state.clip_body(media_id).read()

    def clip_sha256(self, media_id: int) -> str:
        return self.state.clip_body(media_id).sha256()

    def clip_size(self, media_id: int) -> int:
        return self.state.clip_body(media_id).size

    def thumbnail_bytes(self, media_id: int) -> bytes:
        return self.state.thumbnail_bytes(media_id)

    def thumbnail_sha256(self, media_id: int) -> str:
        return self.state.thumbnail_sha256(media_id)

    def local_clip_bytes(self, clip_id: str) -> bytes:
        return self.state.local_clip_body(clip_id).read()

    def local_clip_sha256(self, clip_id: str) -> str:
        return self.state.local_clip_body(clip_id).sha256()

    # ---------------------------------------------------------------- counters
    @property
    def login_count(self) -> int:
        return self.state.login_count

    @property
    def refresh_count(self) -> int:
        return self.state.refresh_count

    @property
    def refresh_attempts(self) -> int:
        """Every refresh POST, refused or not."""
        return self.state.refresh_attempts

    @property
    def edge_refusals(self) -> list[str]:
        """The OAuth steps ``config.edge_block`` answered with Cloudflare's 406, in order."""
        return list(self.state.edge_refusals)

    @property
    def sent_pins(self) -> list[SentPin]:
        """Every PIN "texted" so far, oldest first (a test reads them the way a user reads an SMS)."""
        return list(self.state.sent_pins)

    def last_pin(self) -> str | None:
        return self.state.last_pin()

    @property
    def deleted_cloud_ids(self) -> set[int]:
        return self.state.deleted_cloud_ids

    @property
    def deleted_local_ids(self) -> set[str]:
        return self.state.deleted_local_ids
