"""Running the app on uvicorn, with bounds: at most ``max_connections`` open connections (a new one
evicts the oldest idle one, so idle sockets can neither starve the probes nor exhaust file descriptors),
and a deadline for each request's headers and for idle keep-alive (``timeout_s``)."""

from __future__ import annotations

import asyncio
import errno
import logging
import signal
import socket
import threading
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from archiver.config import ServerSettings
from archiver.errors import ConfigError
from archiver.web.security import check_bind

log = logging.getLogger("archiver.web")


def bounded_protocol(max_connections: int, request_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol (its documented ``http`` class option) plus a connection cap and a
    request-header deadline."""

    class BoundedH11Protocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.opened_at = self.loop.time()
            self.armed_cycle: Any = None
            self.deadline: asyncio.TimerHandle | None = self.loop.call_later(
                request_timeout, self.request_deadline
            )
            live = [c for c in self.connections if not c.transport.is_closing()]
            if len(live) > max_connections:
                idle = [c for c in live if c is not self and _idle(c)]
                victim = min(idle, key=lambda c: getattr(c, "opened_at", 0.0)) if idle else self
                victim.transport.close()

        def request_deadline(self) -> None:
            """No (new) request within the deadline: close; a response in progress is never cut."""
            if self.cycle is self.armed_cycle and _idle(self) and not self.transport.is_closing():
                self.transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.deadline is not None:
                self.deadline.cancel()
            self.armed_cycle = self.cycle
            self.deadline = self.loop.call_later(request_timeout, self.request_deadline)

        def connection_lost(self, exc: Exception | None) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
            super().connection_lost(exc)

    return BoundedH11Protocol


def _idle(conn: Any) -> bool:
    cycle = getattr(conn, "cycle", None)
    return cycle is None or bool(cycle.response_complete)


def _ignore(signum: int, frame: object) -> None:
    pass


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or one clear line (exit 2) when the address is taken or not ours."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, addr = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"server.host: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"server.port: {host}:{port} is already in use (another archiver?)") from None
        raise ConfigError(f"server.host: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def uvicorn_config(app: Any, server: ServerSettings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http=bounded_protocol(server.max_connections, server.timeout_s),
        ws="none",
        lifespan="off",
        access_log=False,
        log_config=None,
        log_level="warning",
        server_header=False,
        timeout_keep_alive=max(1, round(server.timeout_s)),
        limit_concurrency=2 * server.max_connections,  # requests in flight; connections are capped above
        timeout_graceful_shutdown=3,
        h11_max_incomplete_event_size=16 * 1024,
    )


class WebServer:
    """The app on uvicorn, in the calling thread (``run``) or a daemon thread (``start``/``stop``)."""

    def __init__(self, app: Any, server: ServerSettings, host: str | None = None, port: int | None = None):
        self.host = server.host if host is None else host
        check_bind(server, self.host)
        self.sock = bind(self.host, server.port if port is None else port)
        self.server = uvicorn.Server(uvicorn_config(app, server))
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def run(self) -> None:
        """Serve until SIGINT/SIGTERM, then return (a clean stop, exit 0). uvicorn handles the signal with a
        graceful shutdown and then re-raises it to the handler it found: that handler is a no-op here."""
        stops = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, _ignore) for sig in stops}
        try:
            self.server.run(sockets=[self.sock])
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.sock.close()

    def start(self) -> WebServer:
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name="web-server", daemon=True
        )
        self.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout)
        self.sock.close()
