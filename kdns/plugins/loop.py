"""`loop` — detect a forwarding loop at start-up and stop, rather than spin forever (CoreDNS plugin/loop).

Once the server starts, a background task sends `HINFO <random>.<random>.<zone>` (zone: the block's
first) to the block's own listen address, retrying for up to 30 s until one exchange gets a reply.
Every arrival of that exact name is counted on its way through the chain; a third arrival means the
query left through an upstream and came back, so the process exits non-zero with CoreDNS's message.
In Kubernetes that crash-loops the pod, which is the visible signal CoreDNS users know. The check
turns itself off 2 s after the probe was answered (or after 30 s) so that it costs nothing later
and a later query cannot kill a healthy server.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

from dnslib import QTYPE, DNSError, DNSRecord

from kdns.corefile.model import Directive
from kdns.log import plugin_logger
from kdns.plugin import Controller, Handler, Plugin, PluginError, SetupContext
from kdns.plugins._args import expect_args
from kdns.request import Reply, Request
from kdns.tasks import cancel_and_wait

PROBE_DEADLINE = 30.0  # CoreDNS: keep trying for 30 s to give the server time to start
RETRY_DELAY = 1.0
EXCHANGE_TIMEOUT = 2.0  # miekg/dns Exchange's default read timeout
DISABLE_AFTER = 2.0
MAX_SEEN = 2  # seen more than twice = loop
_log = plugin_logger("loop")


def probe_name(zone: str, rng: random.Random) -> str:
    """`<rand>.<rand>.<zone>`; random 63-bit labels like Go's rand.Int()."""
    labels = f"{rng.getrandbits(63)}.{rng.getrandbits(63)}"
    return f"{labels}." if zone == "." else f"{labels}.{zone}"


def join_host_port(host: str, port: int) -> str:
    """Go's net.JoinHostPort: IPv6 in brackets, empty host kept empty (`:53`)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Exchange(asyncio.DatagramProtocol):
    def __init__(self, query_id: int) -> None:
        self.query_id = query_id
        self.answer: asyncio.Future[DNSRecord] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        with contextlib.suppress(DNSError, ValueError, IndexError):
            reply = DNSRecord.parse(data)
            if reply.header.id == self.query_id and not self.answer.done():
                self.answer.set_result(reply)

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc)  # ICMP port unreachable: nothing listens there yet


async def exchange(host: str, port: int, qname: str, timeout: float = EXCHANGE_TIMEOUT) -> DNSRecord:
    """One UDP query/answer, raising OSError or TimeoutError when no answer comes."""
    query = DNSRecord.question(qname, "HINFO")
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _Exchange(query.header.id), remote_addr=(host, port)
    )
    try:
        transport.sendto(query.pack())
        return await asyncio.wait_for(protocol.answer, timeout)
    finally:
        transport.close()


class Loop(Plugin):
    name = "loop"

    def __init__(self, zone: str, host: str, port: int, controller: Controller, rng: random.Random) -> None:
        self.zone = zone
        self.qname = probe_name(zone, rng)
        self.host = host  # as CoreDNS prints the destination: "" for all interfaces
        self.port = port
        self.controller = controller
        self.seen = 0
        self.disabled = False
        self._task: asyncio.Task[None] | None = None

    async def serve(self, request: Request, next_: Handler) -> Reply:
        if self.disabled or request.qtype != QTYPE.HINFO:
            return await next_(request)
        if request.qname_lower == self.qname:
            self.seen += 1
        if self.seen > MAX_SEEN:
            self.disabled = True
            src = join_host_port(*request.client)
            dst = join_host_port(self.host, self.port)
            self.controller.fatal(
                f'plugin/loop: Loop ({src} -> {dst}) detected for zone "{self.zone}", see '
                f'https://coredns.io/plugins/loop#troubleshooting. Query: "HINFO {self.qname}"'
            )
            raise PluginError("forwarding loop detected")  # do not send it round once more
        return await next_(request)

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._probe())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PROBE_DEADLINE
        target = self.host or "127.0.0.1"
        while loop.time() < deadline:
            try:
                await exchange(target, self.port, self.qname)
            except (OSError, TimeoutError):
                self.seen = 0  # as CoreDNS: only count arrivals of a probe that got through
                await asyncio.sleep(RETRY_DELAY)
                continue
            await asyncio.sleep(DISABLE_AFTER)
            break
        else:
            _log.warning(
                "no answer to the loop probe %s within %.0fs; loop detection is off",
                self.qname,
                PROBE_DEADLINE,
            )
        self.disabled = True


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    expect_args(d, 0, 0)
    if d.children:
        raise d.error("loop takes no block")
    first = ctx.block.addresses[0]
    # The first address the block listens on (bind resolves interface names); bind is set up before
    # loop (plugin order), so it is among the block's plugins already.
    hosts = [h for p in ctx.block_plugins for h in p.listen_hosts()]
    host = hosts[0] if hosts else ""
    port = first.port if first.port is not None else ctx.dns_port
    return Loop(first.zone, host, port, ctx.controller, random.Random())
