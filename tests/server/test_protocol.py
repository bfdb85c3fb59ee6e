"""Sans-IO protocol helpers: EDNS reading, reply shape, truncation."""

from __future__ import annotations

import pytest
from dnslib import EDNS0, NS, QTYPE, RR, A, DNSRecord, EDNSOption

from kdns.protocol import query as wire_query
from kdns.protocol.edns import OUR_UDP_SIZE
from kdns.protocol.message import BADVERS, new_reply, parse_message, to_wire
from kdns.protocol.query import Query


def query(name: str = "big.example.", edns: int | None = None, do: bool = False) -> Query:
    q = DNSRecord.question(name, "A")
    if edns is not None:
        q.add_ar(EDNS0(udp_len=edns, flags="do" if do else ""))
    return wire_query.parse(bytes(q.pack()))


def with_answers(q: Query, n: int) -> DNSRecord:
    r = new_reply(q, q.edns)
    for i in range(n):
        r.add_answer(RR(str(r.q.qname), QTYPE.A, ttl=30, rdata=A(f"10.0.{i // 256}.{i % 256}")))
    return r


def test_edns_is_read_and_mirrored() -> None:
    q = query(edns=4096, do=True)
    e = q.edns
    assert e is not None and (e.version, e.udp_size, e.do) == (0, 4096, True)
    r = DNSRecord.parse(new_reply(q, e).pack())
    (opt,) = [rr for rr in r.ar if rr.rtype == QTYPE.OPT]
    assert opt.rclass == OUR_UDP_SIZE
    assert opt.ttl & 0x8000  # DO mirrored


def test_tiny_edns_size_counts_as_512() -> None:
    e = query(edns=100).edns
    assert e is not None and e.udp_size == 512


def test_no_opt_without_client_edns() -> None:
    r = DNSRecord.parse(new_reply(query(), None).pack())
    assert not r.ar


def test_badvers_splits_the_extended_rcode() -> None:
    q = query(edns=1232)
    r = DNSRecord.parse(new_reply(q, q.edns, BADVERS).pack())
    assert r.header.rcode == 0
    (opt,) = r.ar
    assert (opt.ttl >> 24) == 1


def test_udp_reply_over_512_is_truncated_with_tc() -> None:
    q = query()
    wire = to_wire(with_answers(q, 60), None, tcp=False)
    r = DNSRecord.parse(wire)
    assert len(wire) <= 512 and r.header.tc == 1
    assert 0 < len(r.rr) < 60


@pytest.mark.parametrize("edns", [None, 1232])
def test_truncation_keeps_the_longest_answer_prefix_and_the_opt(edns: int | None) -> None:
    """The byte surgery in kdns.protocol.wire equals re-packing the longest prefix that fits."""
    q = query(edns=edns)
    full = with_answers(q, 120)
    full.add_auth(RR("example.", QTYPE.NS, ttl=30, rdata=NS("ns.example.")))
    cut = to_wire(full, q.edns, tcp=False)
    limit = edns or 512
    kept = len(DNSRecord.parse(cut).rr)

    def repacked(n: int) -> bytes:
        r = new_reply(q, q.edns)
        r.header.tc = 1
        for rr in full.rr[:n]:
            r.add_answer(rr)
        return bytes(r.pack())

    assert cut == repacked(kept)
    assert len(cut) <= limit < len(repacked(kept + 1))
    assert (DNSRecord.parse(cut).ar != []) == (edns is not None)


def test_edns_size_is_honoured_and_tcp_is_not_truncated() -> None:
    q = query(edns=4096)
    assert DNSRecord.parse(to_wire(with_answers(q, 60), q.edns, tcp=False)).header.tc == 0
    q2 = query()
    r = DNSRecord.parse(to_wire(with_answers(q2, 60), None, tcp=True))
    assert r.header.tc == 0 and len(r.rr) == 60


def test_case_of_question_is_echoed() -> None:
    q = query("MiXeD.Example.")
    assert str(DNSRecord.parse(new_reply(q, None).pack()).q.qname) == "MiXeD.Example."


@pytest.mark.parametrize(
    "options",
    [[(3, b"")], [(3, b""), (10, b"12345678")], [(10, b"12345678"), (3, b"")], [(12, b""), (3, b"")], []],
)
def test_empty_edns_options_survive_parsing(options: list[tuple[int, bytes]]) -> None:
    """dnslib alone drops an empty option at the end of the OPT (a client's NSID request); kdns's
    own reader never did."""
    q = DNSRecord.question("x.example.", "A")
    q.add_ar(EDNS0(udp_len=1232, opts=[EDNSOption(code, data) for code, data in options]))
    parsed = parse_message(bytes(q.pack()))
    assert [(o.code, bytes(o.data)) for o in parsed.ar[0].rdata] == options
    edns = wire_query.parse(bytes(q.pack())).edns
    assert edns is not None and list(edns.options) == options
