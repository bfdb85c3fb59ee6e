"""The fast path serves exactly the bytes the plugin chain would, and only while they are right.

Every test runs against the C table (kdns/server/_hotpath.c) and its pure-Python twin
(kdns/server/replay.py): the same templates must give the same bytes, whichever replays them.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable

import dns.flags
import dns.message
import dns.rdatatype
import pytest
from dnslib import MX, QTYPE, RCODE, RR, SOA, A

from kdns.chain import Chain
from kdns.k8s.index import ClusterIndex
from kdns.k8s.models import Kind, parse_object
from kdns.plugin import Handler, Plugin
from kdns.plugins.cache.config import parse as parse_cache
from kdns.plugins.cache.plugin import Cache
from kdns.plugins.kubernetes.options import KubernetesOptions
from kdns.plugins.kubernetes.plugin import Kubernetes
from kdns.plugins.loadbalance import LoadBalance
from kdns.request import Reply, Request, Reuse
from kdns.server import fastpath
from kdns.server.dispatch import Dispatcher
from tests.plugins.kubernetes import test_lookup
from tests.plugins.test_cache import d as cache_directive
from tests.support import objects as o
from tests.support.units import FakeController, StaticSource

NAMES = sorted({name for name, *_ in test_lookup.test_lookup.pytestmark[0].args[1]})  # type: ignore[attr-defined]
QTYPES = ["A", "AAAA", "SRV", "TXT", "PTR", "CNAME", "SOA", "NS", "MX"]
CLIENT = ("127.0.0.1", 5)
TABLES = [pytest.param(True, id="C"), pytest.param(False, id="python")]
if not fastpath.NATIVE:
    TABLES = [pytest.param(False, id="python")]


@pytest.fixture(params=TABLES)
def native(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def kubernetes(controller: FakeController | None = None) -> Kubernetes:
    opts = KubernetesOptions(zones=test_lookup.ZONES, ttl=30, pods="insecure")
    return Kubernetes(opts, StaticSource(), test_lookup.make_index(), controller or FakeController())


def dispatcher(native: bool, *front: Plugin) -> tuple[Dispatcher, Kubernetes]:
    plugin = kubernetes()
    return Dispatcher("dns://:0", [Chain(["."], [*front, plugin])], native=native), plugin


def wire(name: str, qtype: str, shape: int, qid: int) -> bytes:
    q = dns.message.make_query(name, qtype, use_edns=0 if shape else -1, want_dnssec=shape == 2, id=qid)
    return q.to_wire()


def slow(d: Dispatcher, data: bytes, proto: str) -> bytes:
    """The chain's reply (awaited), with no template in the way."""
    d.answers.clear()
    out = asyncio.run(d.handle(data, proto, CLIENT))
    assert out is not None
    return out


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_fast_replies_equal_the_chains_byte_for_byte(native: bool, proto: str) -> None:
    d, _ = dispatcher(native)
    served = 0
    for name, qtype, shape in itertools.product(NAMES, QTYPES, (0, 1, 2)):
        data = wire(name, qtype, shape, 4242)
        expected = slow(d, data, proto)
        first = d.fast_reply(data, proto, CLIENT)  # prepared without awaiting, then replayed
        if first is None:
            continue
        served += 1
        assert first == expected, (name, qtype, shape)
        again = wire(name, qtype, shape, 777)  # another ID: patched in
        assert d.fast_reply(again, proto, CLIENT) == slow(d, again, proto)
    assert served > len(NAMES) * len(QTYPES)  # most questions are answered without the chain


def test_client_spelling_is_echoed_from_a_template(native: bool) -> None:
    d, _ = dispatcher(native)
    rng = random.Random(7)
    for _ in range(20):
        name = "".join(
            c.upper() if rng.random() < 0.5 else c for c in "_http._tcp.web.default.svc.cluster.local."
        )
        data = wire(name, "SRV", 1, rng.randrange(65536))
        fast = d.fast_reply(data, "udp", CLIENT)
        assert fast is not None and fast == slow(d, data, "udp")
        got = dns.message.from_wire(fast)
        assert got.question[0].name.to_text() == name and got.answer[0].name.to_text() == name


def test_srv_targets_and_the_soa_keep_the_zone_as_spelled(native: bool) -> None:
    """CoreDNS answers `ns.dns.ClUsTeR.lOcAl.` to a query for `…ClUsTeR.lOcAl.`."""
    d, _ = dispatcher(native)
    srv = dns.message.from_wire(
        d.fast_reply(wire("_http._tcp.web.default.svc.ClUsTeR.lOcAl.", "SRV", 0, 1), "udp", CLIENT) or b""
    )
    assert [rd.target.to_text() for rd in srv.answer[0]] == ["web.default.svc.ClUsTeR.lOcAl."]
    neg = dns.message.from_wire(
        d.fast_reply(wire("nope.default.svc.ClUsTeR.lOcAl.", "A", 0, 2), "udp", CLIENT) or b""
    )
    (soa,) = neg.authority[0]
    assert neg.authority[0].name.to_text() == "ClUsTeR.lOcAl."
    assert (soa.mname.to_text(), soa.rname.to_text()) == (
        "ns.dns.ClUsTeR.lOcAl.",
        "hostmaster.ClUsTeR.lOcAl.",
    )


class Counting:
    """Counts the kubernetes plugin's lookups: a replayed template asks none."""

    def __init__(self, plugin: Kubernetes) -> None:
        self.calls = 0
        inner = plugin.lookup.lookup

        def counted(*args: object, **kw: object) -> object:
            self.calls += 1
            return inner(*args, **kw)  # type: ignore[arg-type]

        plugin.lookup.lookup = counted  # type: ignore[method-assign]


def served_again(d: Dispatcher, counter: Counting, data: bytes) -> tuple[bytes | None, bool]:
    """The fast reply to `data`, and whether it came from the kept template (no lookup)."""
    before = counter.calls
    return d.fast_reply(data, "udp", CLIENT), counter.calls == before


def slice_of_web(*ips: str) -> object:
    return parse_object(
        Kind.ENDPOINTSLICE,
        o.endpoint_slice(
            "web-abc", "web", endpoints=[o.endpoint(ip) for ip in ips], ports=[o.port("http", 8080)]
        ),
    )


def test_a_clusterip_slice_update_keeps_the_services_templates(native: bool) -> None:
    """A Pod rescheduled behind a ClusterIP Service changes no A/AAAA/SRV answer of the Service:
    those templates stay; only its endpoint names are asked again."""
    d, plugin = dispatcher(native)
    counter = Counting(plugin)
    kept = [wire("web.default.svc.cluster.local.", t, 0, 1) for t in ("A", "AAAA", "SRV")]
    kept.append(wire("_http._tcp.web.default.svc.cluster.local.", "SRV", 0, 2))
    kept.append(wire("api.other.svc.cluster.local.", "A", 0, 3))
    endpoint = wire("10-244-1-6.web.default.svc.cluster.local.", "A", 0, 4)
    for data in (*kept, endpoint):
        assert d.fast_reply(data, "udp", CLIENT) is not None
    plugin.index.upsert(Kind.ENDPOINTSLICE, slice_of_web("10.244.1.5", "10.244.1.99"))
    again = [served_again(d, counter, data) for data in kept]
    reply, replayed = served_again(d, counter, endpoint)
    assert all(replayed for _, replayed in again)
    assert [reply for reply, _ in again] == [slow(d, data, "udp") for data in kept]
    assert not replayed and dns.message.from_wire(reply or b"").rcode() == dns.rcode.NXDOMAIN  # the pod moved


def test_a_headless_change_touches_that_services_names_only(native: bool) -> None:
    d, plugin = dispatcher(native)
    counter = Counting(plugin)
    db = [
        wire("db.default.svc.cluster.local.", "A", 0, 1),
        wire("db-0.db.default.svc.cluster.local.", "A", 0, 2),
    ]
    web = wire("web.default.svc.cluster.local.", "A", 0, 3)
    for data in (*db, web):
        d.fast_reply(data, "udp", CLIENT)
    plugin.index.upsert(
        Kind.ENDPOINTSLICE,
        parse_object(Kind.ENDPOINTSLICE, o.endpoint_slice("db-v4", "db", endpoints=[
            o.endpoint("10.244.2.7", hostname="db-0"), o.endpoint("10.244.2.2")])),
    )  # fmt: skip
    assert served_again(d, counter, web)[1]  # another Service's template stays (slow() clears all)
    for data in db:
        reply, replayed = served_again(d, counter, data)
        assert not replayed and reply == slow(d, data, "udp")
        assert "10.244.2.7" in {
            rd.to_text() for rrset in dns.message.from_wire(reply or b"").answer for rd in rrset
        }


def add_new_service(index: ClusterIndex) -> None:
    index.upsert(Kind.SERVICE, parse_object(Kind.SERVICE, o.service("new", ips=["10.96.0.77"])))


def add_fresh_namespace(index: ClusterIndex) -> None:
    index.upsert(Kind.SERVICE, parse_object(Kind.SERVICE, o.service("web", "fresh", ips=["10.96.0.78"])))
    index.upsert(Kind.NAMESPACE, parse_object(Kind.NAMESPACE, o.namespace("fresh")))


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("new.default.svc.cluster.local.", add_new_service),
        ("web.fresh.svc.cluster.local.", add_fresh_namespace),
    ],
)
def test_a_stale_negative_answer_never_survives(
    native: bool, name: str, change: Callable[..., object]
) -> None:
    """A name that was NXDOMAIN exists once its Service (and namespace) is created."""
    d, plugin = dispatcher(native)
    data = wire(name, "A", 1, 9)
    assert dns.message.from_wire(d.fast_reply(data, "udp", CLIENT) or b"").rcode() == dns.rcode.NXDOMAIN
    change(plugin.index)
    fresh = dns.message.from_wire(d.fast_reply(data, "udp", CLIENT) or b"")
    assert fresh.rcode() == dns.rcode.NOERROR and fresh.answer


def test_a_stale_positive_answer_never_survives(native: bool) -> None:
    d, plugin = dispatcher(native)
    data = wire("web.default.svc.cluster.local.", "A", 0, 9)
    assert d.fast_reply(data, "udp", CLIENT) is not None
    plugin.index.delete(Kind.SERVICE, ("default", "web"))
    assert dns.message.from_wire(d.fast_reply(data, "udp", CLIENT) or b"").rcode() == dns.rcode.NXDOMAIN
    d.fast_reply(data, "udp", CLIENT)
    plugin.index.delete(Kind.NAMESPACE, ("", "other"))
    api = wire("api.other.svc.cluster.local.", "A", 0, 10)
    assert dns.message.from_wire(d.fast_reply(api, "udp", CLIENT) or b"").rcode() == dns.rcode.NXDOMAIN


def test_negative_answers_get_the_current_serial(native: bool) -> None:
    d, plugin = dispatcher(native)
    counter = Counting(plugin)
    miss = wire("nope.other.svc.cluster.local.", "A", 0, 3)
    d.fast_reply(miss, "udp", CLIENT)
    plugin.index.serial += 100  # a change elsewhere moves the serial, not this answer
    fast, replayed = served_again(d, counter, miss)
    assert replayed
    assert fast == slow(d, miss, "udp")
    assert dns.message.from_wire(fast or b"").authority[0][0].serial == plugin.index.serial


def test_unusual_queries_never_take_the_fast_path(native: bool) -> None:
    d, _ = dispatcher(native)
    q = dns.message.make_query("web.default.svc.cluster.local.", "A", use_edns=1)
    assert d.answers.key(q.to_wire(), False) is None  # EDNS version 1: BADVERS via the chain
    assert d.fast_reply(q.to_wire(), "udp", CLIENT) is None
    q = dns.message.make_query("web.default.svc.cluster.local.", "A")
    q.flags |= 0x8000
    assert d.fast_reply(q.to_wire(), "udp", CLIENT) is None  # a response
    data = wire("web.default.svc.cluster.local.", "A", 1, 1)
    assert d.answers.key(data[:-3], False) is None
    rare = wire("web.default.svc.cluster.local.", "NAPTR", 0, 1)
    assert d.fast_reply(rare, "udp", CLIENT) is None  # not a replayed type: state stays bounded


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


def test_truncated_replies_replay_only_for_the_same_limit(native: bool) -> None:
    d, plugin = dispatcher(native)
    add_big_headless(plugin, "10.250.1")
    plain = wire("big.default.svc.cluster.local.", "A", 0, 9)
    fast = d.fast_reply(plain, "udp", CLIENT)
    assert fast is not None and fast == slow(d, plain, "udp")
    assert dns.message.from_wire(fast, one_rr_per_rrset=True).flags & dns.flags.TC
    edns = dns.message.make_query("big.default.svc.cluster.local.", "A", use_edns=0, payload=1232).to_wire()
    assert d.fast_reply(edns, "udp", CLIENT) == slow(d, edns, "udp")  # cut at 1232 bytes
    tcp = wire("big.default.svc.cluster.local.", "A", 0, 9)
    assert d.fast_reply(tcp, "tcp", CLIENT) == slow(d, tcp, "tcp")  # whole over TCP


class NothingElseServed(FakeController):
    def serves(self, qname: str) -> bool:
        return False


def test_external_names_the_server_would_refuse_are_replayed(native: bool) -> None:
    plugin = kubernetes(NothingElseServed())
    d = Dispatcher("dns://:0", [Chain(["."], [plugin])], native=native)
    data = wire("ext.default.svc.cluster.local.", "A", 0, 3)
    assert d.fast_reply(data, "udp", CLIENT) is None  # leaving our zones needs the awaited chain…
    asyncio.run(d.handle(data, "udp", CLIENT))
    fast = d.fast_reply(data, "udp", CLIENT)  # …whose reply, the CNAME alone, is then replayed
    assert fast is not None and fast == slow(d, data, "udp")
    assert [rrset.rdtype for rrset in dns.message.from_wire(fast).answer] == [dns.rdatatype.CNAME]


def orders(d: Dispatcher, data: bytes, section: str = "answer") -> set[tuple[str, ...]]:
    seen = set()
    for _ in range(40):
        msg = dns.message.from_wire(d.fast_reply(data, "udp", CLIENT) or b"", one_rr_per_rrset=True)
        seen.add(tuple(rd.to_text() for rrset in getattr(msg, section) for rd in rrset))
    return seen


def test_loadbalance_shuffle_is_a_property_of_the_template(native: bool) -> None:
    d, _ = dispatcher(native, LoadBalance())
    data = wire("db.default.svc.cluster.local.", "A", 1, 5)
    seen = orders(d, data)
    assert {tuple(sorted(o)) for o in seen} == {("10.244.2.1", "10.244.2.2")} and len(seen) == 2
    srv = wire("db.default.svc.cluster.local.", "SRV", 1, 6)  # glue in additional shuffles too
    assert len(orders(d, srv, "additional")) > 1


def test_a_block_without_loadbalance_is_not_shuffled_beside_one_with_it(native: bool) -> None:
    plain = kubernetes()
    shuffled = kubernetes()
    d = Dispatcher("dns://:0", [Chain(["cluster.local."], [plain]), Chain(["."], [LoadBalance(), shuffled])],
                   native=native)  # fmt: skip
    assert len(orders(d, wire("db.default.svc.cluster.local.", "A", 1, 5))) == 1


def test_cname_then_addresses_are_shuffled_like_the_chain_does(native: bool) -> None:
    d, plugin = dispatcher(native, LoadBalance())
    plugin.index.upsert(
        Kind.SERVICE, parse_object(Kind.SERVICE, o.external("to-db", "db.default.svc.cluster.local"))
    )
    seen = orders(d, wire("to-db.default.svc.cluster.local.", "A", 0, 7))
    assert {o[0] for o in seen} == {"db.default.svc.cluster.local."}  # the CNAME stays first
    assert len(seen) == 2


class MailZone(Plugin):
    """Stands in for a zone file: three MX records, replayable (as the file plugin's are)."""

    name = "file"

    async def serve(self, request: Request, next_: Handler) -> Reply:
        msg = request.reply(aa=True)
        for i, host in enumerate(("a", "b", "c")):
            msg.add_answer(RR(request.owner, QTYPE.MX, ttl=300, rdata=MX(f"{host}.mx.example.org.", 10 + i)))
        return Reply(msg, self.name, Reuse())


def test_replayed_mx_answers_are_shuffled(native: bool) -> None:
    d = Dispatcher("dns://:0", [Chain(["."], [LoadBalance(), MailZone()])], native=native)
    data = wire("example.org.", "MX", 0, 3)
    asyncio.run(d.handle(data, "udp", CLIENT))
    assert len(orders(d, data)) > 1


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
                msg.add_answer(RR(request.owner, QTYPE.A, ttl=300, rdata=A(f"192.0.2.{i}")))
        return Reply(msg, self.name)


@pytest.mark.parametrize("name", ["www.example.org.", "nx.example.org."])
def test_cached_upstream_answers_replay_byte_for_byte_counting_down(native: bool, name: str) -> None:
    cache = Cache(parse_cache(cache_directive("60"), (".",)))
    d = Dispatcher("dns://:0", [Chain(["."], [cache, Upstream()])], native=native)
    data = wire(name, "A", 1, 11)
    asyncio.run(d.handle(data, "udp", CLIENT))  # a miss: fetched, stored
    for entry in (*cache.success.values(), *cache.denial.values()):
        entry.stored -= 7  # stored seven seconds ago
    asyncio.run(d.handle(data, "udp", CLIENT))  # a hit: its bytes become the template
    for proto in ("udp", "tcp"):
        again = wire(name, "A", 1, 12)
        fast = d.fast_reply(again, proto, CLIENT)
        assert fast is not None and fast == slow(d, again, proto)
        asyncio.run(d.handle(again, proto, CLIENT))
    # The cache spells names as stored, so another spelling is the chain's work.
    assert d.fast_reply(wire(name.upper(), "A", 1, 13), "udp", CLIENT) is None
    msg = dns.message.from_wire(d.fast_reply(data, "udp", CLIENT) or b"")
    assert {rrset.ttl for rrset in (*msg.answer, *msg.authority)} == {60 - 7}
    for entry in (*cache.success.values(), *cache.denial.values()):
        entry.stored -= 60  # expired: the cache decides again (a miss here)
    asyncio.run(d.handle(data, "udp", CLIENT))
    assert d.fast_reply(data, "udp", CLIENT) is not None  # the template still had its own clock


def test_cached_and_shuffled_answers_count_down_in_every_record(native: bool) -> None:
    """Groups (shuffled records) count down too: the C patches each record's TTL as it copies it."""
    cache = Cache(parse_cache(cache_directive("60"), (".",)))
    d = Dispatcher("dns://:0", [Chain(["."], [LoadBalance(), cache, Upstream()])], native=native)
    data = wire("www.example.org.", "A", 0, 11)
    asyncio.run(d.handle(data, "udp", CLIENT))
    for entry in cache.success.values():
        entry.stored -= 9
    asyncio.run(d.handle(data, "udp", CLIENT))
    seen = orders(d, data)
    assert len(seen) > 1
    msg = dns.message.from_wire(d.fast_reply(data, "udp", CLIENT) or b"", one_rr_per_rrset=True)
    assert {rrset.ttl for rrset in msg.answer} == {60 - 9}
