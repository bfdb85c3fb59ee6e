"""Packets built to hurt a parser get a defined answer through the real process, and the server keeps
answering everyone else: FORMERR for what does not parse, nothing at all for responses.

Regressions for a hostile-Pod probe: a compression-pointer chain ~990 deep raised RecursionError in
the parser, and a question name over 255 octets failed while the reply was packed; both left the
client without an answer and counted as panics.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable

import dns.message
import dns.rcode
import pytest

from tests.support.dnsclient import ask, rcode
from tests.support.process import KdnsProcess

COREFILE = ".:{port} {\n bind 127.0.0.1\n prometheus 127.0.0.1:%d\n errors\n whoami\n}\n"
Kdns = Callable[..., KdnsProcess]


def header(qid: int, flags: int = 0x0100, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def question(name: bytes = b"\x01a\x00", qtype: int = 1) -> bytes:
    return name + struct.pack("!HH", qtype, 1)


def pointer_chain(depth: int) -> bytes:
    """A query whose additional record's owner is the end of a chain of `depth` pointers, each
    pointing at the one before it (all backwards, so only the depth is wrong)."""
    q = question()
    rdata_at = 12 + len(q) + 1 + 10  # after the first record's root owner and fixed fields
    first = 12  # the question's name
    chain = [first] + [rdata_at + 2 * i for i in range(depth - 1)]
    rdata = b"".join(struct.pack("!H", 0xC000 | target) for target in chain)
    carrier = b"\x00" + struct.pack("!HHIH", 65280, 1, 0, len(rdata)) + rdata  # private type
    owner = struct.pack("!H", 0xC000 | (rdata_at + 2 * (depth - 1)))
    victim = owner + struct.pack("!HHIH", 1, 1, 0, 4) + b"\x7f\x00\x00\x01"
    return header(0x4242, ar=2) + q + carrier + victim


def long_name(octets: int) -> bytes:
    """A name of about `octets` octets on the wire, in labels of 63."""
    labels = []
    while sum(len(lb) + 1 for lb in labels) + 1 + 64 <= octets:
        labels.append(b"x" * 63)
    rest = octets - sum(len(lb) + 1 for lb in labels) - 2
    if rest > 0:
        labels.append(b"y" * rest)
    return b"".join(bytes((len(lb),)) + lb for lb in labels) + b"\x00"


def exchange(port: int, payload: bytes, tcp: bool = False, timeout: float = 2.0) -> bytes | None:
    if tcp:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(struct.pack("!H", len(payload)) + payload)
            try:
                n = struct.unpack("!H", s.recv(2))[0]
            except (struct.error, TimeoutError):
                return None
            data = b""
            while len(data) < n:
                data += s.recv(n - len(data))
            return data
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(payload, ("127.0.0.1", port))
        try:
            return s.recv(65535)
        except TimeoutError:
            return None


@pytest.fixture
def server(kdns: Kdns) -> KdnsProcess:
    from tests.support.ports import free_port

    return kdns(COREFILE % free_port())


def assert_formerr(reply: bytes | None, qid: int) -> None:
    assert reply is not None, "no answer"
    assert reply[:2] == struct.pack("!H", qid)
    assert reply[2] & 0x80, "QR must be set"
    assert reply[3] & 0x0F == dns.rcode.FORMERR


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
    # 255 octets is still a name, but whoami's SRV owner `_udp.<name>` would be longer: a reply that
    # cannot be packed is SERVFAIL, logged in one line, never a lost query or a traceback.
    edge = exchange(server.port, header(0x5353) + question(long_name(255)), tcp)
    assert edge is not None and edge[:2] == b"\x53\x53" and edge[3] & 0x0F == dns.rcode.SERVFAIL
    assert rcode(ask(server.port, "still.here.", tcp=tcp)) == "NOERROR"
    assert "Traceback" not in server.logs()
    assert "cannot pack the reply of plugin/whoami" in server.logs()


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
