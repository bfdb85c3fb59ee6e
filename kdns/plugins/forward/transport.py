"""Connections to one upstream, and the cache that reuses them (CoreDNS's proxy transport).

A connection carries one exchange at a time: it is taken from the cache, used, and given back
(`release`) only if the exchange succeeded; any error closes it. Idle connections older than `expire`
(CoreDNS default 10s) are not reused and are closed by `sweep`. UDP sockets are connected, so the
kernel drops datagrams from other sources and an ICMP port-unreachable surfaces at once as
ConnectionRefusedError instead of a 2 s timeout. Replies whose ID is not ours are skipped, as
CoreDNS does ("drop out-of-order responses"): on a reused UDP socket a duplicated reply to an
earlier query may still arrive. Datagrams are read whole; the server truncates for the client.

A `tls://` upstream is reached over TCP wrapped in TLS (proto `tcp-tls`, CoreDNS's name, used in the
connection-cache metrics), framed as plain TCP (RFC 7858 §3.3); its connections are cached and reused
the same way, which is what keeps the handshake off most queries (RFC 7858 §3.4).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections import deque
from typing import Protocol

from kdns.plugins.forward.tls import TlsTarget

TLS_PROTO = "tcp-tls"


class UpstreamTimeout(Exception):
    """No reply within the read timeout (Go's `i/o timeout`)."""


class Connection(Protocol):
    proto: str

    async def exchange(self, wire: bytes, timeout: float) -> bytes: ...

    def close(self) -> None: ...


class _DatagramQueue(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait(data)

    def error_received(self, exc: Exception) -> None:
        self.queue.put_nowait(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.queue.put_nowait(exc or ConnectionError("socket closed"))


class UdpConnection:
    proto = "udp"

    def __init__(self, transport: asyncio.DatagramTransport, protocol: _DatagramQueue) -> None:
        self._transport = transport
        self._queue = protocol.queue

    @classmethod
    async def open(cls, host: str, port: int) -> UdpConnection:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(_DatagramQueue, remote_addr=(host, port))
        return cls(transport, protocol)

    async def exchange(self, wire: bytes, timeout: float) -> bytes:
        while not self._queue.empty():  # leftovers of an earlier exchange on this socket
            self._queue.get_nowait()
        self._transport.sendto(wire)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UpstreamTimeout()
            try:
                item = await asyncio.wait_for(self._queue.get(), remaining)
            except TimeoutError:
                raise UpstreamTimeout() from None
            if isinstance(item, Exception):
                raise item
            if len(item) >= 2 and item[:2] == wire[:2]:
                return item

    def close(self) -> None:
        self._transport.close()


class TcpConnection:
    """RFC 1035 §4.2.2 / RFC 7766 §8: each message is preceded by its 2-byte length (also over TLS)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, proto: str) -> None:
        self._reader = reader
        self._writer = writer
        self.proto = proto

    @classmethod
    async def open(cls, host: str, port: int, timeout: float, tls: TlsTarget | None = None) -> TcpConnection:
        """A TCP connection, TLS-wrapped (handshake and certificate check included) when `tls`."""
        ctx, name = (tls.context, tls.server_name) if tls is not None else (None, None)
        try:
            connecting = asyncio.open_connection(host, port, ssl=ctx, server_hostname=name)
            reader, writer = await asyncio.wait_for(connecting, timeout)
        except TimeoutError:
            raise UpstreamTimeout() from None
        return cls(reader, writer, "tcp" if tls is None else TLS_PROTO)

    async def exchange(self, wire: bytes, timeout: float) -> bytes:
        self._writer.write(struct.pack("!H", len(wire)) + wire)
        try:
            async with asyncio.timeout(timeout):
                await self._writer.drain()
                while True:
                    (length,) = struct.unpack("!H", await self._reader.readexactly(2))
                    data = await self._reader.readexactly(length)
                    if len(data) >= 2 and data[:2] == wire[:2]:
                        return data
        except TimeoutError:
            raise UpstreamTimeout() from None

    def close(self) -> None:
        self._writer.close()


class ConnectionCache:
    """Idle connections to one upstream per protocol, most recently used first (CoreDNS `expire`).

    With `tls` every connection is `tcp-tls`, whatever protocol is asked for (CoreDNS's Dial)."""

    def __init__(self, host: str, port: int, expire: float, tls: TlsTarget | None = None) -> None:
        self.host = host
        self.port = port
        self.expire = expire
        self.tls = tls
        self._idle: dict[str, deque[tuple[float, Connection]]] = {
            "udp": deque(), "tcp": deque(), TLS_PROTO: deque()
        }  # fmt: skip
        self._closed = False

    def proto_for(self, proto: str) -> str:
        """The protocol a connection asked for as `proto` really uses."""
        return TLS_PROTO if self.tls is not None else proto

    async def dial(self, proto: str, timeout: float) -> Connection:
        """A new connection, not from the cache (OSError such as ConnectionRefusedError, or
        UpstreamTimeout, on failure; ssl.SSLError, an OSError, when the handshake fails)."""
        proto = self.proto_for(proto)
        if proto == "udp":
            return await UdpConnection.open(self.host, self.port)
        return await TcpConnection.open(self.host, self.port, timeout, self.tls)

    async def acquire(self, proto: str, timeout: float) -> tuple[Connection, bool]:
        """A connection for `proto` and whether it came from the cache."""
        idle = self._idle[self.proto_for(proto)]
        now = time.monotonic()
        while idle:
            used, conn = idle.pop()
            if now - used < self.expire:
                return conn, True
            conn.close()
        return await self.dial(proto, timeout), False

    def release(self, conn: Connection) -> None:
        """Give back a connection after a successful exchange (closed instead once the cache is closed)."""
        if self._closed:
            conn.close()
        else:
            self._idle[conn.proto].append((time.monotonic(), conn))

    def sweep(self) -> None:
        """Close idle connections older than `expire` (oldest sit at the left)."""
        now = time.monotonic()
        for idle in self._idle.values():
            while idle and now - idle[0][0] >= self.expire:
                idle.popleft()[1].close()

    def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            while idle:
                with contextlib.suppress(Exception):
                    idle.pop()[1].close()
