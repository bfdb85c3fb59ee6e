"""loadbalance: CoreDNS's round_robin order (CNAMEs, others, shuffled addresses, shuffled MX), which
replies it leaves alone, its syntax, and shuffling through a real kdns process."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator

import pytest
from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, TXT, A, DNSRecord

from kdns.corefile import CorefileError
from kdns.plugins import loadbalance
from kdns.request import Reply, Request
from tests.support.dnsclient import ask
from tests.support.process import KdnsProcess
from tests.support.units import context, directive, request
from tests.support.upstream import FakeUpstream, running_upstreams


def rr(rtype: str, data: str, name: str = "example.org.") -> RR:
    make = {"A": A, "AAAA": AAAA, "CNAME": CNAME, "TXT": TXT, "MX": lambda x: MX(x, 10)}[rtype]
    return RR(name, getattr(QTYPE, rtype), rdata=make(data))


def kinds(records: list[RR]) -> list[str]:
    return [QTYPE[r.rtype] for r in records]


def test_order_is_cnames_then_others_then_addresses_then_mx() -> None:
    records = [
        rr("A", "192.0.2.1"),
        rr("MX", "mx1.example.org."),
        rr("CNAME", "x.example.org."),
        rr("TXT", "t"),
        rr("AAAA", "2001:db8::1"),
        rr("A", "192.0.2.2"),
        rr("MX", "mx2.example.org."),
    ]
    out = loadbalance.round_robin(records, random.Random(1))
    assert kinds(out)[:2] == ["CNAME", "TXT"]
    assert sorted(kinds(out)[2:5]) == ["A", "A", "AAAA"] and kinds(out)[5:] == ["MX", "MX"]
    assert sorted(map(str, out)) == sorted(map(str, records))  # nothing lost or added


def test_addresses_are_shuffled() -> None:
    rng = random.Random(7)
    records = [rr("A", f"192.0.2.{i}") for i in range(1, 6)]
    orders = {tuple(str(r.rdata) for r in loadbalance.round_robin(records, rng)) for _ in range(50)}
    assert len(orders) > 10  # 5! = 120 orders; a fixed or rotating order would give 1 or 5


def reply_with(rcode: int = RCODE.NOERROR, qtype: str = "A") -> DNSRecord:
    msg = request(qtype=qtype).reply()
    msg.header.rcode = rcode
    for i in range(1, 5):
        msg.add_answer(rr("A", f"192.0.2.{i}"))
        msg.add_auth(rr("A", f"198.51.100.{i}", "ns.example.org."))
        msg.add_ar(rr("A", f"203.0.113.{i}", "ns.example.org."))
    return msg


def shuffled_sections(msg: DNSRecord, rounds: int = 30) -> tuple[bool, bool, bool]:
    """Whether each section's order ever changed over `rounds` shuffles."""
    rng = random.Random(3)
    first = [list(map(str, s)) for s in (msg.rr, msg.auth, msg.ar)]
    changed = [False, False, False]
    for _ in range(rounds):
        loadbalance.shuffle_reply(msg, rng)
        for i, s in enumerate((msg.rr, msg.auth, msg.ar)):
            changed[i] |= list(map(str, s)) != first[i]
    return changed[0], changed[1], changed[2]


def test_all_three_sections_of_a_noerror_reply_are_shuffled() -> None:
    assert shuffled_sections(reply_with()) == (True, True, True)


@pytest.mark.parametrize(
    ("rcode", "qtype"), [(RCODE.NXDOMAIN, "A"), (RCODE.SERVFAIL, "A"), (RCODE.NOERROR, "AXFR")]
)
def test_other_replies_are_left_alone(rcode: int, qtype: str) -> None:
    assert shuffled_sections(reply_with(rcode, qtype)) == (False, False, False)


async def test_plugin_shuffles_what_comes_back() -> None:
    plugin = loadbalance.setup(directive("loadbalance round_robin"), context("loadbalance round_robin"))
    msg = reply_with()
    msg.rr.insert(3, rr("CNAME", "alias.example.org."))

    async def answer(_: Request) -> Reply:
        return Reply(msg, "file")

    reply = await plugin.serve(request(), answer)
    assert reply.plugin == "file" and kinds(reply.message.rr)[0] == "CNAME"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("loadbalance weighted /etc/weights", "wrong argument count"),
        ("loadbalance weighted", "unknown policy: weighted"),
        ("loadbalance round_robin {\n prefer 10.0.0.0/8\n}", "unknown property 'prefer'"),
    ],
)
def test_unsupported_options_are_refused(text: str, message: str) -> None:
    with pytest.raises(CorefileError, match=re.escape(message)):
        loadbalance.setup(directive(text), context(text))


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with running_upstreams() as make:
        up = make()
        for i in range(1, 5):
            up.add("www.example.org.", "A", f"192.0.2.{i}")
        yield up


def test_real_server_shuffles_forwarded_answers(
    kdns: Callable[..., KdnsProcess], upstream: FakeUpstream
) -> None:
    p = kdns(f".:{{port}} {{\n    loadbalance\n    forward . 127.0.0.1:{upstream.port}\n}}\n")
    orders = set()
    for _ in range(20):
        (rrset,) = ask(p.port, "www.example.org.").answer
        orders.add(tuple(rd.to_text() for rd in rrset))
    assert {frozenset(o) for o in orders} == {frozenset(f"192.0.2.{i}" for i in range(1, 5))}
    assert len(orders) > 1, orders  # 20 identical orders out of 24 possible: about 1 in 10^26
