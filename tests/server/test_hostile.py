"""Packets built to hurt a parser get a defined answer through the real process, and the server keeps
answering everyone else: FORMERR for what does not parse, nothing at all for responses.

Regressions for a hostile-Pod probe: a compression-pointer chain ~990 deep raised RecursionError in
the parser, and a question name over 255 octets failed while the reply was packed; both left the
client without an answer and counted as panics.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import dns.message
import dns.rcode
import dns.rdatatype
import pytest

from tests.support.dnsclient import ask, rcode
from tests.support.process import KdnsProcess
from tests.support.rawdns import assert_formerr, exchange, header, long_name, pointer_chain, question

COREFILE = ".:{port} {\n bind 127.0.0.1\n prometheus 127.0.0.1:%d\n errors\n whoami\n}\n"
Kdns = Callable[..., KdnsProcess]


@pytest.fixture
def server(kdns: Kdns) -> KdnsProcess:
    from tests.support.ports import free_port

    return kdns(COREFILE % free_port())


@pytest.mark.parametrize("tcp", [False, True])
def test_deep_pointer_chain_is_formerr(server: KdnsProcess, tcp: bool) -> None:
    assert_formerr(exchange(server.port, pointer_chain(990), tcp), 0x4242)
    assert_formerr(exchange(server.port, pointer_chain(200), tcp), 0x4242)
    assert rcode(ask(server.port, "still.here.", tcp=tcp)) == "NOERROR"
    assert "Traceback" not in server.logs() and "RecursionError" not in server.logs()


def test_short_pointer_chain_is_a_name(server: KdnsProcess) -> None:
    """Pointers to pointers are legal (RFC 1035 §4.1.4) as long as the chain is short."""
    reply = exchange(server.port, pointer_chain(3))
    assert reply is not None and reply[3] & 0x0F == dns.rcode.NOERROR


@pytest.mark.parametrize("tcp", [False, True])
def test_question_name_over_255_octets_is_formerr(server: KdnsProcess, tcp: bool) -> None:
    assert_formerr(exchange(server.port, header(0x5151) + question(long_name(256)), tcp), 0x5151)
    ok = exchange(server.port, header(0x5252) + question(long_name(240)), tcp)
    assert ok is not None and ok[3] & 0x0F == dns.rcode.NOERROR
    # 255 octets is still a name, but whoami's SRV owner `_udp.<name>` would be longer, so whoami
    # leaves the SRV out (it used to build it, and the reply could not be packed: SERVFAIL).
    edge = exchange(server.port, header(0x5353) + question(long_name(255)), tcp)
    assert edge is not None and edge[:2] == b"\x53\x53" and edge[3] & 0x0F == dns.rcode.NOERROR
    additional = dns.message.from_wire(edge).additional
    assert [dns.rdatatype.to_text(rr.rdtype) for rr in additional] == ["A"]
    assert rcode(ask(server.port, "still.here.", tcp=tcp)) == "NOERROR"
    assert "Traceback" not in server.logs()


def test_pointer_loop_and_pointer_past_the_end_are_formerr(server: KdnsProcess) -> None:
    loop = header(0x6161) + b"\xc0\x0c" + struct.pack("!HH", 1, 1)  # points at itself
    assert_formerr(exchange(server.port, loop), 0x6161)
    ahead = header(0x6262) + b"\x01a\xc0\x40" + struct.pack("!HH", 1, 1)  # points past the end
    assert_formerr(exchange(server.port, ahead), 0x6262)


@pytest.mark.parametrize("payload", [pointer_chain(990), header(7, flags=0x8000) + b"\xff" * 20])
def test_responses_are_dropped_parsable_or_not(server: KdnsProcess, payload: bytes) -> None:
    response = bytearray(payload)
    response[2] |= 0x80  # QR=1
    assert exchange(server.port, bytes(response), timeout=0.5) is None
    assert rcode(ask(server.port, "still.here.")) == "NOERROR"


def test_none_of_it_counts_as_a_panic(server: KdnsProcess) -> None:
    for payload in (pointer_chain(990), header(9) + question(long_name(300))):
        exchange(server.port, payload)
    port = int(server.corefile_path.read_text().split("prometheus 127.0.0.1:")[1].split()[0])
    from tests.support.http import get

    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    assert "coredns_panics_total 0.0" in body


def test_a_label_that_is_not_utf8_gets_an_answer(server: KdnsProcess) -> None:
    r = exchange(server.port, header(0x7171) + question(b"\x02\xff\xfe\x00"))
    assert r is not None and r[3] & 0x0F == dns.rcode.NOERROR
    assert dns.message.from_wire(r).question[0].name.labels[0] == b"\xff\xfe"
