"""The fast path serves exactly the bytes the plugin chain would (issue #4: prove byte equality)."""

from __future__ import annotations

import asyncio
import itertools
import random

import dns.flags
import dns.message
import dns.rdatatype
import pytest
from dnslib import QTYPE, RCODE, RR, SOA, A

from kdns.chain import Chain
from kdns.k8s.models import Kind, parse_object
from kdns.plugin import Handler, Plugin
from kdns.plugins.cache.config import parse as parse_cache
from kdns.plugins.cache.plugin import Cache
from kdns.plugins.kubernetes.options import KubernetesOptions
from kdns.plugins.kubernetes.plugin import Kubernetes
from kdns.request import Reply, Request
from kdns.server.dispatch import Dispatcher
from tests.plugins.kubernetes import test_lookup
from tests.plugins.test_cache import d as cache_directive
from tests.support import objects as o
from tests.support.units import FakeController

NAMES = sorted({name for name, *_ in test_lookup.test_lookup.pytestmark[0].args[1]})  # type: ignore[attr-defined]
QTYPES = ["A", "AAAA", "SRV", "TXT", "PTR", "CNAME", "SOA", "NS", "MX"]


class StaticSource:
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def synced(self) -> bool:
        return True

    async def wait_synced(self, timeout: float) -> bool:
        return True


def dispatcher() -> tuple[Dispatcher, Kubernetes]:
    opts = KubernetesOptions(zones=test_lookup.ZONES, ttl=30, pods="insecure")
    plugin = Kubernetes(opts, StaticSource(), test_lookup.make_index(), FakeController())
    return Dispatcher("dns://:0", [Chain(["."], [plugin])]), plugin


def wire(name: str, qtype: str, shape: int, qid: int) -> bytes:
    q = dns.message.make_query(name, qtype, use_edns=0 if shape else -1, want_dnssec=shape == 2, id=qid)
    return q.to_wire()


def slow(d: Dispatcher, data: bytes, proto: str) -> bytes:
    d.answers.clear()
    out = asyncio.run(d.handle(data, proto, ("127.0.0.1", 5)))
    assert out is not None
    return out


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_fast_replies_equal_slow_replies_byte_for_byte(proto: str) -> None:
    d, _ = dispatcher()
    served = 0
    for name, qtype, shape in itertools.product(NAMES, QTYPES, (0, 1, 2)):
        data = wire(name, qtype, shape, 4242)
        expected = slow(d, data, proto)
        asyncio.run(d.handle(data, proto, ("127.0.0.1", 5)))  # fills the cache when reusable
        fast = d.fast_reply(data, proto, ("127.0.0.1", 5))
        if fast is not None:
            served += 1
            assert fast == expected, (name, qtype, shape)
        again = wire(name, qtype, shape, 777)  # another ID: patched in
        fast2 = d.fast_reply(again, proto, ("127.0.0.1", 5))
        if fast2 is not None:
            assert fast2 == slow(d, again, proto)
    assert served > len(NAMES) * len(QTYPES)  # most questions are reusable


def test_client_spelling_is_echoed_from_a_cached_answer() -> None:
    d, _ = dispatcher()
    asyncio.run(d.handle(wire("web.default.svc.cluster.local.", "A", 1, 1), "udp", ("127.0.0.1", 5)))
    rng = random.Random(7)
    for _ in range(20):
        name = "".join(c.upper() if rng.random() < 0.5 else c for c in "web.default.svc.cluster.local.")
        data = wire(name, "A", 1, rng.randrange(65536))
        fast = d.fast_reply(data, "udp", ("127.0.0.1", 5))
        assert fast is not None
        got = dns.message.from_wire(fast)
        assert got.question[0].name.to_text() == name and got.answer[0].name.to_text() == name
        assert fast == slow(d, data, "udp")


def test_a_change_invalidates_only_its_namespace() -> None:
    d, plugin = dispatcher()
    here = wire("web.default.svc.cluster.local.", "A", 1, 1)
    there = wire("api.other.svc.cluster.local.", "A", 1, 2)
    for data in (here, there):
        asyncio.run(d.handle(data, "udp", ("127.0.0.1", 5)))
    plugin.index.upsert(Kind.SERVICE, parse_object(Kind.SERVICE, o.service("web", ips=["10.96.0.99"])))
    assert d.fast_reply(here, "udp", ("127.0.0.1", 5)) is None  # stale: the slow path answers
    assert d.fast_reply(there, "udp", ("127.0.0.1", 5)) is not None
    fresh = dns.message.from_wire(slow(d, here, "udp"))
    assert fresh.answer[0][0].address == "10.96.0.99"


def test_negative_answers_get_the_current_serial() -> None:
    d, plugin = dispatcher()
    miss = wire("nope.other.svc.cluster.local.", "A", 0, 3)
    asyncio.run(d.handle(miss, "udp", ("127.0.0.1", 5)))
    plugin.index.serial += 100  # a change elsewhere moves the serial, not this namespace
    fast = d.fast_reply(miss, "udp", ("127.0.0.1", 5))
    assert fast is not None and fast == slow(d, miss, "udp")
    assert dns.message.from_wire(fast).authority[0][0].serial == plugin.index.serial


def test_unusual_queries_never_take_the_fast_path() -> None:
    d, _ = dispatcher()
    data = wire("web.default.svc.cluster.local.", "A", 1, 1)
    asyncio.run(d.handle(data, "udp", ("127.0.0.1", 5)))
    q = dns.message.make_query("web.default.svc.cluster.local.", "A", use_edns=1)
    assert d.answers.key(q.to_wire(), False) is None  # EDNS version 1: BADVERS via the chain
    q = dns.message.make_query("web.default.svc.cluster.local.", "A")
    q.flags |= 0x8000
    assert d.fast_reply(q.to_wire(), "udp", ("127.0.0.1", 5)) is None  # a response
    assert d.answers.key(data[:-3], False) is None


def add_big_headless(plugin: Kubernetes, prefix: str) -> None:
    """big.default: a headless Service whose 119 addresses do not fit 512 bytes (nor 1232)."""
    ips = [f"{prefix}.{i}" for i in range(1, 120)]
    plugin.index.upsert(Kind.SERVICE, parse_object(Kind.SERVICE, o.headless("big")))
    plugin.index.upsert(
        Kind.ENDPOINTSLICE,
        parse_object(
            Kind.ENDPOINTSLICE, o.endpoint_slice("big-1", "big", endpoints=[o.endpoint(ip) for ip in ips])
        ),
    )


def test_replies_too_large_for_the_client_go_to_the_slow_path() -> None:
    d, plugin = dispatcher()
    add_big_headless(plugin, "10.250.0")
    big_tcp = wire("big.default.svc.cluster.local.", "A", 0, 9)
    asyncio.run(d.handle(big_tcp, "tcp", ("127.0.0.1", 5)))
    assert d.fast_reply(big_tcp, "tcp", ("127.0.0.1", 5)) is not None
    # A TCP template is too large for a 512-byte client: the chain truncates (and keeps that cut).
    assert d.fast_reply(big_tcp, "udp", ("127.0.0.1", 5)) is None


def test_truncated_replies_replay_only_for_the_same_limit() -> None:
    d, plugin = dispatcher()
    add_big_headless(plugin, "10.250.1")
    plain = wire("big.default.svc.cluster.local.", "A", 0, 9)
    asyncio.run(d.handle(plain, "udp", ("127.0.0.1", 5)))
    fast = d.fast_reply(plain, "udp", ("127.0.0.1", 5))
    assert fast is not None and fast == slow(d, plain, "udp")
    assert dns.message.from_wire(fast, one_rr_per_rrset=True).flags & dns.flags.TC
    edns = dns.message.make_query("big.default.svc.cluster.local.", "A", use_edns=0, payload=1232)
    asyncio.run(d.handle(edns.to_wire(), "udp", ("127.0.0.1", 5)))  # cut at 1232 bytes
    assert d.fast_reply(edns.to_wire(), "udp", ("127.0.0.1", 5)) == slow(d, edns.to_wire(), "udp")
    asyncio.run(d.handle(edns.to_wire(), "udp", ("127.0.0.1", 5)))
    larger = dns.message.make_query("big.default.svc.cluster.local.", "A", use_edns=0, payload=1400)
    assert d.fast_reply(larger.to_wire(), "udp", ("127.0.0.1", 5)) is None  # another cut: the chain's


class NothingElseServed(FakeController):
    def serves(self, qname: str) -> bool:
        return False


def test_external_names_the_server_would_refuse_are_replayed() -> None:
    opts = KubernetesOptions(zones=test_lookup.ZONES, ttl=30, pods="insecure")
    plugin = Kubernetes(opts, StaticSource(), test_lookup.make_index(), NothingElseServed())  # type: ignore[arg-type]
    d = Dispatcher("dns://:0", [Chain(["."], [plugin])])
    data = wire("ext.default.svc.cluster.local.", "A", 0, 3)
    asyncio.run(d.handle(data, "udp", ("127.0.0.1", 5)))
    fast = d.fast_reply(data, "udp", ("127.0.0.1", 5))
    assert fast is not None and fast == slow(d, data, "udp")
    assert [rrset.rdtype for rrset in dns.message.from_wire(fast).answer] == [dns.rdatatype.CNAME]


def test_loadbalance_shuffle_keeps_the_same_records() -> None:
    d, _ = dispatcher()
    d.answers.shuffle = True
    data = wire("db.default.svc.cluster.local.", "A", 1, 5)
    asyncio.run(d.handle(data, "udp", ("127.0.0.1", 5)))
    orders = set()
    for _ in range(30):
        fast = d.fast_reply(data, "udp", ("127.0.0.1", 5))
        assert fast is not None
        msg = dns.message.from_wire(fast)
        orders.add(tuple(rd.address for rd in msg.answer[0]))
    assert {tuple(sorted(o)) for o in orders} == {("10.244.2.1", "10.244.2.2")}
    assert len(orders) == 2


class Upstream(Plugin):
    """Stands in for forward: three addresses for any name, NXDOMAIN with an SOA under nx."""

    name = "forward"

    async def serve(self, request: Request, next_: Handler) -> Reply:
        if request.qname_lower.startswith("nx."):
            msg = request.reply(RCODE.NXDOMAIN)
            soa = SOA("ns.example.org.", "host.example.org.", (7, 3600, 600, 86400, 60))
            msg.add_auth(RR("example.org.", QTYPE.SOA, ttl=120, rdata=soa))
        else:
            msg = request.reply()
            for i in range(1, 4):
                msg.add_answer(RR(request.qname, QTYPE.A, ttl=300, rdata=A(f"192.0.2.{i}")))
        return Reply(msg, self.name)


@pytest.mark.parametrize("name", ["www.example.org.", "nx.example.org."])
def test_cached_upstream_answers_replay_byte_for_byte_counting_down(name: str) -> None:
    cache = Cache(parse_cache(cache_directive("60"), (".",)))
    d = Dispatcher("dns://:0", [Chain(["."], [cache, Upstream()])])
    data = wire(name, "A", 1, 11)
    asyncio.run(d.handle(data, "udp", ("127.0.0.1", 5)))  # a miss: fetched, stored
    for entry in (*cache.success.values(), *cache.denial.values()):
        entry.stored -= 7  # stored seven seconds ago
    asyncio.run(d.handle(data, "udp", ("127.0.0.1", 5)))  # a hit: its bytes become the template
    for proto in ("udp", "tcp"):
        again = wire(name, "A", 1, 12)
        fast = d.fast_reply(again, proto, ("127.0.0.1", 5))
        assert fast is not None and fast == slow(d, again, proto)
        asyncio.run(d.handle(again, proto, ("127.0.0.1", 5)))
    # The cache spells names as stored, so another spelling is the slow path's work.
    assert d.fast_reply(wire(name.upper(), "A", 1, 13), "udp", ("127.0.0.1", 5)) is None
    msg = dns.message.from_wire(d.fast_reply(data, "udp", ("127.0.0.1", 5)) or b"")
    assert {rrset.ttl for rrset in (*msg.answer, *msg.authority)} == {60 - 7}
    for entry in (*cache.success.values(), *cache.denial.values()):
        entry.stored -= 60  # expired: the cache decides again (a miss here)
    asyncio.run(d.handle(data, "udp", ("127.0.0.1", 5)))
    assert d.fast_reply(data, "udp", ("127.0.0.1", 5)) is not None  # the template still had its own clock
