"""The HTTP server under the simulator: a ``ThreadingHTTPServer`` on loopback (HTTP/1.1 keep-alive,
``Content-Length`` on every response, bodies streamed in 64 KiB pieces, optionally bandwidth-capped) whose
handler turns each request into a ``Request``, asks the simulator for a ``Response`` and writes it,
applying the garbage and truncate faults to media bodies."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from .common import MEDIA_NOT_FOUND
from .wire import RESET, Request, RequestRecord, Response

if TYPE_CHECKING:
    from .server import Simulator

_CHUNK = 64 * 1024


class LoopbackServer(ThreadingHTTPServer):
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
    server: LoopbackServer

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
