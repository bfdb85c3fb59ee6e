"""Hostile packets against the real process: each has one defined outcome, and a well-formed query
sent right after it is answered correctly (a Service's address from the kubernetes plugin, over UDP
and TCP), so no packet takes kdns down or changes what other clients get.

Outcomes (RFC 1035 §4.1.1, RFC 6891, CoreDNS's server): fewer than 12 octets or QR=1 → dropped, no
reply; anything that does not parse → FORMERR with the query's ID; opcodes other than QUERY → NOTIMP;
AXFR/IXFR → REFUSED; everything else is a question and gets its answer.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable, Iterator

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from tests.support.dnsclient import answer_texts, ask, rcode
from tests.support.ports import free_port
from tests.support.process import ROOT, KdnsProcess
from tests.support.rawdns import (
    assert_formerr,
    assert_reply,
    exchange,
    frame,
    header,
    long_name,
    opt,
    question,
    rcode_of,
    read_frame,
    wire_name,
)

COREFILE = """\
.:{port} {
    bind 127.0.0.1
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        manifests MANIFESTS
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
    whoami
}
""".replace("MANIFESTS", str(ROOT / "demo" / "cluster.yaml"))
SERVICE = "web.default.svc.cluster.local."
SERVICE_IP = "10.96.0.20"
CLUSTER = (b"cluster", b"local")
WEB = wire_name(b"web", b"default", b"svc", *CLUSTER)
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5


def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KdnsProcess]:
    """One kdns on COREFILE for a module (this one and test_hostile_tcp.py): every test leaves it
    serving, which the next one relies on too; nothing it met may have logged a traceback."""
    port = free_port()
    with KdnsProcess(COREFILE.replace("{port}", str(port)), tmp_path_factory.mktemp("kdns"), port) as k:
        yield k
    assert "Traceback" not in k.logs()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KdnsProcess]:
    yield from serving(tmp_path_factory)


def assert_serves(port: int) -> None:
    """The well-formed query after each hostile one: the Service's address, over UDP and TCP."""
    for tcp in (False, True):
        assert answer_texts(ask(port, SERVICE, tcp=tcp)) == [SERVICE_IP]


def udp_then_good(port: int, payloads: list[bytes]) -> bytes:
    """Send `payloads` and then a good query (ID 0xBEEF) from one socket; return the first reply,
    which must be the good one's when none of `payloads` gets a reply."""
    good = header(0xBEEF) + question(WEB)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.connect(("127.0.0.1", port))
        for p in payloads:
            s.send(p)
        s.send(good)
        return s.recv(65535)


def test_truncated_headers_are_dropped(server: KdnsProcess) -> None:
    good = header(7) + question(WEB)
    first = udp_then_good(server.port, [good[:n] for n in range(12)])
    assert first[:2] == b"\xbe\xef", "a packet shorter than a header got a reply"
    assert_serves(server.port)


@pytest.mark.parametrize("tcp", [False, True])
def test_truncated_messages_are_formerr(server: KdnsProcess, tcp: bool) -> None:
    """A header that promises a question (or a record) the packet does not hold."""
    whole = header(0x1111, ar=1) + question(WEB) + opt()
    for cut in (12, 14, len(header(0)) + len(WEB), len(whole) - 3):
        assert_formerr(exchange(server.port, whole[:cut], tcp), 0x1111)
    assert_serves(server.port)


@pytest.mark.parametrize("tcp", [False, True])
def test_no_question_is_formerr(server: KdnsProcess, tcp: bool) -> None:
    assert_formerr(exchange(server.port, header(0x2222, qd=0), tcp), 0x2222)


@pytest.mark.parametrize("tcp", [False, True])
def test_two_questions_are_formerr(server: KdnsProcess, tcp: bool) -> None:
    two = header(0x3333, qd=2) + question(WEB) + question(wire_name(b"other", b"test"))
    assert_formerr(exchange(server.port, two, tcp), 0x3333)
    many = header(0x3334, qd=500) + question(WEB) * 500
    assert_formerr(exchange(server.port, many, tcp), 0x3334)
    assert_serves(server.port)


@pytest.mark.parametrize("tcp", [False, True])
def test_compression_loops_and_pointers_past_the_end_are_formerr(server: KdnsProcess, tcp: bool) -> None:
    cases = {
        0x4401: question(b"\xc0\x0c"),  # the question's name points at itself
        0x4402: question(b"\x01a\xc0\x0e"),  # points forwards, at its own pointer
        0x4403: question(b"\x01a\xc0\xff"),  # past the end of the message
        0x4404: question(b"\x01a\xff\xff"),  # 0xFFFF: a pointer to offset 16383
        0x4405: question(b"\x01a\xc0\x05"),  # backwards into the header
        0x4406: question(b"\x01a\x00")[:3],  # the name ends with the packet, no root
    }
    for qid, q in cases.items():
        assert_formerr(exchange(server.port, header(qid) + q, tcp), qid)
    # Two records whose owners point at each other, in the additional section.
    loop = header(0x4407, ar=2) + question(WEB) + b"\xc0\x31" + struct.pack("!HHIH", 1, 1, 0, 0)
    assert_formerr(exchange(server.port, loop + b"\xc0\x2f" + struct.pack("!HHIH", 1, 1, 0, 0), tcp), 0x4407)
    assert_serves(server.port)


def test_legal_compression_in_the_additional_section_is_answered(server: KdnsProcess) -> None:
    """A pointer back to the question's name (what real stacks send) is not an attack."""
    q = header(0x4408, ar=1) + question(WEB) + b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 0, 4) + b"\x7f\0\0\1"
    reply = exchange(server.port, q)
    assert_reply(reply, 0x4408, NOERROR)
    assert answer_texts(dns.message.from_wire(reply)) == [SERVICE_IP]  # type: ignore[arg-type]


@pytest.mark.parametrize("tcp", [False, True])
def test_labels_of_63_octets_and_names_of_255(server: KdnsProcess, tcp: bool) -> None:
    """RFC 1035 §2.3.4: both are names (NXDOMAIN under the cluster zone, question echoed exactly);
    a 64-octet length is label type 0b01 and a 256-octet name is not a name: FORMERR."""
    label63 = wire_name(b"L" * 63, b"default", b"svc", *CLUSTER)
    for qid, name in ((0x5501, label63), (0x5502, long_name(255, CLUSTER))):
        reply = exchange(server.port, header(qid) + question(name), tcp)
        assert_reply(reply, qid, NXDOMAIN)
        assert reply is not None and reply[12 : 12 + len(name)] == name, "question not echoed as asked"
    assert_formerr(exchange(server.port, header(0x5503) + question(long_name(256, CLUSTER)), tcp), 0x5503)
    bad_label = b"\x40" + b"L" * 64 + wire_name(*CLUSTER)
    assert_formerr(exchange(server.port, header(0x5504) + question(bad_label), tcp), 0x5504)
    assert_serves(server.port)


@pytest.mark.parametrize("tcp", [False, True])
def test_non_ascii_octets_are_labels_like_any_other(server: KdnsProcess, tcp: bool) -> None:
    """Every octet may be in a label (RFC 2181 §11): not UTF-8, NUL, DEL, a dot. Under the cluster
    zone: NXDOMAIN, question echoed octet for octet; `WEB` with an uppercase octet stays the
    Service (RFC 4343: ASCII case only), a Latin-1 capital does not."""
    for qid, first in ((0x6601, b"\xff\xfe\x00\x7f"), (0x6602, b"w.b"), (0x6603, b"w\xc9b")):
        name = wire_name(first, b"default", b"svc", *CLUSTER)
        reply = exchange(server.port, header(qid) + question(name), tcp)
        assert_reply(reply, qid, NXDOMAIN)
        assert reply is not None and reply[12 : 12 + len(name)] == name
    upper = wire_name(b"WEB", b"default", b"svc", *CLUSTER)
    reply = exchange(server.port, header(0x6604) + question(upper), tcp)
    assert_reply(reply, 0x6604, NOERROR)
    assert answer_texts(dns.message.from_wire(reply)) == [SERVICE_IP]  # type: ignore[arg-type]
    assert_serves(server.port)


@pytest.mark.parametrize("tcp", [False, True])
def test_huge_edns_option_lists_are_answered(server: KdnsProcess, tcp: bool) -> None:
    """Unknown options are ignored (RFC 6891 §6.1.2), however many: 900 fit the 4096-octet UDP
    query kdns reads; over TCP, 16,000 (64 KB, the largest message)."""
    count = 16_000 if tcp else 900
    q = header(0x7701, ar=1) + question(WEB) + opt([(65001, b"")] * count, udp_size=4096)
    assert len(q) <= (65535 if tcp else 4096)
    reply = exchange(server.port, q, tcp, timeout=5)
    assert_reply(reply, 0x7701, NOERROR)
    assert answer_texts(dns.message.from_wire(reply)) == [SERVICE_IP]  # type: ignore[arg-type]
    assert_serves(server.port)


@pytest.mark.parametrize("tcp", [False, True])
def test_edns_option_past_the_opt_is_formerr(server: KdnsProcess, tcp: bool) -> None:
    """An option whose length runs past the OPT's RDLENGTH does not parse (RFC 6891 §6.1.2)."""
    bad = opt([(10, b"12345678")])
    bad = bad[:-10] + struct.pack("!H", 200) + bad[-8:]  # the option claims 200 octets, holds 8
    assert_formerr(exchange(server.port, header(0x7702, ar=1) + question(wire_name(b"fresh", b"test")) + bad,
                            tcp), 0x7702)  # fmt: skip
    assert_serves(server.port)


@pytest.mark.parametrize("tcp", [False, True])
def test_edns_option_past_the_opt_is_formerr_for_a_cached_question(server: KdnsProcess, tcp: bool) -> None:
    good = header(0x7703, ar=1) + question(WEB) + opt()
    for _ in range(2):  # the second answer comes from the fast path's table
        assert_reply(exchange(server.port, good, tcp), 0x7703, NOERROR)
    bad = opt([(10, b"12345678")])
    bad = bad[:-10] + struct.pack("!H", 200) + bad[-8:]
    assert_formerr(exchange(server.port, header(0x7704, ar=1) + question(WEB) + bad, tcp), 0x7704)


@pytest.mark.parametrize("tcp", [False, True])
def test_opt_where_it_must_not_be_is_formerr(server: KdnsProcess, tcp: bool) -> None:
    """RFC 6891 §6.1.1: at most one OPT, in the additional section, owned by the root."""
    q = question(WEB)
    cases = {
        0x8801: header(0x8801, an=1) + q + opt(),
        0x8802: header(0x8802, ns=1) + q + opt(),
        0x8803: header(0x8803, ar=2) + q + opt() + opt(),
        0x8804: header(0x8804, ar=1) + q + opt(owner=wire_name(b"not", b"root")),
    }
    for qid, packet in cases.items():
        assert_formerr(exchange(server.port, packet, tcp), qid)
    assert_serves(server.port)


@pytest.mark.parametrize("tcp", [False, True])
def test_responses_sent_as_queries_are_dropped(server: KdnsProcess, tcp: bool) -> None:
    """QR=1: answering would let two servers bounce packets at each other forever. Over TCP the
    connection stays usable: the next query on it is answered."""
    response = dns.message.make_response(dns.message.make_query(SERVICE, "A"))
    response.id = 0x9901
    garbage = header(0x9902, flags=0x8000) + b"\xff" * 40
    if not tcp:
        assert udp_then_good(server.port, [response.to_wire(), garbage])[:2] == b"\xbe\xef"
    else:
        with socket.create_connection(("127.0.0.1", server.port), timeout=3) as s:
            s.sendall(frame(response.to_wire()) + frame(garbage) + frame(header(0x9903) + question(WEB)))
            reply = read_frame(s)
            assert_reply(reply, 0x9903, NOERROR)
    assert_serves(server.port)


@pytest.mark.parametrize("tcp", [False, True])
def test_opcodes_other_than_query_are_notimp(server: KdnsProcess, tcp: bool) -> None:
    """IQUERY, STATUS, NOTIFY, UPDATE, DSO and the unassigned ones: NOTIMP, opcode echoed."""
    for opcode in range(1, 16):
        qid = 0xA100 + opcode
        reply = exchange(server.port, header(qid, flags=0x0100 | opcode << 11) + question(WEB), tcp)
        assert_reply(reply, qid, NOTIMP)
        assert reply is not None and (reply[2] >> 3) & 0xF == opcode
    assert_serves(server.port)


@pytest.mark.parametrize("tcp", [False, True])
def test_zone_transfers_are_refused(server: KdnsProcess, tcp: bool) -> None:
    for qtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
        assert_reply(exchange(server.port, header(0xA201) + question(wire_name(*CLUSTER), qtype), tcp),
                     0xA201, REFUSED)  # fmt: skip
    assert_serves(server.port)


def test_any_without_the_any_plugin(server: KdnsProcess) -> None:
    """Without `any`, ANY reaches the plugins: the kubernetes plugin answers a Service's addresses
    (docs/dns-contract.md §10; RFC 8482 §4.1 lets a server answer a subset). CoreDNS's kubernetes
    plugin answers NODATA instead (handler.go: any other type is a hidden A lookup)."""
    for tcp in (False, True):
        reply = ask(server.port, SERVICE, "ANY", tcp=tcp)
        assert rcode(reply) == "NOERROR"
        assert {dns.rdatatype.to_text(rr.rdtype) for rr in reply.answer} <= {"A", "AAAA"}
        assert answer_texts(reply, "A") == [SERVICE_IP]
        assert rcode(ask(server.port, "nope.default.svc.cluster.local.", "ANY", tcp=tcp)) == "NXDOMAIN"
    assert_serves(server.port)


def test_any_with_the_any_plugin_is_rfc8482_minimal(kdns: Callable[..., KdnsProcess]) -> None:
    """With `any` in the block (before kubernetes in the plugin order), every ANY query gets the one
    HINFO of RFC 8482 §4.2, and other types are untouched."""
    k = kdns(COREFILE.replace("    errors\n", "    errors\n    any\n"))
    for tcp in (False, True):
        for name in (SERVICE, "nope.default.svc.cluster.local.", "elsewhere.test."):
            reply = ask(k.port, name, "ANY", tcp=tcp)
            assert rcode(reply) == "NOERROR" and not reply.flags & dns.flags.AA
            owners = [(rr.name.to_text(), dns.rdatatype.to_text(rr.rdtype)) for rr in reply.answer]
            assert owners == [(name, "HINFO")]
            assert answer_texts(reply) == ['"ANY obsoleted" "See RFC 8482"']
    assert_serves(k.port)


@pytest.mark.slow
def test_every_qtype_is_answered(server: KdnsProcess) -> None:
    """All 65,536 qtypes of a Service's name: each gets exactly one reply echoing its question.
    AXFR/IXFR are REFUSED; A, AAAA, ANY answer from the Service; every other type is a question about
    a name that exists: NOERROR, no records of that type (RFC 2308 §2.2 NODATA, the zone's SOA in
    authority). Then the server answers as before."""
    pending = set(range(65536))
    rcodes: dict[int, int] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2.0)
        s.connect(("127.0.0.1", server.port))
        for _ in range(3):  # UDP may drop under a burst: ask what is missing again
            todo = sorted(pending)
            for start in range(0, len(todo), 200):
                window = todo[start : start + 200]
                for qtype in window:
                    s.send(header(qtype) + question(WEB, qtype))
                for _ in window:
                    try:
                        reply = s.recv(4096)
                    except TimeoutError:
                        break
                    qtype = struct.unpack_from("!H", reply)[0]
                    assert reply[12 : 12 + len(WEB) + 2] == WEB + struct.pack("!H", qtype), "wrong question"
                    rcodes[qtype] = rcode_of(reply)
                    pending.discard(qtype)
    assert not pending, f"{len(pending)} qtypes never answered, e.g. {sorted(pending)[:10]}"
    refused = {t for t, r in rcodes.items() if r == REFUSED}
    assert refused == {dns.rdatatype.AXFR, dns.rdatatype.IXFR}
    others = {r for t, r in rcodes.items() if t not in refused}
    assert others == {NOERROR}, {dns.rcode.to_text(r) for r in others}
    for qtype in (dns.rdatatype.A, dns.rdatatype.ANY):
        assert answer_texts(ask(server.port, SERVICE, qtype)) == [SERVICE_IP]
    nodata = ask(server.port, SERVICE, 65000)
    assert not nodata.answer and [rr.rdtype for rr in nodata.authority] == [dns.rdatatype.SOA]
    assert_serves(server.port)


def test_a_full_tcp_message_of_garbage_is_formerr(server: KdnsProcess) -> None:
    q = header(0xA301, ar=1) + question(WEB) + b"\x00" + b"\xff" * (65535 - 12 - len(WEB) - 4 - 1)
    assert len(q) == 65535
    assert_formerr(exchange(server.port, q, tcp=True, timeout=5), 0xA301)
    assert_serves(server.port)
