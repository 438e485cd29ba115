"""httpx's transport on asyncio's own streams instead of anyio's.

httpcore (under httpx) talks to the network through a *network backend*, a documented extension point
(``httpcore.AsyncConnectionPool(network_backend=...)``). Its default for asyncio goes through anyio,
which per read builds a cancel scope and per pooled connection, on every request, asks the socket
whether the server hung up (a ``poll`` and a ``getpeername`` system call each time). Here the loop's
own stream does the work: a read is one await, TLS is the loop's (uvloop's TLS is in C), and a
connection knows it was closed without asking the kernel. Connections are opened with Happy Eyeballs
(aiohappyeyeballs, as aiohttp does), like anyio did. About 6 % less CPU per archived clip
(``bench/run.py``, scenario 8), more over TLS.

:class:`AsyncioTransport` is an httpx transport of our own (httpx's public ``AsyncBaseTransport``) that
owns its httpcore connection pool on that backend; pooling, keep-alive and HTTP/1.1 are httpcore's.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import aiohappyeyeballs
import httpcore
import httpx

_READ_BUFFER = 1 << 18  # the stream's buffer limit: reading pauses above it (flow control)
# httpcore's names for what a stream can tell -> asyncio's transport names
_EXTRA_INFO = {
    "ssl_object": "ssl_object",
    "client_addr": "sockname",
    "server_addr": "peername",
    "socket": "socket",
}
HAPPY_EYEBALLS_DELAY = 0.25  # RFC 8305's recommended wait before trying the next address


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError:
            raise httpcore.ReadTimeout("timed out reading") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            self._writer.write(buffer)
            async with asyncio.timeout(timeout):
                await self._writer.drain()
        except TimeoutError:
            raise httpcore.WriteTimeout("timed out writing") from None
        except (OSError, ssl.SSLError) as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        self._writer.close()  # not waited for: a peer that stopped reading must not hold the pool up

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError:
            await self.aclose()
            raise httpcore.ConnectTimeout("timed out in the TLS handshake") from None
        except (OSError, ssl.SSLError) as exc:
            await self.aclose()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # asked of idle pooled connections: did the server hang up?
            return self._reader.at_eof() or self._writer.is_closing()
        key = _EXTRA_INFO.get(info)
        return None if key is None else self._writer.get_extra_info(key)


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                addresses = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                local = None
                if local_address:
                    local = await loop.getaddrinfo(local_address, 0, type=socket.SOCK_STREAM)
                # Happy Eyeballs (RFC 8305), which uvloop's create_connection lacks: an address that does
                # not answer (a half-configured IPv6 at home) costs 0.25 s, not the whole connect timeout
                sock = await aiohappyeyeballs.start_connection(
                    addresses, local_addr_infos=local, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, interleave=1
                )
                try:
                    for option in socket_options or ():
                        sock.setsockopt(*option)
                    reader, writer = await asyncio.open_connection(sock=sock, limit=_READ_BUFFER)
                except BaseException:
                    sock.close()
                    raise
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"timed out connecting to {host}:{port}") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return AsyncioStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# httpcore's errors -> httpx's, most specific first (what httpx's own transport maps them to)
_ERRORS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for theirs, ours in _ERRORS:
            if isinstance(exc, theirs):
                raise ours(str(exc)) from exc
        raise


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


class AsyncioTransport(httpx.AsyncBaseTransport):
    """An httpx transport (its public contract: ``handle_async_request`` and ``aclose``) that owns an
    ``httpcore.AsyncConnectionPool`` on :class:`AsyncioBackend`; requests and responses are mapped the
    way httpx's own ``AsyncHTTPTransport`` maps them. HTTP/1.1; proxies from the environment are not
    used (an httpx client given a transport never used them)."""

    def __init__(
        self, ssl_context: ssl.SSLContext, limits: httpx.Limits, backend: AsyncioBackend | None = None
    ) -> None:
        self.backend = backend or AsyncioBackend()
        self.pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=self.backend,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        req = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            resp = await self.pool.handle_async_request(req)
        assert isinstance(resp.stream, AsyncIterable)
        return httpx.Response(
            status_code=resp.status,
            headers=resp.headers,
            stream=_ResponseStream(resp.stream),
            extensions=resp.extensions,
        )

    async def aclose(self) -> None:
        await self.pool.aclose()


def asyncio_transport(verify: ssl.SSLContext, limits: httpx.Limits) -> AsyncioTransport:
    """The transport every Blink client uses (see :class:`AsyncioTransport`)."""
    return AsyncioTransport(verify, limits)
