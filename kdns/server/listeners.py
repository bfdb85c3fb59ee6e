"""asyncio UDP and TCP listeners: the thin socket adapter around a Dispatcher.

TCP follows RFC 7766: 2-byte length framing (§8), several queries may be pipelined on one connection
and are answered as each finishes (§6.2.1.1, out-of-order allowed), and idle connections are closed
after a few seconds (§6.2.3 recommends timeouts "of at least a few seconds"; CoreDNS uses 10 s for
reads). The dispatcher is looked up per packet, so a reload can swap it without closing sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time

from kdns.log import core_logger
from kdns.server.dispatch import Dispatcher

TCP_IDLE_TIMEOUT = 10.0  # also how long a reply may wait for a client to read
# At this many connections a new one replaces the longest-idle one, or is closed when none is idle.
TCP_MAX_CONNECTIONS = 1024
# Queries read from one connection and not yet answered; beyond this, reading waits (back-pressure),
# so a client pipelining without reading its replies cannot make kdns queue without bound.
TCP_MAX_PENDING = 256
# recvmmsg batches (of _hotpath.BATCH datagrams) per reader callback before yielding to the loop, so
# TCP, timers and slow-path tasks are not starved. Queries longer than _hotpath.MAX_QUERY (4096, the
# usual EDNS ceiling) are cut and then fail to parse (FORMERR).
UDP_ROUNDS = 4
_log = core_logger()


def normalize_client(addr: tuple[str, int] | tuple[str, int, int, int]) -> tuple[str, int]:
    """Plain (host, port); IPv4-mapped IPv6 clients of a dual-stack socket become IPv4."""
    host, port = addr[0], addr[1]
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return host, port


class DispatcherSlot:
    """Holds the dispatcher a listener uses now; the runtime replaces it on reload."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher


class _UdpServer:
    """Drains a non-blocking UDP socket from the event loop's reader callback.

    Measured here (bench/README.md): a DatagramProtocol costs ~25 µs per packet in callbacks and
    transport bookkeeping (41k echoes/s on one core with uvloop), a Python recvfrom loop ~15 µs
    (66k/s). So the fast path's table reads the socket itself with recvmmsg, answers the datagrams
    it has templates for with sendmmsg, and returns the rest, which become tasks through the chain.
    """

    def __init__(self, sock: socket.socket, slot: DispatcherSlot) -> None:
        self.sock = sock
        self.slot = slot
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop = asyncio.get_running_loop()
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._drain)

    def _drain(self) -> None:
        dispatcher = self.slot.dispatcher
        try:
            misses = dispatcher.drain(self.sock.fileno(), UDP_ROUNDS)
        except Exception:  # a bug in the fast path must not stop the listener: the chain answers
            _log.exception("fast path failed; these datagrams are lost")
            return
        for data, addr in misses:
            task = self._loop.create_task(self._respond(data, normalize_client(addr), addr))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _respond(self, data: bytes, client: tuple[str, int], raw_addr: tuple[str, int]) -> None:
        try:
            wire = await self.slot.dispatcher.handle(data, "udp", client)
        except Exception:
            _log.exception("unexpected failure answering a UDP packet from %s", client[0])
            return
        if wire is not None and self.sock.fileno() >= 0:
            with contextlib.suppress(OSError):
                self.sock.sendto(wire, raw_addr)

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self._loop.remove_reader(self.sock.fileno())
            self.sock.close()


def _udp_socket(host: str | None, port: int) -> socket.socket:
    """A UDP socket on host:port; wildcard binds dual-stack `::` (v4-mapped), falling back to IPv4."""
    if host is None:
        try:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(("::", port))
            return sock
        except OSError:
            sock.close()
            host = "0.0.0.0"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class Listener:
    """One address:port, UDP and TCP, answering through whatever dispatcher its slot holds."""

    def __init__(self, host: str | None, port: int, slot: DispatcherSlot) -> None:
        self.host = host
        self.port = port
        self.slot = slot
        self._udp: _UdpServer | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[_TcpConnection] = set()

    @property
    def label(self) -> str:
        host = "" if self.host is None else (f"[{self.host}]" if ":" in self.host else self.host)
        return f"dns://{host}:{self.port}"

    async def start(self) -> None:
        udp = _UdpServer(_udp_socket(self.host, self.port), self.slot)
        try:
            self._tcp = await asyncio.start_server(
                self._serve_tcp, host=self.host, port=self.port, reuse_address=True
            )
        except OSError:
            udp.close()
            raise
        self._udp = udp

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for connection in list(self._connections):
                connection.close()
            with contextlib.suppress(Exception):
                await self._tcp.wait_closed()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= TCP_MAX_CONNECTIONS and not self._evict_idle():
            writer.close()
            return
        connection = _TcpConnection(reader, writer, self.slot)
        self._connections.add(connection)
        try:
            await connection.serve()
        except asyncio.CancelledError:
            # Closed by the server (evicted, stopped reading, shutting down). asyncio's stream
            # protocol logs the traceback of a cancelled connection task, one per eviction.
            if not connection.closed_by_server:
                raise
        finally:
            self._connections.discard(connection)

    def _evict_idle(self) -> bool:
        """At the connection cap, close the connection idle the longest to admit a new one (RFC 7766
        §6.2.3: a server under load may close idle connections). Without this, clients that open
        connections and never send (or never read) would lock every other TCP client out until
        their idle timeout. False when every connection is busy."""
        idle = [c for c in self._connections if c.idle]
        if not idle:
            return False
        min(idle, key=lambda c: c.last_active).close()
        return True


class _TcpConnection:
    """One TCP client (RFC 7766): 2-byte framing (§8), pipelined queries answered as each finishes
    (§6.2.1.1), closed when idle or when the client stops reading its replies."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, slot: DispatcherSlot
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.slot = slot
        self.client = normalize_client(writer.get_extra_info("peername") or ("", 0))
        self.last_active = time.monotonic()
        self._pending: set[asyncio.Task[None]] = set()
        self._room = asyncio.Semaphore(TCP_MAX_PENDING)
        self._write_lock = asyncio.Lock()
        self._reading = False
        self._task = asyncio.current_task()
        self.closed_by_server = False

    @property
    def idle(self) -> bool:
        """Waiting for the next query with nothing in flight."""
        return self._reading and not self._pending

    def close(self) -> None:
        self.closed_by_server = True
        if self._task is not None:
            self._task.cancel()

    async def serve(self) -> None:
        try:
            while True:
                await self._room.acquire()  # at most TCP_MAX_PENDING queries in flight: stop reading
                self._reading = True
                header = await asyncio.wait_for(self.reader.readexactly(2), TCP_IDLE_TIMEOUT)
                self._reading = False
                (length,) = struct.unpack("!H", header)
                data = await asyncio.wait_for(self.reader.readexactly(length), TCP_IDLE_TIMEOUT)
                self.last_active = time.monotonic()
                task = asyncio.get_running_loop().create_task(self._answer(data))
                self._pending.add(task)
                task.add_done_callback(self._done)
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        except asyncio.CancelledError:
            for task in self._pending:
                task.cancel()
            raise
        finally:
            if self._pending:
                await asyncio.gather(*self._pending, return_exceptions=True)
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        self._room.release()

    async def _answer(self, data: bytes) -> None:
        try:
            dispatcher = self.slot.dispatcher
            wire = dispatcher.fast_reply(data, "tcp", self.client) or await dispatcher.handle(
                data, "tcp", self.client
            )
        except Exception:
            _log.exception("unexpected failure answering a TCP query from %s", self.client[0])
            return
        if wire is None:
            return
        async with self._write_lock:
            self.writer.write(struct.pack("!H", len(wire)) + wire)
            try:
                # A client that never reads its replies fills the socket buffer: give up on it.
                await asyncio.wait_for(self.writer.drain(), TCP_IDLE_TIMEOUT)
            except (ConnectionError, TimeoutError):
                self.writer.transport.abort()
                self.close()
            else:
                self.last_active = time.monotonic()
