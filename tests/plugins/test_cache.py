"""cache: Corefile options, reply classification and entries (unit), the plugin's bookkeeping in
process (evictions, drops, metrics), and caching through a real kdns process in front of forward
and a fake upstream (hits, TTL countdown, caps, negative caching, SERVFAIL, disable, DO/CD, stale,
prefetch)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.request import urlopen

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import pytest
from dnslib import NS, QTYPE, RCODE, RR, SOA, A, DNSQuestion, DNSRecord
from prometheus_client.parser import text_string_to_metric_families

from kdns.corefile import CorefileError
from kdns.corefile.model import Directive
from kdns.metrics import REGISTRY
from kdns.plugins.cache.classify import Kind, classify, minimal_ttl
from kdns.plugins.cache.config import CacheConfig, Tier, effective_capacity, parse
from kdns.plugins.cache.entry import Entry
from kdns.plugins.cache.plugin import Cache
from kdns.request import Reply, Request, Reuse
from tests.plugins.kubernetes import cluster
from tests.support import objects as o
from tests.support.apiserver import ApiServer
from tests.support.dnsclient import (
    answer_texts,
    ask,
    assert_positive_unchanged,
    ede,
    has_flag,
    rcode,
    section_rrsets,
)
from tests.support.http import scrape, value
from tests.support.ports import free_port
from tests.support.process import KdnsProcess
from tests.support.upstream import FakeUpstream, running_upstreams

Kdns = Callable[..., KdnsProcess]
Upstreams = Callable[..., FakeUpstream]


def d(*args: str, children: tuple[Directive, ...] = ()) -> Directive:
    return Directive("cache", tuple(args), children, "Corefile", 5, bool(children))


def opt(name: str, *args: str) -> Directive:
    return Directive(name, tuple(args), (), "Corefile", 6)


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    with running_upstreams() as make:
        yield make


# --- Corefile options (unit) ----------------------------------------------------------------------


def test_defaults_match_coredns() -> None:
    cfg = parse(d(), (".",))
    assert cfg == CacheConfig((".",), Tier(9984, 3600, 5), Tier(9984, 1800, 5))
    assert (cfg.servfail_ttl, cfg.prefetch, cfg.stale_up_to, cfg.keepttl) == (5.0, 0, 0.0, False)


def test_ttl_and_zones_arguments() -> None:
    cfg = parse(d("30"), (".",))
    assert (cfg.success.max_ttl, cfg.denial.max_ttl, cfg.zones) == (30, 30, (".",))
    cfg = parse(d("30", "Example.org", "10.0.0.0/8"), (".",))
    assert cfg.zones == ("example.org.", "10.in-addr.arpa.")
    cfg = parse(d("example.org"), (".",))
    assert (cfg.zones, cfg.success.max_ttl) == (("example.org.",), 3600)


def test_capacity_rounds_like_coredns_shards() -> None:
    assert effective_capacity(10000) == 9984
    assert effective_capacity(5000) == 4864
    assert effective_capacity(100) == 1024


def test_options_block() -> None:
    cfg = parse(d("30", children=(
        opt("success", "5000", "60", "2"), opt("denial", "2500", "10"), opt("prefetch", "3", "30s", "20%"),
        opt("serve_stale", "10m", "verify"), opt("servfail", "2s"),
        opt("disable", "success", "cluster.local"), opt("disable", "denial", "cluster.local", "example.org"),
        opt("keepttl"))), (".",))
    assert cfg.success == Tier(4864, 60, 2)
    assert cfg.denial == Tier(2304, 10, 5)
    assert (cfg.prefetch, cfg.prefetch_window, cfg.prefetch_percentage) == (3, 30.0, 20)
    assert (cfg.stale_up_to, cfg.verify_stale, cfg.servfail_ttl, cfg.keepttl) == (600.0, True, 2.0, True)
    assert cfg.disable_success == ("cluster.local.",)
    assert cfg.disable_denial == ("cluster.local.", "example.org.")
    cfg = parse(d(children=(opt("disable", "denial"), opt("serve_stale"))), (".",))
    assert cfg.disable_denial == (".",)
    assert (cfg.stale_up_to, cfg.verify_stale) == (3600.0, False)


@pytest.mark.parametrize(("directive", "message"), [
    (d("0"), "cache TTL can not be zero or negative: 0"),
    (d(children=(opt("success"),)), "wrong argument count"),
    (d(children=(opt("success", "100", "0"),)), "cache TTL can not be zero or negative"),
    (d(children=(opt("denial", "100", "10", "-1"),)), "cache min TTL can not be negative"),
    (d(children=(opt("prefetch", "2", "1m", "5%"),)), "percentage 5 is out of range 10..90"),
    (d(children=(opt("prefetch", "2", "1m", "20"),)), "last character of percentage should be `%`"),
    (d(children=(opt("serve_stale", "1h", "later"),)), "invalid serve_stale refresh mode 'later'"),
    (d(children=(opt("servfail", "6m"),)), "over 5 minutes is not permitted"),
    (d(children=(opt("disable", "errors"),)), "must be 'success' or 'denial'"),
    (d(children=(opt("keepttl", "1"),)), "wrong argument count"),
    (d(children=(opt("bogus"),)), "unknown property 'bogus'"),
])
def test_bad_options_name_the_line(directive: Directive, message: str) -> None:
    with pytest.raises(CorefileError) as e:
        parse(directive, (".",))
    assert message in str(e.value) and "Corefile:" in str(e.value)


# --- classification and entries (unit) -----------------------------------------------------------


def _reply(name: str = "a.example.org.", qtype: str = "A", rcode: int = RCODE.NOERROR) -> DNSRecord:
    msg = DNSRecord.question(name, qtype).reply()
    msg.header.rcode = rcode
    return msg


def _soa(ttl: int = 60) -> RR:
    return RR("example.org.", QTYPE.SOA, ttl=ttl, rdata=SOA("ns.", "h.", (1, 2, 3, 4, 5)))


def test_classify_like_coredns_typify() -> None:
    ok = _reply()
    ok.add_answer(RR("a.example.org.", QTYPE.A, ttl=10, rdata=A("192.0.2.1")))
    assert classify(ok) is Kind.SUCCESS
    nx = _reply(rcode=RCODE.NXDOMAIN)
    assert classify(nx) is Kind.OTHER  # no SOA: RFC 2308 §5, not cacheable
    nx.add_auth(_soa())
    assert classify(nx) is Kind.NXDOMAIN and Kind.NXDOMAIN.denial
    nodata = _reply()
    nodata.add_auth(_soa())
    assert classify(nodata) is Kind.NODATA
    assert classify(_reply()) is Kind.SUCCESS  # NOERROR, nothing at all
    referral = _reply()
    referral.add_auth(RR("example.org.", QTYPE.NS, ttl=10, rdata=NS("ns.example.org.")))
    assert classify(referral) is Kind.DELEGATION and not Kind.DELEGATION.denial
    assert classify(_reply(rcode=RCODE.SERVFAIL)) is Kind.SERVFAIL
    assert not classify(_reply(rcode=RCODE.REFUSED)).cacheable
    assert classify(_reply(qtype="AXFR")) is Kind.META


def test_minimal_ttl() -> None:
    msg = _reply()
    msg.add_answer(RR("a.example.org.", QTYPE.A, ttl=300, rdata=A("192.0.2.1")))
    msg.add_answer(RR("a.example.org.", QTYPE.A, ttl=20, rdata=A("192.0.2.2")))
    msg.add_ar(RR("x.example.org.", QTYPE.A, ttl=7, rdata=A("192.0.2.3")))
    assert minimal_ttl(msg, Kind.SUCCESS) == 7
    assert minimal_ttl(_reply(), Kind.SUCCESS) == 5  # nothing to look at
    big = _reply()
    big.add_answer(RR("a.example.org.", QTYPE.A, ttl=86400, rdata=A("192.0.2.1")))
    assert minimal_ttl(big, Kind.SUCCESS) == 3600
    assert minimal_ttl(big, Kind.DELEGATION) == 5


def _request(name: str, qtype: str = "A", do: bool = False, cd: bool = False) -> Request:
    q = dns.message.make_query(name, qtype, use_edns=0 if do else -1, want_dnssec=do)
    if cd:
        q.flags |= dns.flags.CD
    return Request.from_wire(q.to_wire(), "udp", ("127.0.0.1", 5353), "dns://:53")


def test_entry_reply_counts_down_and_never_below_zero() -> None:
    msg = _reply()
    msg.header.ad = 1
    msg.add_answer(RR("a.example.org.", QTYPE.A, ttl=30, rdata=A("192.0.2.1")))
    msg.add_auth(_soa(30))
    entry = Entry.from_reply(msg, 30, now=100.0)
    assert entry.remaining(112.9) == 18 and entry.remaining(131.0) == -1
    request = _request("A.Example.ORG")
    out = entry.to_reply(request, entry.remaining(112.9))
    assert out.header.id == request.message.header.id and out.header.aa == 1
    assert str(out.q.qname) == "A.Example.ORG."
    assert [rr.ttl for rr in (*out.rr, *out.auth)] == [18, 18]
    assert out.header.ad == 0  # the client did not ask for DNSSEC
    assert entry.to_reply(_request("a.example.org", do=True), -3).rr[0].ttl == 0
    assert entry.to_reply(_request("a.example.org", do=True), 5).header.ad == 1
    assert msg.rr[0].ttl == 30  # the stored records are never modified


# --- the plugin in process: bookkeeping that is hard to see from outside ----------------------------


class Backend:
    """The next plugin for in-process tests: answers A queries with one record and counts calls."""

    def __init__(self, ttl: int = 60) -> None:
        self.calls = 0
        self.ttl = ttl
        self.question: str | None = None  # answer for another name than asked (a bogus reply)

    async def __call__(self, request: Request) -> Reply:
        self.calls += 1
        msg = request.reply(aa=True)
        if self.question is not None:
            msg.questions = [DNSQuestion(self.question, QTYPE.A)]
        msg.add_answer(RR(request.qname, QTYPE.A, ttl=self.ttl, rdata=A("192.0.2.1")))
        return Reply(msg, "file")


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, {"server": "dns://:53", "view": "", **labels}) or 0.0


async def test_evictions_drops_and_counters() -> None:
    zone = "metrics.test."
    cache = Cache(parse(d(zone, children=(opt("success", "1024"),)), (".",)))
    backend = Backend()
    counters = ("requests_total", "misses_total", "drops_total")
    before = {m: _value(f"coredns_cache_{m}", zones=zone) for m in counters}
    evictions = _value("coredns_cache_evictions_total", type="success", zones=zone)
    hits = _value("coredns_cache_hits_total", type="success", zones=zone)
    for i in range(1030):
        await cache.serve(_request(f"n{i}.{zone}"), backend)
    assert len(cache.success) == 1024
    assert _value("coredns_cache_evictions_total", type="success", zones=zone) == evictions + 6
    assert _value("coredns_cache_entries", type="success", zones=zone) == 1024
    await cache.serve(_request(f"n1029.{zone}"), backend)
    assert backend.calls == 1030
    assert _value("coredns_cache_hits_total", type="success", zones=zone) == hits + 1
    backend.question = f"other.{zone}"
    reply = await cache.serve(_request(f"bogus.{zone}"), backend)
    assert reply.plugin == "file"
    await cache.serve(_request(f"bogus.{zone}"), backend)
    assert backend.calls == 1032  # a reply for another question is passed on but never cached
    assert _value("coredns_cache_drops_total", zones=zone) == before["drops_total"] + 2
    assert _value("coredns_cache_requests_total", zones=zone) == before["requests_total"] + 1033
    assert _value("coredns_cache_misses_total", zones=zone) == before["misses_total"] + 1032


async def test_names_outside_the_cache_zones_pass_through() -> None:
    cache = Cache(parse(d("example.org"), (".",)))
    backend = Backend()
    for _ in range(2):
        await cache.serve(_request("a.example.com"), backend)
    assert backend.calls == 2 and len(cache.success) == 0


class _Index:
    """A stand-in for ClusterIndex (kdns.request.Serial)."""

    serial = 1


async def test_kind_config_is_transparent_for_cluster_names() -> None:
    """kind's `cache 30 { disable success cluster.local; disable denial cluster.local }` stores nothing
    for cluster.local, so the server's fast path may replay those replies; the promise rides along."""
    cfg = parse(d("30", children=(opt("disable", "success", "cluster.local"),
                                  opt("disable", "denial", "cluster.local"))), (".",))
    cache = Cache(cfg)
    assert cache.transparent_for("web.default.svc.cluster.local.")
    assert not cache.transparent_for("10.0.96.10.in-addr.arpa.")
    assert not cache.transparent_for("www.example.org.")
    assert not Cache(parse(d("30", children=(opt("disable", "success", "cluster.local"),)), (".",))
                     ).transparent_for("web.default.svc.cluster.local.")
    assert Cache(parse(d("example.org"), (".",))).transparent_for("web.default.svc.cluster.local.")
    versions = {"default": object()}
    reuse = Reuse(deps=((versions, "default", versions["default"]),), serial_source=_Index())

    async def kubernetes(request: Request) -> Reply:
        msg = request.reply(aa=True)
        msg.add_answer(RR(request.owner, QTYPE.A, ttl=30, rdata=A("10.96.0.20")))
        return Reply(msg, "kubernetes", reuse)

    reply = await cache.serve(_request("web.default.svc.cluster.local"), kubernetes)
    assert reply.reuse is reuse and reply.plugin == "kubernetes"
    assert len(cache.success) == 0


# --- through a real kdns process --------------------------------------------------------------------


def _corefile(upstream: FakeUpstream, cache: str = "cache 30", extra: str = "") -> str:
    return f".:{{port}} {{\n{cache}\nforward . {upstream.address}\n{extra}\n}}\n"


def test_hit_is_served_without_the_upstream(kdns: Kdns, upstreams: Upstreams) -> None:
    up = upstreams()
    up.add("www.example.org.", "A", "192.0.2.1", ttl=300)
    up.add("www.example.org.", "A", "192.0.2.2", ttl=300)
    k = kdns(_corefile(up))
    first = ask(k.port, "www.example.org", "A")
    again = ask(k.port, "WWW.Example.ORG", "A")
    tcp = ask(k.port, "www.example.org", "A", tcp=True)
    assert answer_texts(first) == answer_texts(again) == answer_texts(tcp) == ["192.0.2.1", "192.0.2.2"]
    assert len(up.seen()) == 1
    assert again.question[0].name.to_text() == "WWW.Example.ORG."  # the client's spelling
    assert has_flag(again, "AA") and has_flag(again, "RD")


def test_ttl_is_capped_then_counts_down(kdns: Kdns, upstreams: Upstreams) -> None:
    up = upstreams()
    up.add("www.example.org.", "A", "192.0.2.1", ttl=300)
    up.add("www.example.org.", "TXT", '"hello"', ttl=300)
    k = kdns(_corefile(up))
    assert ask(k.port, "www.example.org", "A").answer[0].ttl == 30  # capped by `cache 30`
    for _ in range(3):  # from the second hit on, the server's fast path replays the cached reply
        ask(k.port, "www.example.org", "A")
    time.sleep(2.1)
    later = ask(k.port, "www.example.org", "A").answer[0].ttl
    assert 0 <= later <= 28
    k2 = kdns(_corefile(up, "cache 30 {\n keepttl\n}"))
    assert ask(k2.port, "www.example.org", "TXT").answer[0].ttl == 30
    time.sleep(1.1)
    assert ask(k2.port, "www.example.org", "TXT").answer[0].ttl == 30  # keepttl: no countdown
    assert [q.qtype for q in up.seen()] == ["A", "TXT"]


def test_replayed_hits_expire_with_their_entry(kdns: Kdns, upstreams: Upstreams) -> None:
    up = upstreams()
    up.add("www.example.org.", "A", "192.0.2.1", ttl=300)
    k = kdns(_corefile(up, "cache 1"))
    for _ in range(4):  # a miss, a hit, then replays of the hit
        assert ask(k.port, "www.example.org", "A").answer[0].ttl == 1
    assert len(up.seen()) == 1
    time.sleep(1.1)
    assert ask(k.port, "www.example.org", "A").answer[0].ttl == 1  # expired: fetched again
    assert len(up.seen()) == 2


def test_min_ttl_raises_short_ttls(kdns: Kdns, upstreams: Upstreams) -> None:
    up = upstreams()
    up.add("short.example.org.", "A", "192.0.2.1", ttl=1)
    k = kdns(_corefile(up))
    assert ask(k.port, "short.example.org", "A").answer[0].ttl == 5  # MINTTL default 5
    time.sleep(1.5)
    assert answer_texts(ask(k.port, "short.example.org", "A")) == ["192.0.2.1"]
    assert len(up.seen()) == 1  # still cached after the record's own TTL


def test_negative_answers_are_cached_with_their_soa(kdns: Kdns, upstreams: Upstreams) -> None:
    up = upstreams(soa_ttl=600)
    up.add("www.example.org.", "A", "192.0.2.1")
    k = kdns(_corefile(up, "cache 3600 {\n denial 1024 20\n}"))
    for _ in range(2):
        nx = ask(k.port, "missing.example.org", "A")
        nodata = ask(k.port, "www.example.org", "AAAA")
        assert rcode(nx) == "NXDOMAIN" and rcode(nodata) == "NOERROR" and not nodata.answer
        for msg in (nx, nodata):
            [(_, rtype, ttl, _)] = section_rrsets(msg.authority)
            assert rtype == "SOA" and 0 <= ttl <= 20  # capped by the denial TTL
    assert len(up.seen()) == 2
    bare = upstreams(negative_soa=False)
    k2 = kdns(_corefile(bare))
    for _ in range(2):
        assert rcode(ask(k2.port, "missing.example.org", "A")) == "NXDOMAIN"
    assert len(bare.seen()) == 2  # RFC 2308 §5: no SOA, no negative caching


def test_servfail_is_cached_briefly(kdns: Kdns, upstreams: Upstreams) -> None:
    up = upstreams(mode="servfail")
    k = kdns(_corefile(up, "cache 30 {\n servfail 1s\n}"))
    assert rcode(ask(k.port, "www.example.org", "A")) == "SERVFAIL"
    assert rcode(ask(k.port, "www.example.org", "A")) == "SERVFAIL"
    assert len(up.seen()) == 1
    time.sleep(1.2)
    assert rcode(ask(k.port, "www.example.org", "A")) == "SERVFAIL"
    assert len(up.seen()) == 2  # expired after `servfail 1s`
    k2 = kdns(_corefile(up, "cache 30 {\n servfail 0\n}"))
    ask(k2.port, "other.example.org", "A")
    ask(k2.port, "other.example.org", "A")
    assert len(up.seen("other.example.org.")) == 2


def test_upstream_failure_is_not_cached(kdns: Kdns, upstreams: Upstreams) -> None:
    up = upstreams()
    up.stop()
    k = kdns(_corefile(up))
    assert rcode(ask(k.port, "www.example.org", "A", timeout=10)) == "SERVFAIL"
    up.add("www.example.org.", "A", "192.0.2.1")
    up.start()
    up.wait_for(lambda: "is healthy again" in k.logs())
    assert answer_texts(ask(k.port, "www.example.org", "A", timeout=10)) == ["192.0.2.1"]


def test_disable_success_and_denial_for_cluster_local(kdns: Kdns, upstreams: Upstreams) -> None:
    """kind's `cache 30 { disable success cluster.local; disable denial cluster.local }`."""
    up = upstreams()
    up.add("web.default.svc.cluster.local.", "A", "10.96.0.20", ttl=30)
    up.add("10.0.96.10.in-addr.arpa.", "PTR", "web.default.svc.cluster.local.", ttl=30)
    up.add("www.example.org.", "A", "192.0.2.1")
    k = kdns(_corefile(up, "cache 30 {\n disable success cluster.local\n disable denial cluster.local\n}"))
    questions = [("web.default.svc.cluster.local", "A"), ("nope.default.svc.cluster.local", "A"),
                 ("10.0.96.10.in-addr.arpa", "PTR"), ("www.example.org", "A"), ("nope.example.org", "A")]
    for _ in range(2):
        for name, qtype in questions:
            ask(k.port, name, qtype)
    counts = {name: len(up.seen(name + ".")) for name, _ in questions}
    assert counts == {"web.default.svc.cluster.local": 2, "nope.default.svc.cluster.local": 2,
                      "10.0.96.10.in-addr.arpa": 1, "www.example.org": 1, "nope.example.org": 1}


def test_do_and_cd_bits_are_cached_apart(kdns: Kdns, upstreams: Upstreams) -> None:
    up = upstreams()
    up.add("www.example.org.", "A", "192.0.2.1")
    k = kdns(_corefile(up))
    for _ in range(2):
        ask(k.port, "www.example.org", "A")
        ask(k.port, "www.example.org", "A", want_dnssec=True)
        q = dns.message.make_query("www.example.org", "A")
        q.flags |= dns.flags.CD
        r = dns.query.udp(q, "127.0.0.1", port=k.port, timeout=5)
        assert has_flag(r, "CD")
    seen = up.seen()
    assert [(s.do, s.cd) for s in seen] == [(False, False), (True, False), (False, True)]


def test_truncated_replies_are_not_cached(kdns: Kdns, upstreams: Upstreams) -> None:
    up = upstreams(truncate_udp=True)
    up.add("big.example.org.", "A", "192.0.2.1")
    k = kdns(_corefile(up))
    for _ in range(2):
        assert has_flag(ask(k.port, "big.example.org", "A"), "TC")
    assert len(up.seen()) == 2
    assert answer_texts(ask(k.port, "big.example.org", "A", tcp=True)) == ["192.0.2.1"]
    assert answer_texts(ask(k.port, "big.example.org", "A")) == ["192.0.2.1"]  # the TCP answer is cached
    assert len(up.seen()) == 3


def test_serve_stale_immediate_and_verify(kdns: Kdns, upstreams: Upstreams) -> None:
    up = upstreams()
    up.add("www.example.org.", "A", "192.0.2.1", ttl=1)
    k = kdns(_corefile(up, "cache 30 {\n success 1024 30 1\n serve_stale 1h\n}"))
    assert ask(k.port, "www.example.org", "A").answer[0].ttl == 1
    up.stop()
    time.sleep(1.2)
    stale = ask(k.port, "www.example.org", "A", timeout=10)
    assert answer_texts(stale) == ["192.0.2.1"] and stale.answer[0].ttl == 0
    # verify: ask the source first; a fresh answer wins, a failing source gets the stale one.
    up.clear()
    up.add("www.example.org.", "A", "192.0.2.2", ttl=1)
    up.start()
    k2 = kdns(_corefile(up, "cache 30 {\n success 1024 30 1\n serve_stale 1h verify\n}"))
    assert answer_texts(ask(k2.port, "www.example.org", "A")) == ["192.0.2.2"]
    up.clear()
    up.add("www.example.org.", "A", "192.0.2.3", ttl=1)
    time.sleep(1.2)
    assert answer_texts(ask(k2.port, "www.example.org", "A", timeout=10)) == ["192.0.2.3"]
    up.mode = "servfail"
    time.sleep(1.2)
    stale = ask(k2.port, "www.example.org", "A", timeout=10)
    assert rcode(stale) == "NOERROR" and answer_texts(stale) == ["192.0.2.3"] and stale.answer[0].ttl == 0


def test_stale_and_cached_errors_say_so(kdns: Kdns, upstreams: Upstreams) -> None:
    """RFC 8914: 3 Stale Answer, 19 Stale NXDOMAIN Answer (serve_stale), 13 Cached Error (a cached
    SERVFAIL), over UDP and TCP; a client without EDNS gets no OPT and so no EDE."""
    up = upstreams(soa_ttl=1)
    up.add("www.example.org.", "A", "192.0.2.1", ttl=1)
    k = kdns(_corefile(up, "cache 30 {\n success 1024 30 1\n denial 1024 30 1\n serve_stale 1h\n}"))
    assert ede(ask(k.port, "www.example.org", "A")) == []  # a fresh answer needs no explaining
    assert rcode(ask(k.port, "gone.example.org", "A")) == "NXDOMAIN"
    up.stop()
    time.sleep(1.2)
    stale = re.compile(r"expired \d+s ago, served stale \(cache serve_stale\): it is being refreshed")
    for tcp in (False, True):
        r = ask(k.port, "www.example.org", "A", tcp=tcp, timeout=10)
        assert answer_texts(r) == ["192.0.2.1"]
        [(code, text)] = ede(r)
        assert code == 3 and stale.fullmatch(text), text
        nx = ask(k.port, "gone.example.org", "A", tcp=tcp, timeout=10)
        [(code, text)] = ede(nx)
        assert rcode(nx) == "NXDOMAIN" and code == 19 and stale.fullmatch(text), text
        plain = ask(k.port, "www.example.org", "A", tcp=tcp, edns=False, timeout=10)
        assert answer_texts(plain) == ["192.0.2.1"] and plain.edns == -1
    failing = upstreams(mode="servfail")
    k2 = kdns(_corefile(failing, "cache 30 {\n servfail 30s\n}"))
    first = ask(k2.port, "www.example.org", "A")
    assert rcode(first) == "SERVFAIL" and ede(first) == []  # the upstream's own SERVFAIL, passed on
    for tcp in (False, True):
        r = ask(k2.port, "www.example.org", "A", tcp=tcp)
        [(code, text)] = ede(r)
        assert rcode(r) == "SERVFAIL" and code == 13
        assert re.fullmatch(r"cached SERVFAIL; the source is asked again in \d+s", text), text
        assert ask(k2.port, "www.example.org", "A", tcp=tcp, edns=False).edns == -1
    assert len(failing.seen()) == 1


def test_extended_errors_are_cached_with_the_answer(kdns: Kdns) -> None:
    """A negative answer's EDE comes back from the cache with it (CoreDNS drops it with the OPT)."""
    k = kdns(""".:{port} {
    cache 30 {
        denial 1024 30 1
    }
    template IN A invalid {
        rcode NXDOMAIN
        authority "invalid. 60 IN SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)"
        ederror 15 "reserved name (RFC 6761)"
    }
}
""")
    first = ask(k.port, "x.invalid", "A")
    assert rcode(first) == "NXDOMAIN" and ede(first) == [(15, "reserved name (RFC 6761)")]
    time.sleep(1.1)
    for tcp in (False, True):
        for _ in range(3):  # a hit, then the server's fast path replays its bytes
            hit = ask(k.port, "x.invalid", "A", tcp=tcp)
            assert hit.authority[0].ttl < 30  # counting down: from the cache
            assert rcode(hit) == "NXDOMAIN" and ede(hit) == [(15, "reserved name (RFC 6761)")]
        assert ask(k.port, "x.invalid", "A", tcp=tcp, edns=False).edns == -1


def test_cached_positive_answers_are_unchanged(kdns: Kdns, upstreams: Upstreams) -> None:
    up = upstreams()
    up.add("www.example.org.", "A", "192.0.2.1")
    k = kdns(_corefile(up, "cache 30 {\n keepttl\n}"))  # keepttl: the same TTL in both replies
    for tcp in (False, True):
        assert_positive_unchanged(k.port, "www.example.org.", "A", tcp=tcp)
    assert len(up.seen()) == 1  # the other three are cache hits


def test_prefetch_refreshes_popular_entries(kdns: Kdns, upstreams: Upstreams) -> None:
    up = upstreams()
    up.add("hot.example.org.", "A", "192.0.2.1", ttl=10)
    k = kdns(_corefile(up, "cache 30 {\n prefetch 1 1m 90%\n}"))
    ask(k.port, "hot.example.org", "A")
    time.sleep(1.1)  # within the last 90% of its 10 s lifetime
    up.clear()
    up.add("hot.example.org.", "A", "192.0.2.2", ttl=10)
    assert answer_texts(ask(k.port, "hot.example.org", "A")) == ["192.0.2.1"]  # served from cache...
    up.wait_for(lambda: len(up.seen()) == 2)  # ...and refreshed behind it, over TCP
    assert [q.proto for q in up.seen()] == ["udp", "tcp"]
    up.wait_for(lambda: answer_texts(ask(k.port, "hot.example.org", "A")) == ["192.0.2.2"])


KIND_COREFILE = """\
.:{port} {
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        endpoint %(api)s
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }
    forward . %(upstream)s {
        max_concurrent 1000
    }
    cache 30 {
        disable success cluster.local
        disable denial cluster.local
    }
    loop
    loadbalance
}
"""


def test_kind_corefile_caches_only_non_cluster_answers(kdns: Kdns, upstreams: Upstreams) -> None:
    """kind's Corefile shape: cluster answers follow the API at once (never cached), while forwarded
    names, unknown PTRs falling through and ExternalName targets chased upstream are cached."""
    api = ApiServer(bookmark_interval=1.0)
    api.start()
    try:
        for obj in [*cluster.NAMESPACES, *cluster.SERVICES, *cluster.SLICES, *cluster.PODS]:
            api.add(obj)
        up = upstreams()
        up.add("www.example.com.", "A", "192.0.2.80", ttl=300)
        up.add("4.3.2.1.in-addr.arpa.", "PTR", "host.example.net.", ttl=300)
        k = kdns(KIND_COREFILE % {"api": api.url, "upstream": up.address})
        web = "web.default.svc.cluster.local"
        assert answer_texts(ask(k.port, web)) == ["10.96.0.20"]
        assert rcode(ask(k.port, "new.default.svc.cluster.local")) == "NXDOMAIN"
        api.update(o.service("web", ips=["10.96.0.21"], ports=[o.port("http", 80)]))
        api.add(o.service("new", ips=["10.96.0.99"], ports=[o.port("http", 80)]))
        up.wait_for(lambda: answer_texts(ask(k.port, web)) == ["10.96.0.21"], timeout=10)
        up.wait_for(lambda: answer_texts(ask(k.port, "new.default.svc.cluster.local")) == ["10.96.0.99"],
                    timeout=10)
        for _ in range(2):
            assert answer_texts(ask(k.port, "www.example.com")) == ["192.0.2.80"]
            assert answer_texts(ask(k.port, "4.3.2.1.in-addr.arpa", "PTR")) == ["host.example.net."]
            chased = ask(k.port, "ext.default.svc.cluster.local")  # ExternalName → www.Example.com.
            assert [t.lower() for t in answer_texts(chased, "CNAME")] == ["www.example.com."]
            assert answer_texts(chased, "A") == ["192.0.2.80"]
        counts = {name: len(up.seen(name)) for name in ("www.example.com.", "4.3.2.1.in-addr.arpa.")}
        assert counts == {"www.example.com.": 1, "4.3.2.1.in-addr.arpa.": 1}
    finally:
        api.stop()


def test_cache_and_forward_metrics_on_the_metrics_endpoint(kdns: Kdns, upstreams: Upstreams) -> None:
    up = upstreams()
    up.add("www.example.org.", "A", "192.0.2.1")
    metrics_port = free_port()
    k = kdns(_corefile(up, extra=f"prometheus 127.0.0.1:{metrics_port}"))
    for i in range(10):  # a miss, a hit, then eight replays by the fast path (counted as hits too)
        ask(k.port, "www.example.org", "A", tcp=i % 2 == 1)
    with urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for family in text_string_to_metric_families(text) for s in family.samples}
    server = f"dns://:{k.port}"

    def value(name: str, **labels: str) -> float:
        return values.get((name, tuple(sorted(labels.items()))), -1.0)

    assert value("coredns_cache_requests_total", server=server, zones=".", view="") == 10
    assert value("coredns_cache_misses_total", server=server, zones=".", view="") == 1
    assert value("coredns_cache_hits_total", server=server, type="success", zones=".", view="") == 9
    assert value("coredns_dns_requests_total", server=server, zone=".", view="", proto="udp", family="1",
                 type="A") == 5
    assert value("coredns_cache_entries", server=server, type="success", zones=".", view="") == 1
    assert value("coredns_proxy_request_duration_seconds_count", proxy_name="forward", to=up.address,
                 rcode="NOERROR") >= 1
    assert value("coredns_proxy_conn_cache_misses_total", proxy_name="forward", to=up.address,
                 proto="udp") >= 1
    assert value("coredns_forward_max_concurrent_rejects_total") == 0


def test_a_miss_answered_at_once_is_kept_and_replayed_as_a_hit(kdns: Kdns) -> None:
    """In front of a plugin that answers without awaiting (kubernetes), a miss is stored, answered
    and kept by the server's fast path at once (the cache vouches for it: Reuse.by), where it used
    to take the awaited chain twice (the miss, then the first hit) before anything was replayed.
    Replays count as hits and count the TTL down with the entry, as Python hits do."""
    demo = Path(__file__).resolve().parents[2] / "demo" / "cluster.yaml"
    m = free_port()
    k = kdns(f".:{{port}} {{\n bind 127.0.0.1\n prometheus 127.0.0.1:{m}\n cache 30\n"
             f" kubernetes cluster.local {{\n  manifests {demo}\n  ttl 30\n }}\n}}\n")  # fmt: skip
    url, server = f"http://127.0.0.1:{m}/metrics", f"dns://127.0.0.1:{k.port}"
    name = "web.default.svc.cluster.local"
    first = ask(k.port, name, "A")
    assert answer_texts(first) == ["10.96.0.20"] and first.answer[0].ttl == 30 and has_flag(first, "AA")
    assert scraped(url, "kdns_fastpath_templates", server=server) == 1  # kept at the miss
    for tcp in (False, True, False):
        again = ask(k.port, name.upper(), "A", tcp=tcp)
        assert answer_texts(again) == ["10.96.0.20"] and has_flag(again, "AA")
        assert again.question[0].name.to_text() == name.upper() + "."
    time.sleep(1.1)
    assert ask(k.port, name, "A").answer[0].ttl <= 29  # counting down with the entry
    nope = ask(k.port, "nope.default.svc.cluster.local", "A")
    assert rcode(nope) == "NXDOMAIN" and ask(k.port, "nope.default.svc.cluster.local", "A").authority
    labels = {"server": server, "zones": ".", "view": ""}
    assert scraped(url, "coredns_cache_misses_total", **labels) == 2
    assert scraped(url, "coredns_cache_hits_total", type="success", **labels) == 4
    assert scraped(url, "coredns_cache_hits_total", type="denial", **labels) == 1


def scraped(url: str, name: str, **labels: str) -> float:
    return value(scrape(url)[1], name, **labels)
