"""GET over HTTP/1.1: one connection per request, the response head awaited, the body read on demand.

Each request opens its own connection and asks the server to close it (`Connection: close`,
RFC 9112 §9.6): kdns's client traffic is the API server's list pages and watches (a watch holds its
connection for minutes anyway) and health's once-a-second loopback probe, so a connection pool
would save a handshake per list page at the price of stale-connection retry rules.

No `Accept-Encoding` is sent, so bodies come unencoded (RFC 9110 §12.5.3); h11 undoes the framing
(Content-Length, chunked, or until close). Redirects are not followed: the API server sends none.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Self
from urllib.parse import unquote, urlsplit

import h11

from kdns.http1 import close_stream

READ_SIZE = 64 * 1024
#: Largest response head accepted (h11's default, 16 KiB, is tight for proxies' error pages).
MAX_HEAD = 64 * 1024

Headers = Sequence[tuple[str, str]]


class HttpError(Exception):
    """The server or proxy broke HTTP: a malformed response, a connection closed before the response
    ended, a refused CONNECT, or no connection within the connect timeout."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Scheme, host and port of a URL (RFC 9110 §4.3.1)."""

    scheme: str
    host: str
    port: int

    @classmethod
    def split(cls, url: str) -> tuple[Self, str]:
        """The origin of an http(s) URL and its request target (path and query); ValueError if bad."""
        try:
            parts = urlsplit(url)
            explicit_port = parts.port  # ValueError out of 0-65535; urlsplit's for an unbalanced "["
        except ValueError:
            parts, explicit_port = None, 0
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or explicit_port == 0:
            raise ValueError(f"{url!r}: want http://HOST[:PORT] or https://HOST[:PORT]")
        port = explicit_port or (443 if parts.scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.scheme, parts.hostname, port), target

    @property
    def netloc(self) -> str:
        """host:port as the Host header and a CONNECT target write it (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Proxy:
    """An HTTP forward proxy: https targets are tunnelled with CONNECT (RFC 9110 §9.3.6), http ones
    asked in absolute form (RFC 9112 §3.2.2). Credentials in the URL go in Proxy-Authorization."""

    origin: Origin
    authorization: str | None

    @classmethod
    def parse(cls, url: str) -> Self:
        origin, _ = Origin.split(url)
        if origin.scheme != "http":
            raise ValueError(f"proxy {url!r}: only http:// proxies are supported")
        parts = urlsplit(url)
        auth = None
        if parts.username is not None:
            userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            auth = "Basic " + base64.b64encode(userinfo.encode()).decode()
        return cls(origin, auth)


class Response:
    """A response whose head has arrived; its body is read with read_chunk() or read()."""

    def __init__(
        self, conn: h11.Connection, reader: asyncio.StreamReader, head: h11.Response, read_timeout: float
    ) -> None:
        self._conn, self._reader, self._read_timeout = conn, reader, read_timeout
        self.status = head.status_code
        self.reason = head.reason.decode("latin-1")
        #: Lower-case names; a repeated header keeps its last value.
        self.headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in head.headers}
        self.complete = False  # the whole body was read

    @classmethod
    async def receive(cls, conn: h11.Connection, reader: asyncio.StreamReader, read_timeout: float) -> Self:
        while True:
            event = await _next_event(conn, reader, read_timeout)
            if isinstance(event, h11.Response):
                return cls(conn, reader, event, read_timeout)
            if not isinstance(event, h11.InformationalResponse):  # 1xx: the final answer follows
                raise HttpError(f"unexpected {type(event).__name__} before the response")

    async def read_chunk(self) -> bytes:
        """The next bytes of the body as they arrive; b"" once it is complete.

        Raises HttpError when the connection closes before the body's end, TimeoutError when no
        byte arrives for the read timeout.
        """
        while not self.complete:
            event = await _next_event(self._conn, self._reader, self._read_timeout)
            if isinstance(event, h11.Data):
                if event.data:
                    return bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.complete = True
            else:
                raise HttpError(f"unexpected {type(event).__name__} in a response body")
        return b""

    async def read(self) -> bytes:
        """The whole body."""
        body = bytearray()
        while chunk := await self.read_chunk():
            body += chunk
        return bytes(body)


async def _next_event(
    conn: h11.Connection, reader: asyncio.StreamReader, read_timeout: float
) -> h11.Event | type[h11.PAUSED]:
    eof = False
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            text = f"connection closed before the response ended ({exc})" if eof else str(exc)
            raise HttpError(text) from exc
        if event is not h11.NEED_DATA:
            return event  # type: ignore[return-value]  # mypy cannot narrow on a sentinel class
        async with asyncio.timeout(read_timeout):
            data = await reader.read(READ_SIZE)
        eof = not data
        conn.receive_data(data)


@asynccontextmanager
async def get(
    url: str,
    headers: Headers = (),
    *,
    connect_timeout: float,
    read_timeout: float,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    proxy: Proxy | None = None,
    opened: set[asyncio.StreamWriter] | None = None,
) -> AsyncIterator[Response]:
    """GET `url`: yields the response once its head arrived; the connection closes on exit.

    connect_timeout bounds connecting (TCP, a proxy's CONNECT, the TLS handshake); read_timeout
    bounds each wait for bytes (sending, the head, every read of the body), not the total, so a
    watch may stream for hours. A connection left before the body's end (a watch, a cancelled task)
    is aborted. `opened` holds the connection while it is open, for an owner that must drop them all.
    """
    origin, target = Origin.split(url)
    if origin.scheme == "http":
        ssl_context = None
    elif ssl_context is None:
        ssl_context = ssl.create_default_context()
    reader, writer = await _connect(origin, ssl_context, server_hostname, proxy, connect_timeout)
    if opened is not None:
        opened.add(writer)
    response: Response | None = None
    try:
        head = [("Host", origin.netloc), *headers, ("Connection", "close")]
        if proxy is not None and ssl_context is None:
            target = f"http://{origin.netloc}{target}"
            if proxy.authorization:
                head.append(("Proxy-Authorization", proxy.authorization))
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        await _send(writer, conn, h11.Request(method="GET", target=target, headers=head), read_timeout)
        response = await Response.receive(conn, reader, read_timeout)
        yield response
    finally:
        if opened is not None:
            opened.discard(writer)
        await close_stream(writer, clean=response is not None and response.complete)


async def _send(
    writer: asyncio.StreamWriter, conn: h11.Connection, request: h11.Request, timeout: float
) -> None:
    async with asyncio.timeout(timeout):
        writer.write((conn.send(request) or b"") + (conn.send(h11.EndOfMessage()) or b""))
        await writer.drain()


async def _connect(
    origin: Origin,
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
    proxy: Proxy | None,
    timeout: float,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    tls_name = (server_hostname or origin.host) if ssl_context is not None else None
    try:
        async with asyncio.timeout(timeout):
            if proxy is None:
                return await asyncio.open_connection(
                    origin.host, origin.port, ssl=ssl_context, server_hostname=tls_name
                )
            reader, writer = await asyncio.open_connection(proxy.origin.host, proxy.origin.port)
            if ssl_context is None:
                return reader, writer
            try:
                await _tunnel(reader, writer, origin, proxy, timeout)
                await writer.start_tls(ssl_context, server_hostname=tls_name)
            except BaseException:
                writer.transport.abort()
                raise
            return reader, writer
    except TimeoutError:
        where = f"{origin.netloc} through proxy {proxy.origin.netloc}" if proxy else origin.netloc
        raise HttpError(f"connect to {where}: timed out after {timeout:g}s") from None


async def _tunnel(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, origin: Origin, proxy: Proxy, timeout: float
) -> None:
    """CONNECT through `proxy` to `origin`; afterwards the stream carries the origin's bytes."""
    head = [("Host", origin.netloc)]
    if proxy.authorization:
        head.append(("Proxy-Authorization", proxy.authorization))
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
    await _send(writer, conn, h11.Request(method="CONNECT", target=origin.netloc, headers=head), timeout)
    response = await Response.receive(conn, reader, timeout)
    if not 200 <= response.status < 300:
        refused = f"{response.status} {response.reason}"
        raise HttpError(f"proxy {proxy.origin.netloc}: CONNECT {origin.netloc}: {refused}")
    if conn.trailing_data[0]:
        raise HttpError(f"proxy {proxy.origin.netloc} sent bytes before the tunnel's TLS handshake")
