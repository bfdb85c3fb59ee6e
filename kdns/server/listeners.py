"""asyncio UDP and TCP listeners: the thin socket adapter around a Dispatcher.

TCP follows RFC 7766: 2-byte length framing (§8), several queries may be pipelined on one connection
and are answered as each finishes (§6.2.1.1, out-of-order allowed), and idle connections are closed
after a few seconds (§6.2.3). The dispatcher is looked up per packet, so a reload can swap it without
closing sockets; its `limits` (kdns.server.limits.ListenerLimits: timeouts, connection and in-flight
bounds) are looked up the same way, so new values apply to the next query and connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Coroutine

from kdns.log import core_logger
from kdns.server import load
from kdns.server.dispatch import Dispatcher

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


def listener_label(host: str | None, port: int) -> str:
    """How metrics and logs name a listener, as CoreDNS does: `dns://:53`, `dns://[::1]:53`."""
    shown = "" if host is None else (f"[{host}]" if ":" in host else host)
    return f"dns://{shown}:{port}"


class DispatcherSlot:
    """Holds the dispatcher a listener uses now; the runtime replaces it on reload."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher


class _UdpServer:
    """Drains a non-blocking UDP socket from the event loop's reader callback.

    Measured here (bench/README.md): a DatagramProtocol costs ~25 µs per packet in callbacks and
    transport bookkeeping (41k echoes/s on one core with uvloop), a Python recvfrom loop ~15 µs
    (66k/s). So the fast path's table reads the socket itself with recvmmsg, answers the datagrams
    it has templates for with sendmmsg, and returns the rest, which become tasks through the chain
    while the listener's in-flight bound has room, and are dropped (and counted) past it: a slow
    upstream under a flood must not pile up tasks without bound. The client retries (RFC 1035 §4.2.1).
    """

    def __init__(
        self, sock: socket.socket, slot: DispatcherSlot, inflight: load.InFlight, label: str
    ) -> None:
        self.sock = sock
        self.slot = slot
        self.inflight = inflight
        self._dropped = load.DROPPED.labels(label, load.OVERLOAD)
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
            if not self.inflight.try_take():
                self._dropped.inc()
                continue
            task = self._loop.create_task(self._respond(data, normalize_client(addr), addr))
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.inflight.release()

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
        self.open = False
        self._udp: _UdpServer | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[_TcpConnection] = set()
        self._inflight = load.InFlight(lambda: self.slot.dispatcher.limits.inflight)
        load.watch(self)

    @property
    def label(self) -> str:
        return listener_label(self.host, self.port)

    @property
    def tcp_connections(self) -> int:
        return len(self._connections)

    @property
    def inflight(self) -> int:
        return self._inflight.count

    @property
    def templates(self) -> int:
        return len(self.slot.dispatcher.answers)

    async def start(self) -> None:
        udp = _UdpServer(_udp_socket(self.host, self.port), self.slot, self._inflight, self.label)
        try:
            self._tcp = await asyncio.start_server(
                self._serve_tcp, host=self.host, port=self.port, reuse_address=True
            )
        except OSError:
            udp.close()
            raise
        self._udp = udp
        self.open = True

    async def close(self) -> None:
        self.open = False
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for connection in list(self._connections):
                connection.close()
            with contextlib.suppress(Exception):
                await self._tcp.wait_closed()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self.slot.dispatcher.limits.tcp_connections and not self._evict_idle():
            load.TCP_CLOSED.labels(self.label, load.REFUSED).inc()
            writer.close()
            return
        connection = _TcpConnection(reader, writer, self.slot, self._inflight, self.label)
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
        min(idle, key=lambda c: c.last_active).close(load.EVICTED)
        return True


class _TcpConnection:
    """One TCP client (RFC 7766): 2-byte framing (§8), pipelined queries answered as each finishes
    (§6.2.1.1), closed when idle, when the client stops reading its replies, or after
    `max_tcp_queries` queries (CoreDNS's `timeouts`)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        slot: DispatcherSlot,
        inflight: load.InFlight,
        label: str,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.slot = slot
        self.inflight = inflight
        self.label = label
        self.client = normalize_client(writer.get_extra_info("peername") or ("", 0))
        self.last_active = time.monotonic()
        self._pending: set[asyncio.Task[None]] = set()
        self._room = asyncio.Event()  # set when one of _pending finishes
        self._write_lock = asyncio.Lock()
        self._reading = False
        self._ended = False  # reads no more: closing once the replies in progress are written
        self._deadline: asyncio.Timeout | None = None  # the read in progress: a reply postpones it
        self._task = asyncio.current_task()
        self.closed_by_server = False

    @property
    def idle(self) -> bool:
        """Waiting for the next query, or closing, with nothing in flight."""
        return (self._reading or self._ended) and not self._pending

    def close(self, reason: str | None = None) -> None:
        """Close at once from the server's side (replies in progress are lost), counted under `reason`
        (None: the listener itself is closing)."""
        if self.closed_by_server:
            return
        self._closing(reason)
        if self._task is not None:
            self._task.cancel()

    def _closing(self, reason: str | None) -> None:
        self.closed_by_server = True
        if reason is not None:
            load.TCP_CLOSED.labels(self.label, reason).inc()

    async def serve(self) -> None:
        served = 0
        try:
            while True:
                limits = self.slot.dispatcher.limits
                if 0 < limits.max_tcp_queries <= served:
                    self._closing(load.MAX_TCP_QUERIES)  # once the replies in progress are written
                    return
                while len(self._pending) >= limits.tcp_inflight:  # back-pressure: stop reading
                    self._room.clear()
                    await self._room.wait()
                data = await self._read(limits.read_timeout if served == 0 else limits.idle_timeout)
                if data is None:
                    return
                served += 1
                self.last_active = time.monotonic()
                wire = self._fast_reply(data)
                if wire is None:
                    await self.inflight.take()  # the listener is at its in-flight bound: wait
                    self._spawn(self._answer(data), counted=True)
                else:
                    self._spawn(self._send(wire), counted=False)
        except asyncio.CancelledError:
            for task in self._pending:
                task.cancel()
            raise
        finally:
            self._ended = True
            if self._pending:
                await asyncio.gather(*self._pending, return_exceptions=True)
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def _read(self, timeout: float) -> bytes | None:
        """The next query; None when the client closed, or sent nothing for `timeout` (counted)."""
        self._reading = True
        try:
            async with asyncio.timeout(timeout) as self._deadline:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
                self._reading = False
                return await self.reader.readexactly(length)
        except TimeoutError:
            self._closing(load.IDLE)
            return None
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        finally:
            self._reading = False
            self._deadline = None

    def _fast_reply(self, data: bytes) -> bytes | None:
        """The reply from a template, without a task through the chain (and outside the in-flight
        bound: it is answered at once)."""
        try:
            return self.slot.dispatcher.fast_reply(data, "tcp", self.client)
        except Exception:
            _log.exception("fast path failed for a TCP query from %s; the chain answers", self.client[0])
            return None

    def _spawn(self, coroutine: Coroutine[object, object, None], counted: bool) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._pending.add(task)
        task.add_done_callback(self._done)
        if counted:
            task.add_done_callback(self.inflight.release)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._pending.discard(task)
        self._room.set()

    async def _answer(self, data: bytes) -> None:
        try:
            wire = await self.slot.dispatcher.handle(data, "tcp", self.client)
        except Exception:
            _log.exception("unexpected failure answering a TCP query from %s", self.client[0])
            return
        if wire is not None:
            await self._send(wire)

    async def _send(self, wire: bytes) -> None:
        limits = self.slot.dispatcher.limits
        async with self._write_lock:
            self.writer.write(struct.pack("!H", len(wire)) + wire)
            try:
                # A client that never reads its replies fills the socket buffer: give up on it.
                async with asyncio.timeout(limits.write_timeout):
                    await self.writer.drain()
            except (ConnectionError, TimeoutError):
                self.writer.transport.abort()
                self.close(load.SLOW_READER)
            else:
                self.last_active = time.monotonic()
                if self._deadline is not None:  # the client is active: the idle timeout starts again
                    self._deadline.reschedule(asyncio.get_running_loop().time() + limits.idle_timeout)
