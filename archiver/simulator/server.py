"""HTTP layer of the Blink cloud simulator: routing, fault injection and the ``Simulator`` facade.

One ``ThreadingHTTPServer`` on loopback answers every Blink host (OAuth, rest-prod, rest-{tier}); point
all of a client's base URLs at ``Simulator.url``. HTTP/1.1 keep-alive, ``Content-Length`` on every
response, bodies streamed in 64 KiB pieces (optionally bandwidth-capped).

Fault order per request: record start → ``on_request`` hook → ``latency_s`` sleep → (API/media only,
or also auth with ``faults_on_auth``) rate limit 429 → connection reset → 5xx → route. For media downloads
that would answer 200, ``garbage_rate`` and ``truncate_rate`` are drawn afterwards.

Offline sync modules: every local-storage call on an offline module answers HTTP 409
``{"message":"Sync Module is offline","code":1007}`` (not the "busy" message, so clients that retry on
busy do not spin), and commands already issued for it report ``complete: true`` with
``status_code: 999`` (blinkpy treats a non-908 status as a failed command).

Local clip uploads: one in flight per module; "in flight" lasts until the upload command completes
(``command_complete_after_s``); the clip GET answers code 700 until ``upload_delay_s`` after that.
"""

from __future__ import annotations

import collections
import contextlib
import json
import re
import socket
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .common import MEDIA_NOT_FOUND, ApiError
from .knobs import Faults, SimConfig
from .media import ClipBody, asset_jpeg, asset_mp4
from .oauth import SentPin
from .quirks import Cdn, MediaQuirks, gzip_json
from .state import SimState

SESSION_COOKIE = "blink_sim_session"
_CHUNK = 64 * 1024


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

Handler = Callable[["Simulator", Request, "re.Match[str]"], Response]
_ROUTES: list[tuple[str, re.Pattern[str], Handler, str]] = []


def route(method: str, pattern: str, kind: str = "api") -> Callable[[Handler], Handler]:
    """Register a handler; ``kind`` is "auth" (the OAuth sign-in) or "api" (REST and media)."""

    def deco(fn: Handler) -> Handler:
        _ROUTES.append((method, re.compile(pattern + r"/?$"), fn, kind))
        return fn

    return deco


def _is_auth_path(path: str) -> bool:
    return path.startswith("/oauth/")


# ---------------------------------------------------------------------------------------------- OAuth
@route("GET", r"/oauth/v2/authorize", "auth")
def _authorize(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    if req.raw_query:
        sid, location = sim.state.oauth_authorize_start(req.query)
        cookie = f"{SESSION_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax"
        return Response(302, b"", None, {"Location": location, "Set-Cookie": cookie})
    location = sim.state.oauth_authorize_code(req.cookie(SESSION_COOKIE))
    return Response(302, b"", None, {"Location": location})


@route("GET", r"/oauth/v2/signin", "auth")
def _signin_page(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    html = sim.state.oauth_signin_page(req.cookie(SESSION_COOKIE))
    return Response(200, html.encode(), "text/html; charset=utf-8")


@route("POST", r"/oauth/v2/signin", "auth")
def _signin(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    status, body = sim.state.oauth_signin(req.cookie(SESSION_COOKIE), req.form())
    if body is None:
        return Response(status, b"", None, {"Location": "/oauth/v2/authorize"})
    return _two_factor_answer(sim, body, status)


@route("POST", r"/oauth/v2/2fa/verify", "auth")
def _verify_2fa(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    return _two_factor_answer(sim, sim.state.oauth_verify_2fa(req.cookie(SESSION_COOKIE), req.form()), 201)


def _two_factor_answer(sim: Simulator, body: dict[str, Any], status: int) -> Response:
    """A JSON body served with the Content-Type the knob says (the real one is unpublished)."""
    return Response(status, json.dumps(body).encode(), sim.config.two_factor_content_type)


@route("POST", r"/oauth/token", "auth")
def _token(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    data = sim.state.oauth_token(req.form(), req.headers.get("hardware_id"))
    return Response.json(data, headers={"Cache-Control": "no-store"})


# ----------------------------------------------------------------------------------------------- REST
def _authed(sim: Simulator, req: Request, m: re.Match[str] | None = None) -> None:
    auth = req.headers.get("Authorization") or ""
    bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else None
    sim.state.check_auth(bearer)
    if m is not None and "aid" in m.groupdict():
        sim.state.check_account(int(m["aid"]))


@route("GET", r"/api/v1/users/tier_info")
def _tier_info(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    _authed(sim, req)
    return Response.json(sim.state.tier_info())


@route("GET", r"/api/v[34]/accounts/(?P<aid>\d+)/homescreen")
def _homescreen(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    _authed(sim, req, m)
    headers = {"User-Id": str(sim.config.user_id)}
    return Response.json(sim.state.homescreen(), headers=headers)


@route("GET", r"/api/v1/accounts/(?P<aid>\d+)/media/changed")
def _media_changed(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    _authed(sim, req, m)
    try:
        page = int(req.query.get("page", "1") or "1")
    except ValueError:
        raise ApiError(400, {"message": "Invalid page", "code": 400}) from None
    data = sim.state.media_changed(req.query.get("since"), page)
    q = sim.quirks
    headers = {"Date": q.listing_date} if q.listing_date else {}
    if q.listing_padding:
        headers["Content-Encoding"] = "gzip"
        return Response(200, gzip_json(data, q.listing_padding), "application/json", headers)
    return Response.json(data, headers=headers)


def _media_response(req: Request, body: ClipBody) -> Response:
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


@route("GET", r"/api/v2/accounts/(?P<aid>\d+)/media/clip/(?P<mid>\d+)\.mp4")
def _clip(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    _authed(sim, req, m)
    mid, q = int(m["mid"]), sim.quirks
    if mid in q.forbidden_ids:
        raise ApiError(403, {"message": "Forbidden", "code": 403})
    body = sim.state.download_clip(mid)
    if q.redirect_media:
        return Response(302, b"", None, {"Location": f"{sim.cdn.url}/cdn/clip/{mid}.mp4?sig=s1"})
    if mid in q.endless_ids:
        return Response(200, asset_mp4(), "video/mp4", endless=True)
    resp = _media_response(req, body)
    if mid in q.trickle_ids:
        resp.bps = q.trickle_bps
    return resp


@route("GET", r"/api/v2/accounts/(?P<aid>\d+)/media/thumb/(?P<mid>\d+)(?:_s)?(?:\.jpg)?")
def _thumb(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    _authed(sim, req, m)
    mid, q = int(m["mid"]), sim.quirks
    if mid in q.missing_thumbnail_ids:
        raise ApiError(404, {"message": "Not Found", "code": 404})
    body = sim.state.download_thumbnail(mid)
    if q.redirect_media:
        return Response(302, b"", None, {"Location": f"{sim.cdn.url}/cdn/thumb/{mid}.jpg?sig=s1"})
    if mid in q.huge_thumbnail_ids:
        body = asset_jpeg() + b"\0" * q.huge_thumbnail_bytes
    return Response(200, body, "image/jpeg", media=True)


@route("GET", r"/api/v3/media/accounts/(?P<aid>\d+)/networks/\d+/\w+/(?P<cid>\d+)/thumbnail/thumbnail\.jpg")
def _camera_thumb(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    _authed(sim, req, m)
    return Response(200, sim.state.camera_thumbnail(int(m["cid"])), "image/jpeg", media=True)


@route("POST", r"/api/v1/accounts/(?P<aid>\d+)/media/delete")
def _media_delete(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    _authed(sim, req, m)
    data = req.json()
    ids = data.get("media_list") or data.get("media_ids") or []
    if not isinstance(ids, list):
        raise ApiError(400, {"message": "media_list must be a list", "code": 400})
    return Response.json(sim.state.delete_media(ids))


_LS = r"/api/v1/accounts/(?P<aid>\d+)/networks/(?P<nid>\d+)/sync_modules/(?P<sid>\d+)/local_storage"


@route("POST", _LS + r"/manifest/request")
def _ls_manifest_request(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    _authed(sim, req, m)
    return Response.json(sim.state.request_manifest(int(m["nid"]), int(m["sid"])))


@route("GET", _LS + r"/manifest/request/(?P<rid>\d+)")
def _ls_manifest_get(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    _authed(sim, req, m)
    return Response.json(sim.state.get_manifest(int(m["nid"]), int(m["sid"]), int(m["rid"])))


@route("POST", _LS + r"/manifest/(?P<mid>[^/]+)/clip/request/(?P<cid>[^/]+)")
def _ls_clip_request(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    _authed(sim, req, m)
    return Response.json(sim.state.request_local_clip(int(m["nid"]), int(m["sid"]), m["mid"], m["cid"]))


@route("GET", _LS + r"/manifest/(?P<mid>[^/]+)/clip/request/(?P<cid>[^/]+)")
def _ls_clip_get(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    _authed(sim, req, m)
    body = sim.state.download_local_clip(int(m["nid"]), int(m["sid"]), m["mid"], m["cid"])
    return _media_response(req, body)


@route("POST", _LS + r"/manifest/(?P<mid>[^/]+)/clip/delete/(?P<cid>[^/]+)")
def _ls_clip_delete(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    _authed(sim, req, m)
    return Response.json(sim.state.delete_local_clip(int(m["nid"]), int(m["sid"]), m["mid"], m["cid"]))


@route("GET", r"/network/(?P<nid>\d+)/command/(?P<cmd>\d+)")
def _command(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    _authed(sim, req)
    return Response.json(sim.state.command_status(int(m["nid"]), int(m["cmd"])))


@route("POST", r"/network/(?P<nid>\d+)/command/(?P<cmd>\d+)/done")
def _command_done(sim: Simulator, req: Request, m: re.Match[str]) -> Response:
    _authed(sim, req)
    return Response.json(sim.state.command_done(int(m["nid"]), int(m["cmd"])))


# ------------------------------------------------------------------------------------------ the server
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], sim: Simulator) -> None:
        self.sim = sim
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(addr, _HTTPHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.sockets_lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def close_all(self) -> None:
        with self.sockets_lock:
            sockets = list(self.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _HTTPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "BlinkSim/1.0"
    sys_version = ""
    timeout = 30  # idle keep-alive connections are closed after this many seconds
    disable_nagle_algorithm = True  # headers and body are separate writes; avoid the 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def _dispatch(self, method: str) -> None:
        sim = self.server.sim
        started, t0 = time.time(), time.perf_counter()
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        req = Request(
            method,
            parts.path,
            dict(parse_qsl(parts.query, keep_blank_values=True)),
            parts.query,
            self.headers,
            body,
        )
        # Recorded before the response goes out, so a client that has its answer always finds the record.
        record = RequestRecord(method, req.path, req.raw_query, 0, started, 0.0)
        try:
            resp = sim._handle(req)
            if resp is not RESET:
                record.status = resp.status
            record.duration = time.perf_counter() - t0
            sim._record(record)
            if resp is RESET:
                self._reset()
            else:
                self._send(req, resp)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        finally:
            record.duration = time.perf_counter() - t0

    def _reset(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def _trickle(self, data: bytes, bps: float) -> None:
        step = max(1, int(bps / 10))
        for i in range(0, len(data), step):
            self.wfile.write(data[i : i + step])
            self.wfile.flush()
            time.sleep(step / bps)

    def _write(self, pieces: Iterable[bytes], bps: float) -> None:
        for piece in pieces:
            if bps > 0:
                step = max(1024, int(bps / 20))
                for i in range(0, len(piece), step):
                    part = piece[i : i + step]
                    self.wfile.write(part)
                    time.sleep(len(part) / bps)
            else:
                self.wfile.write(piece)

    def _send(self, req: Request, resp: Response) -> None:
        faults = self.server.sim.faults
        start, stop = 0, len(resp.body)
        if resp.stream is not None:
            rng = resp.headers.pop("X-Sim-Range", None)
            start, stop = (int(x) for x in rng.split("-")) if rng else (0, resp.stream.size)

        truncate_at: int | None = None
        if resp.media and resp.status in (200, 206):
            if faults.chance(faults.garbage_rate):
                if faults.chance(0.5):
                    resp = Response.json(MEDIA_NOT_FOUND)
                else:  # the "20-byte file" seen in the wild: valid-looking start, nothing else
                    head = resp.body[:20] if resp.stream is None else b"".join(resp.stream.iter_range(0, 20))
                    resp = Response(200, head, resp.content_type)
                start, stop = 0, len(resp.body)
            elif faults.chance(faults.truncate_rate) and stop - start > 1:
                truncate_at = max(1, int((stop - start) * faults.uniform(0.1, 0.9)))

        if "Date" in resp.headers:  # quirk: a skewed Date header instead of the real one
            self.log_request(resp.status)
            self.send_response_only(resp.status)
            self.send_header("Server", self.version_string())
        else:
            self.send_response(resp.status)
        if resp.content_type:
            self.send_header("Content-Type", resp.content_type)
        for key, value in resp.headers.items():
            self.send_header(key, value)
        if resp.endless:
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(stop - start))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if req.method == "HEAD":
            return
        if resp.endless:  # a valid start, then zeros for ever
            self.wfile.write(resp.body)
            while True:
                self.wfile.write(bytes(_CHUNK))
        if resp.bps:
            self._trickle(
                resp.body if resp.stream is None else b"".join(resp.stream.iter_range(start, stop)), resp.bps
            )
            return
        if resp.stream is not None:
            pieces: Iterator[bytes] = resp.stream.iter_range(start, stop)
        else:
            pieces = (resp.body[i : i + _CHUNK] for i in range(0, len(resp.body), _CHUNK))
        if truncate_at is None:
            self._write(pieces, faults.bandwidth_bps)
            return
        self._write(_take(pieces, truncate_at), faults.bandwidth_bps)
        self.wfile.flush()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def _take(pieces: Iterator[bytes], n: int) -> Iterator[bytes]:
    for piece in pieces:
        if n <= 0:
            return
        yield piece[:n]
        n -= len(piece)


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
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._cdn: Cdn | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> Simulator:
        if self._server is not None:
            return self
        self._server = _Server((self.config.host, self.config.port), self)
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
        for r_method, pattern, fn, kind in _ROUTES:
            m = pattern.match(req.path)
            if m:
                path_known = True
                if r_method == method:
                    match = (fn, m, kind)
                    break
        kind = match[2] if match else ("auth" if _is_auth_path(req.path) else "api")
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
