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

from kdns.log import core_logger
from kdns.server.dispatch import Dispatcher

TCP_IDLE_TIMEOUT = 10.0
TCP_MAX_CONNECTIONS = 1024  # beyond this, new connections are closed at once (resource guard)
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
            misses = dispatcher.answers.drain(self.sock.fileno(), dispatcher.fast_path_on, UDP_ROUNDS)
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
        self._connections: set[asyncio.Task[None]] = set()

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
            for task in list(self._connections):
                task.cancel()
            with contextlib.suppress(Exception):
                await self._tcp.wait_closed()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._connections) >= TCP_MAX_CONNECTIONS or task is None:
            writer.close()
            return
        self._connections.add(task)
        peer = writer.get_extra_info("peername") or ("", 0)
        client = normalize_client(peer)
        write_lock = asyncio.Lock()
        pending: set[asyncio.Task[None]] = set()

        async def answer(data: bytes) -> None:
            try:
                dispatcher = self.slot.dispatcher
                wire = dispatcher.fast_reply(data, "tcp", client) or await dispatcher.handle(
                    data, "tcp", client
                )
            except Exception:
                _log.exception("unexpected failure answering a TCP query from %s", client[0])
                return
            if wire is None:
                return
            async with write_lock:
                writer.write(struct.pack("!H", len(wire)) + wire)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()

        try:
            while True:
                header = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_TIMEOUT)
                (length,) = struct.unpack("!H", header)
                data = await asyncio.wait_for(reader.readexactly(length), TCP_IDLE_TIMEOUT)
                t = asyncio.get_running_loop().create_task(answer(data))
                pending.add(t)
                t.add_done_callback(pending.discard)
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        except asyncio.CancelledError:
            for t in pending:
                t.cancel()
            raise
        finally:
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._connections.discard(task)
