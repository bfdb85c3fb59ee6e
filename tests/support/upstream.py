"""A small fake upstream DNS server for forward/cache tests: UDP + TCP on a loopback high port, and
DNS over TLS (RFC 7858) on a second port when given a server SSL context (`tls`).

It runs its own asyncio loop in a daemon thread, so tests (sync or async) can drive it while a real
kdns process forwards to it. It answers from a tiny record table (NXDOMAIN / NODATA with an SOA
otherwise), records every query it sees, and can be told to misbehave:

- `delay`: wait this long before answering (slow upstream, max_concurrent tests);
- `mode = "drop"`: read queries but never answer (timeouts, health checks that fail);
- `mode = "servfail"` / `"refused"`: answer with that rcode;
- `mode = "mismatch"`: answer for another name; `mode = "garbage"`: the query's ID, then junk;
- `truncate_udp = True`: over UDP answer with TC=1 and no records (TCP answers in full);
- `negative_soa = False`: NXDOMAIN / NODATA without the SOA (RFC 2308 says: do not cache those);
- `stop()` / `start()`: close / reopen the sockets on the same port (a down upstream, whose UDP port
  then answers with ICMP port unreachable, so clients see "connection refused" at once).

Over TLS, queries are recorded with proto "tls" and `tls_connections` counts the TLS connections
accepted (handshakes), so a test can tell connection reuse from one handshake per query.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from dnslib import QTYPE, RCODE, RR, SOA, DNSLabel, DNSRecord

from tests.support.ports import free_port

HEALTH_PROBE = (".", "NS")  # what kdns's forward sends to check an upstream (CoreDNS: `. IN NS`)


@dataclass(frozen=True)
class SeenQuery:
    """One query as the upstream received it."""

    proto: str
    qname: str  # as sent (case preserved)
    qtype: str
    id: int
    rd: bool
    do: bool
    cd: bool
    has_opt: bool
    options: tuple[tuple[int, bytes], ...]
    wire: bytes

    @property
    def is_health_probe(self) -> bool:
        return (self.qname, self.qtype) == HEALTH_PROBE


@dataclass
class FakeUpstream:
    """See the module docstring. Use as a context manager or call start()/stop()."""

    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    delay: float = 0.0
    mode: str = "answer"  # answer | drop | servfail | refused | mismatch | garbage
    truncate_udp: bool = False
    soa_ttl: int = 60
    negative_soa: bool = True
    queries: list[SeenQuery] = field(default_factory=list)
    max_inflight: int = 0
    tls: ssl.SSLContext | None = None
    tls_port: int = field(default_factory=free_port)
    tls_connections: int = 0

    def __post_init__(self) -> None:
        # Keyed by the labels themselves: dnslib's text form does not escape a dot inside a label.
        self._records: dict[tuple[tuple[bytes, ...], int], list[RR]] = {}
        self._lock = threading.Lock()
        self._inflight = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"upstream-{self.port}",
                                        daemon=True)
        self._thread.start()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tls_server: asyncio.Server | None = None
        self._tcp_writers: set[asyncio.StreamWriter] = set()
        self._serving: set[asyncio.Task[None]] = set()  # connection handlers, cancelled on stop
        self._tasks: set[asyncio.Task[None]] = set()

    # --- configuration --------------------------------------------------------------------------

    def add(self, name: str, rtype: str, rdata: str, ttl: int = 300) -> None:
        """Add a record in zone-file syntax, e.g. add("a.example.org.", "A", "192.0.2.1", ttl=60)."""
        rr = RR.fromZone(f"{name} {ttl} IN {rtype} {rdata}")[0]
        with self._lock:
            self._records.setdefault((_labels(rr.rname), rr.rtype), []).append(rr)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def tls_address(self) -> str:
        return f"{self.host}:{self.tls_port}"

    # --- what it saw ------------------------------------------------------------------------------

    def seen(self, qname: str | None = None, *, probes: bool = False) -> list[SeenQuery]:
        """Queries received (health probes left out unless `probes`), optionally for one name."""
        with self._lock:
            out = list(self.queries)
        if not probes:
            out = [q for q in out if not q.is_health_probe]
        if qname is not None:
            out = [q for q in out if q.qname.lower() == qname.lower()]
        return out

    def probes(self) -> list[SeenQuery]:
        return [q for q in self.seen(probes=True) if q.is_health_probe]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 15.0) -> None:
        """Poll `predicate` until it holds (generous timeouts: the machine may be loaded)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not reached in time")
            time.sleep(0.05)

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> FakeUpstream:
        asyncio.run_coroutine_threadsafe(self._open(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)

    def shutdown(self) -> None:
        """Stop and end the thread (the context manager does this)."""
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        upstream = self

        class Udp(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                task = loop.create_task(upstream._answer_udp(self.transport, data, addr))  # type: ignore[arg-type]
                upstream._tasks.add(task)
                task.add_done_callback(upstream._tasks.discard)

        self._udp, _ = await loop.create_datagram_endpoint(Udp, local_addr=(self.host, self.port))
        self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port, reuse_address=True)
        if self.tls is not None:
            serve_tls = functools.partial(self._serve_tcp, proto="tls")
            self._tls_server = await asyncio.start_server(
                serve_tls, self.host, self.tls_port, ssl=self.tls, reuse_address=True
            )

    async def _close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        for server in (self._tcp, self._tls_server):
            if server is not None:
                server.close()
        for w in list(self._tcp_writers):
            w.close()
        serving = [t for t in self._serving if not t.done()]
        for t in serving:
            t.cancel()
        await asyncio.gather(*serving, return_exceptions=True)
        for server in (self._tcp, self._tls_server):
            if server is not None:
                with contextlib.suppress(Exception):
                    await server.wait_closed()
        self._tcp = self._tls_server = None

    # --- answering --------------------------------------------------------------------------------

    async def _answer_udp(self, transport: asyncio.DatagramTransport, data: bytes,
                          addr: tuple[str, int]) -> None:
        wire = await self._respond(data, "udp")
        if wire is not None and not transport.is_closing():
            transport.sendto(wire, addr)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         proto: str = "tcp") -> None:
        self._tcp_writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)
        if proto == "tls":
            with self._lock:
                self.tls_connections += 1
        try:
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                data = await reader.readexactly(length)
                wire = await self._respond(data, proto)
                if wire is not None:
                    writer.write(struct.pack("!H", len(wire)) + wire)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            self._tcp_writers.discard(writer)
            writer.close()

    async def _respond(self, data: bytes, proto: str) -> bytes | None:
        query = DNSRecord.parse(data)
        self._record(query, proto, data)
        with self._lock:
            self._inflight += 1
            self.max_inflight = max(self.max_inflight, self._inflight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.mode == "drop":
                return None
            if self.mode == "garbage":
                return data[:2] + b"\x81\x80junk"
            reply = self._reply(query)
            probe = (str(query.q.qname), QTYPE[query.q.qtype]) == HEALTH_PROBE
            if proto == "udp" and self.truncate_udp and not probe:
                reply.rr, reply.auth = [], []
                reply.ar = [rr for rr in reply.ar if rr.rtype == QTYPE.OPT]
                reply.header.tc = 1
            return bytes(reply.pack())
        finally:
            with self._lock:
                self._inflight -= 1

    def _record(self, query: DNSRecord, proto: str, data: bytes) -> None:
        opt = next((rr for rr in query.ar if rr.rtype == QTYPE.OPT), None)
        options = tuple((o.code, bytes(o.data)) for o in opt.rdata) if opt is not None else ()
        seen = SeenQuery(
            proto=proto,
            qname=str(query.q.qname),
            qtype=QTYPE[query.q.qtype],
            id=query.header.id,
            rd=bool(query.header.rd),
            do=opt is not None and bool(int(opt.ttl) & 0x8000),
            cd=bool(query.header.cd),
            has_opt=opt is not None,
            options=options,
            wire=data,
        )
        with self._lock:
            self.queries.append(seen)

    def _reply(self, query: DNSRecord) -> DNSRecord:
        reply = query.reply(ra=1, aa=1)
        reply.ar = [rr for rr in query.ar if rr.rtype == QTYPE.OPT]  # mirror the client's OPT
        if self.mode == "servfail":
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        if self.mode == "refused":
            reply.header.rcode = RCODE.REFUSED
            return reply
        if self.mode == "mismatch":
            reply.questions[0].qname = DNSLabel("other.invalid.")
        qname, qtype = _labels(query.q.qname), query.q.qtype
        with self._lock:
            answers = list(self._records.get((qname, qtype), []))
            exists = any(name == qname for name, _ in self._records)
        if answers:
            for rr in answers:
                reply.add_answer(rr)
            return reply
        if not exists:
            reply.header.rcode = RCODE.NXDOMAIN
        if self.negative_soa:
            soa = SOA("ns.upstream.test.", "hostmaster.upstream.test.", (1, 7200, 1800, 86400, self.soa_ttl))
            reply.add_auth(RR(".", QTYPE.SOA, ttl=self.soa_ttl, rdata=soa))
        return reply


def _labels(name: DNSLabel) -> tuple[bytes, ...]:
    return tuple(bytes(label).lower() for label in name.label)


@contextlib.contextmanager
def running_upstreams() -> Iterator[Callable[..., FakeUpstream]]:
    """`make(**fields)` starts a FakeUpstream; all are shut down on exit (wrap it in a test fixture)."""
    started: list[FakeUpstream] = []

    def make(**kw: object) -> FakeUpstream:
        up = FakeUpstream(**kw)  # type: ignore[arg-type]
        started.append(up)
        return up.start()

    try:
        yield make
    finally:
        for up in started:
            up.shutdown()
