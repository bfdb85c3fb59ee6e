"""bufsize (caps the query's EDNS payload size) and nsid (RFC 5001): syntax, and a real kdns process
forwarding to a fake upstream, which shows what was asked and what came back, over UDP and TCP."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import dns.edns
import pytest
from dnslib import QTYPE, DNSRecord

from kdns.corefile import CorefileError
from kdns.plugins import bufsize, nsid
from tests.support.dnsclient import ask, has_flag, rcode
from tests.support.process import KdnsProcess
from tests.support.units import context, directive
from tests.support.upstream import FakeUpstream, running_upstreams


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bufsize 511", "buffer size 511 is out of range 512..4096"),
        ("bufsize 4097", "out of range"),
        ("bufsize big", "'big' is not a whole number"),
        ("bufsize 1232 1400", "wrong argument count"),
        ("bufsize {\n x\n}", "unknown property 'x'"),
    ],
)
def test_bufsize_bad_syntax(text: str, message: str) -> None:
    with pytest.raises(CorefileError, match=re.escape(message)):
        bufsize.setup(directive(text), context(text))


def test_defaults() -> None:
    b = bufsize.setup(directive("bufsize"), context("bufsize"))
    assert isinstance(b, bufsize.Bufsize) and b.size == 1232
    n = nsid.setup(directive("nsid Use The Force"), context("nsid"))
    assert isinstance(n, nsid.Nsid) and n.data == b"Use The Force"
    with pytest.raises(CorefileError, match="unknown property"):
        nsid.setup(directive("nsid {\n x\n}"), context("nsid"))


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with running_upstreams() as make:
        up = make()
        for i in range(60):
            up.add("big.example.", "TXT", f"record number {i:02d} " + "x" * 40)
        up.add("small.example.", "A", "192.0.2.1")
        yield up


def udp_size_seen(up: FakeUpstream, qname: str) -> int | None:
    (seen,) = [q for q in up.seen(qname)][-1:]
    opt = next((rr for rr in DNSRecord.parse(seen.wire).ar if rr.rtype == QTYPE.OPT), None)
    return None if opt is None else int(opt.rclass)


def test_bufsize_lowers_what_is_asked_and_truncates_to_it(
    kdns: Callable[..., KdnsProcess], upstream: FakeUpstream
) -> None:
    p = kdns(f".:{{port}} {{\n  bind 127.0.0.1\n  bufsize 1100\n  forward . 127.0.0.1:{upstream.port}\n}}\n")
    r = ask(p.port, "small.example.", payload=4096)
    assert rcode(r) == "NOERROR" and udp_size_seen(upstream, "small.example.") == 1100
    ask(p.port, "small.example.", payload=800)
    assert udp_size_seen(upstream, "small.example.") == 800  # only ever lowered
    ask(p.port, "small.example.", edns=False)
    assert udp_size_seen(upstream, "small.example.") is None  # no OPT: nothing to change
    big = ask(p.port, "big.example.", "TXT", payload=4096)  # ~3.5 kB of records
    assert has_flag(big, "TC") and len(big.to_wire()) <= 1100
    full = ask(p.port, "big.example.", "TXT", payload=4096, tcp=True)
    assert not has_flag(full, "TC") and len(full.answer[0]) == 60


def nsid_of(msg: object) -> bytes | None:
    for option in getattr(msg, "options", ()):
        if option.otype == dns.edns.NSID:
            return bytes(option.data) if hasattr(option, "data") else option.nsid
    return None


@pytest.mark.parametrize("tcp", [False, True])
def test_nsid_only_for_clients_that_ask(
    kdns: Callable[..., KdnsProcess], upstream: FakeUpstream, tcp: bool
) -> None:
    p = kdns(f".:{{port}} {{\n  bind 127.0.0.1\n  nsid kdns-a\n  forward . 127.0.0.1:{upstream.port}\n}}\n")
    asked = ask(p.port, "small.example.", options=[dns.edns.NSIDOption(b"")], tcp=tcp)
    assert rcode(asked) == "NOERROR" and nsid_of(asked) == b"kdns-a"  # the upstream's echo replaced
    assert [o for o in asked.options if o.otype == dns.edns.NSID] and len(asked.options) == 1
    assert nsid_of(ask(p.port, "small.example.", tcp=tcp)) is None
    assert ask(p.port, "small.example.", edns=False, tcp=tcp).edns == -1
