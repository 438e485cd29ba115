"""httpx on asyncio's own streams (archiver.blink.transport): TLS, keep-alive, a server that hangs up, a
server that never answers, a certificate nobody signed — against real servers on loopback."""

from __future__ import annotations

import asyncio
import http.server
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import free_port, make_certificates

from archiver.blink.transport import asyncio_transport

BODY = bytes(range(256)) * 4096  # 1 MiB


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: list[str] = []  # one entry per accepted connection (the client's address)
    close_after_answer = False

    def setup(self) -> None:
        super().setup()
        type(self).connections.append(str(self.client_address))

    def do_GET(self) -> None:
        if self.path == "/silent":
            threading.Event().wait(2)  # answers nothing for longer than the client waits
            return
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
        if type(self).close_after_answer:  # keep-alive promised by HTTP/1.1, then the server hangs up
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    make_certificates(tmp_path)
    return tmp_path


class Server:
    """A threaded HTTP/1.1 server on loopback, with TLS when given a certificate folder."""

    def __init__(self, tls_folder: Path | None) -> None:
        self.handler: type[Handler] = type("H", (Handler,), {"connections": []})
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self.handler)
        scheme = "http"
        if tls_folder is not None:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(tls_folder / "server.pem", tls_folder / "server.key")
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def https(certs: Path) -> Iterator[Server]:
    server = Server(certs)
    yield server
    server.close()


@pytest.fixture
def plain() -> Iterator[Server]:
    server = Server(None)
    yield server
    server.close()


def client(ca: Path | None = None, **kw: object) -> httpx.AsyncClient:
    tls = ssl.create_default_context(cafile=str(ca)) if ca else ssl.create_default_context()
    return httpx.AsyncClient(transport=asyncio_transport(tls, httpx.Limits()), **kw)  # type: ignore[arg-type]


async def fetch(c: httpx.AsyncClient, url: str) -> bytes:
    async with c.stream("GET", url) as resp:
        assert resp.status_code == 200
        return b"".join([chunk async for chunk in resp.aiter_bytes()])


def test_a_download_over_tls_arrives_whole_on_one_kept_alive_connection(https: Server, certs: Path) -> None:
    async def go() -> list[bytes]:
        async with client(certs / "ca.pem") as c:
            return [await fetch(c, f"{https.url}/clip.mp4") for _ in range(3)]

    assert asyncio.run(go()) == [BODY] * 3
    assert len(https.handler.connections) == 1


def test_a_certificate_nobody_we_trust_signed_is_refused(https: Server) -> None:
    async def go() -> None:
        async with client() as c:  # the system's CAs, not the test CA
            await fetch(c, f"{https.url}/clip.mp4")

    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(go())


def test_a_server_that_never_answers_times_out(plain: Server) -> None:
    async def go() -> None:
        async with client(timeout=httpx.Timeout(0.3)) as c:
            await fetch(c, f"{plain.url}/silent")

    with pytest.raises(httpx.ReadTimeout):
        asyncio.run(go())


def test_a_pooled_connection_the_server_closed_is_not_reused(plain: Server) -> None:
    """The server hangs up after each answer; the next request must open a new connection rather than
    fail on the dead one (the pool asks the stream whether it was closed)."""
    plain.handler.close_after_answer = True

    async def go() -> list[bytes]:
        async with client() as c:
            bodies = []
            for _ in range(3):
                bodies.append(await fetch(c, f"{plain.url}/clip.mp4"))
                await asyncio.sleep(0.3)  # the hang-up reaches the loop
            return bodies

    assert asyncio.run(go()) == [BODY] * 3
    assert len(plain.handler.connections) == 3


def test_a_refused_connection_is_a_connect_error() -> None:
    async def go() -> None:
        async with client() as c:
            await c.get(f"http://127.0.0.1:{free_port()}/")

    with pytest.raises(httpx.ConnectError):
        asyncio.run(go())


def test_an_address_that_never_answers_does_not_use_up_the_connect_timeout(
    plain: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Happy Eyeballs: the host resolves first to an address whose SYNs are dropped (a listener with a
    full accept queue stands in for a broken IPv6 route), then to the server. Tried one after the other,
    the first would use up the 2 s connect timeout; raced after 0.25 s, the download goes through."""
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(0)
    fillers = [socket.create_connection(blackhole.getsockname(), timeout=5)]  # its one slot taken
    port = int(plain.url.rsplit(":", 1)[1])
    infos = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", blackhole.getsockname()),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
    ]

    async def getaddrinfo(*args: object, **kwargs: object) -> list[tuple]:
        return infos

    async def go() -> bytes:
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
        async with client(timeout=httpx.Timeout(10, connect=2)) as c:
            return await fetch(c, "http://blink.invalid/clip.mp4")

    try:
        probe = socket.socket()
        probe.settimeout(1)
        with pytest.raises(TimeoutError):  # the stand-in really swallows connections
            probe.connect(blackhole.getsockname())
        probe.close()
        assert asyncio.run(go()) == BODY
    finally:
        for s in (*fillers, blackhole):
            s.close()


# ------------------------------------------------------------------ the Blink client uses this transport
def test_the_blink_clients_run_on_the_asyncio_backend(plain: Server) -> None:
    """Fails if the fast backend is not the one in use (httpx's default would hand out anyio streams)."""
    from archiver.blink.http import BlinkHTTP
    from archiver.blink.transport import AsyncioStream
    from archiver.config import BlinkSettings

    async def go() -> list[object]:
        async with BlinkHTTP(BlinkSettings(server_url=plain.url, max_requests_per_second=0)) as http:
            streams = []
            for c in (http.client, http.foreign):  # Blink's hosts and the hops off them
                async with c.stream("GET", f"{plain.url}/clip") as resp:
                    streams.append(resp.extensions["network_stream"])
                    await resp.aread()
            return streams

    streams = asyncio.run(go())
    assert all(isinstance(s, AsyncioStream) for s in streams), streams


def test_httpcore_errors_arrive_as_httpx_errors(plain: Server) -> None:
    async def go() -> None:
        async with client(timeout=httpx.Timeout(5, read=0.3)) as c:
            with pytest.raises(httpx.ReadTimeout):
                await c.get(f"{plain.url}/silent")
            with pytest.raises(httpx.ConnectError):
                await c.get(f"http://127.0.0.1:{free_port()}/")
            with pytest.raises(httpx.UnsupportedProtocol):
                await c.get("ftp://127.0.0.1/")

    asyncio.run(go())


def test_event_hooks_belong_to_one_client_instance(plain: Server) -> None:
    """The worker's metrics hooks see its own clients' requests, labelled by what they are for; another
    client (a CLI command in the same process, a test) is not observed."""
    from archiver.blink.http import BlinkHTTP, metrics_hooks
    from archiver.config import BlinkSettings

    seen: list[tuple[str, int, float]] = []
    settings = BlinkSettings(server_url=plain.url, max_requests_per_second=0)

    async def go() -> None:
        async with BlinkHTTP(settings, event_hooks=metrics_hooks(lambda *a: seen.append(a))) as observed:
            await observed.request("GET", f"{plain.url}/clip", authed=False, what="homescreen")
        async with BlinkHTTP(settings) as other:
            await other.request("GET", f"{plain.url}/clip", authed=False, what="other")

    asyncio.run(go())
    assert [(what, status) for what, status, _s in seen] == [("homescreen", 200)]
    assert 0 <= seen[0][2] < 5
