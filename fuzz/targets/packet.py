"""Fuzz target: one packet through the whole query path, as a listener hands it over.

Input: the bytes of one DNS message, exactly as a client would send them (over TCP, without the
2-byte length). The same files are the corpus of the future C target for kdns/server/_hotpath.c.

Each input goes through the fast path (the answer cache, C) and then, as the TCP listener does,
through `Dispatcher.handle`: kdns.protocol.query.parse, Request construction and a real chain of
real plugins set up from a Corefile (`CONFIG`): whoami, cache, any, chaos, nsid, bufsize, rewrite,
template, acl, hosts, file on zones/, kubernetes on demo/cluster.yaml, k8s_external, autopath,
loadbalance. It is asked once over UDP (from an IPv4 client) and once over TCP (from IPv6).

What must hold for every input (RFC 1035 §4.1.1; anything else raises `Finding`):
- no reply only for what kdns.protocol.query drops: fewer than 12 octets, or QR=1;
- otherwise one reply: same ID, QR=1, opcode echoed, parsed whole by an independent parser
  (dnspython), no larger than the client's limit (512, the EDNS size, or 65535 over TCP);
- when the query asked one question and the reply is not FORMERR, the question comes back as asked;
- no plugin raises anything but a PluginError or NoNextPlugin (a SERVFAIL from a plugin crash
  is a lie to the client, even though the server survives it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
from dnslib import DNSRecord

from kdns.chain import Chain, ServerPlan
from kdns.corefile import Corefile, parse_corefile
from kdns.plan import build_plan
from kdns.plugin import NoNextPlugin, Plugin, PluginError, Traced
from kdns.protocol.edns import max_reply_size
from kdns.protocol.query import Dropped, FormatError, Query, parse
from kdns.request import Reply, Request
from kdns.server.dispatch import Dispatcher
from kdns.server.trace import ask, trace

ROOT = Path(__file__).resolve().parents[2]
_FORMERR = 1
_QR = 0x8000
_OPCODE = 0x7800

CONFIG = """\
. {
    nsid fuzz
    bufsize 1232
    any
    chaos kdns-fuzz Alice Bob
    rewrite name exact rewritten.example.org. www.example.org.
    rewrite stop {
        name regex ^(.*)\\.alias\\.test\\.$ {1}.default.svc.cluster.local.
        answer auto
    }
    template IN A tmpl.test {
        match ^ip-(?P<a>[0-9]+)-(?P<b>[0-9]+)[.]tmpl[.]test[.]$
        answer "{{ .Name }} 60 IN A 10.0.{{ .Group.a }}.{{ .Group.b }}"
        fallthrough
    }
    template ANY ANY blocked.test {
        rcode NXDOMAIN
        authority "blocked.test. 60 IN SOA ns.blocked.test. hostmaster.blocked.test. (1 60 60 60 60)"
        ederror 15 "blocked"
    }
    acl {
        block type AXFR IXFR
        filter type HINFO net 127.0.0.0/8
    }
    hosts {
        10.1.2.3 host.test
        fd00::1 host.test
        fallthrough
    }
    cache 30
    whoami
}
example.org {
    errors
    file zones/example.org.zone
}
cluster.local in-addr.arpa ip6.arpa {
    loadbalance
    autopath @kubernetes
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests demo/cluster.yaml
        pods verified
        ttl 30
    }
    k8s_external example.net
}
"""


class Finding(AssertionError):
    """An input that broke one of the rules in the module docstring."""


class _Controller:
    """The plugin.Controller a real Runtime would be, minus sockets: re-entry (`resolve`) runs the
    query through the same dispatcher."""

    def __init__(self) -> None:
        self.config_path = str(ROOT / "Corefile")
        self.reload_observers: list[Any] = []
        self.serving = True
        self.plan: ServerPlan | None = None
        self.dispatcher: Dispatcher | None = None

    def request_reload(self) -> None:
        pass

    def fatal(self, message: str) -> None:
        raise Finding(f"a plugin asked the server to exit: {message}")

    def plugins(self) -> Sequence[Plugin]:
        return self.plan.plugins if self.plan else []

    async def resolve(self, qname: str, qtype: int, proto: str = "udp") -> DNSRecord:
        assert self.dispatcher is not None
        return await ask(self.dispatcher, qname, qtype, proto)

    async def trace(self, qname: str, qtype: int) -> Traced:
        assert self.dispatcher is not None
        return await trace(self.dispatcher, qname, qtype)

    def serves(self, qname: str) -> bool:
        assert self.dispatcher is not None
        return self.dispatcher.routes.match(qname) is not None


class _Crashes:
    """Wraps each chain's handler to keep what a plugin raised: the dispatcher turns it into
    SERVFAIL, so without this a plugin crash would pass unseen."""

    def __init__(self) -> None:
        self.seen: list[BaseException] = []

    def watch(self, chain: Chain) -> None:
        inner = chain.handler

        async def handler(request: Request) -> Reply:
            try:
                return await inner(request)
            except (PluginError, NoNextPlugin, FormatError):
                raise
            except Exception as e:
                self.seen.append(e)
                raise

        chain.handler = handler


def _load() -> tuple[Dispatcher, asyncio.AbstractEventLoop, _Crashes]:
    corefile: Corefile = parse_corefile(CONFIG, str(ROOT / "Corefile"), env={})
    controller = _Controller()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    cwd = Path.cwd()
    try:
        os.chdir(ROOT)  # the Corefile's relative paths (zones/, demo/) as `make demo` uses them
        plan = build_plan(corefile, controller, {}, 53)
        controller.plan = plan
        for plugin in plan.plugins:
            loop.run_until_complete(plugin.start())
    finally:
        os.chdir(cwd)
    crashes = _Crashes()
    for chain in plan.chains:
        crashes.watch(chain)
    dispatcher = Dispatcher("dns://:53", plan.chains)
    controller.dispatcher = dispatcher
    return dispatcher, loop, crashes


_state: tuple[Dispatcher, asyncio.AbstractEventLoop, _Crashes] | None = None


def prepare() -> None:
    """Set up the server once (fuzz.run calls it while coverage instrumentation is on, so the
    plugin modules imported here are instrumented too)."""
    global _state
    if _state is None:
        logging.disable(logging.CRITICAL)  # the errors plugin logs every SERVFAIL
        _state = _load()


def one_input(data: bytes) -> None:
    """Run one packet over UDP and TCP; raise Finding when a rule is broken."""
    prepare()
    assert _state is not None
    dispatcher, loop, crashes = _state
    for proto, client in (("udp", ("127.0.0.1", 5353)), ("tcp", ("::1", 5353))):
        tcp = proto == "tcp"
        fast = None
        if dispatcher.fast_path_on:
            fast = dispatcher.answers.answer(data, tcp, ":" in client[0])
        reply = fast if fast is not None else loop.run_until_complete(dispatcher.handle(data, proto, client))
        if crashes.seen:
            e = crashes.seen.pop()
            crashes.seen.clear()
            raise Finding(f"{proto}: a plugin raised {type(e).__name__}: {e}") from e
        check(data, reply, tcp, fast is not None)


def check(query: bytes, reply: bytes | None, tcp: bool, fast: bool = False) -> None:
    """The rules of the module docstring, for one query and the reply kdns gave."""
    where = f"{'tcp' if tcp else 'udp'}{' (fast path)' if fast else ''}"
    dropped = len(query) < 12 or bool(struct.unpack_from("!H", query, 2)[0] & _QR)
    if reply is None:
        if not dropped:
            raise Finding(f"{where}: no reply to a query kdns should answer")
        return
    if dropped:
        raise Finding(f"{where}: a reply to a packet that must be dropped")
    if reply[:2] != query[:2]:
        raise Finding(f"{where}: reply ID {reply[:2].hex()} for query ID {query[:2].hex()}")
    flags = struct.unpack_from("!H", reply, 2)[0]
    if not flags & _QR:
        raise Finding(f"{where}: QR not set in the reply")
    try:
        # dnspython reads an UPDATE's sections by RFC 2136's rules (one SOA zone…): check the
        # message's form with the opcode set to QUERY, and the opcode from the header itself.
        parsed = dns.message.from_wire(reply[:2] + struct.pack("!H", flags & ~_OPCODE) + reply[4:])
    except dns.exception.DNSException as e:
        raise Finding(f"{where}: the reply does not parse ({type(e).__name__}: {e}): {reply.hex()}") from e
    try:
        asked: Query | None = parse(query)
    except (FormatError, Dropped):
        asked = None
    if asked is None:
        if parsed.rcode() != _FORMERR:
            raise Finding(f"{where}: a query that does not parse got rcode {parsed.rcode()}, not FORMERR")
        return
    if (flags & _OPCODE) >> 11 != asked.opcode:
        raise Finding(f"{where}: opcode {(flags & _OPCODE) >> 11} for a query of opcode {asked.opcode}")
    limit = max_reply_size(asked.edns, tcp)
    if len(reply) > limit:
        raise Finding(f"{where}: a reply of {len(reply)} octets where the client takes {limit}")
    if parsed.rcode() != _FORMERR:
        if len(parsed.question) != 1:
            raise Finding(f"{where}: {len(parsed.question)} questions in the reply to one")
        q = parsed.question[0]
        if (tuple(q.name.labels[:-1]), q.rdtype, q.rdclass) != (asked.labels, asked.qtype, asked.qclass):
            raise Finding(f"{where}: question {q} in the reply, {asked.labels!r} asked")

