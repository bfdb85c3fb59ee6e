"""Hand-built DNS packets and raw UDP/TCP exchanges, for tests that send what no client library would
(broken headers, pointer loops, OPTs in the wrong place, responses as queries)."""

from __future__ import annotations

import socket
import struct
from collections.abc import Sequence

import dns.rcode

HEADER = struct.Struct("!HHHHHH")  # id, flags, qdcount, ancount, nscount, arcount
RD = 0x0100


def header(qid: int, flags: int = RD, qd: int = 1, an: int = 0, ns: int = 0, ar: int = 0) -> bytes:
    return HEADER.pack(qid, flags, qd, an, ns, ar)


def wire_name(*labels: bytes) -> bytes:
    """Uncompressed wire form of `labels` and the root."""
    return b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"


def question(name: bytes = b"\x01a\x00", qtype: int = 1, qclass: int = 1) -> bytes:
    return name + struct.pack("!HH", qtype, qclass)


def opt(options: Sequence[tuple[int, bytes]] = (), udp_size: int = 1232, owner: bytes = b"\x00") -> bytes:
    """An OPT record (RFC 6891 §6.1.2) holding `options` as (code, data)."""
    rdata = b"".join(struct.pack("!HH", code, len(data)) + data for code, data in options)
    return owner + struct.pack("!HHIH", 41, udp_size, 0, len(rdata)) + rdata


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


def long_name(octets: int, suffix: tuple[bytes, ...] = ()) -> bytes:
    """A name of exactly `octets` octets on the wire (root included), in labels of 63, ending in
    `suffix`."""
    tail = sum(len(lb) + 1 for lb in suffix) + 1
    labels: list[bytes] = []
    while tail + sum(len(lb) + 1 for lb in labels) + 64 <= octets:
        labels.append(b"x" * 63)
    rest = octets - tail - sum(len(lb) + 1 for lb in labels) - 1
    if rest > 0:
        labels.append(b"y" * rest)
    name = wire_name(*labels, *suffix)
    assert len(name) == octets, (len(name), octets)
    return name


def frame(payload: bytes) -> bytes:
    """RFC 1035 §4.2.2 / RFC 7766 §8: a TCP message is its 2-octet length, then the message."""
    return struct.pack("!H", len(payload)) + payload


def read_frame(sock: socket.socket) -> bytes | None:
    """One TCP message, or None when the server closed the connection (or nothing came in time)."""
    try:
        head = recv_exactly(sock, 2)
        return None if head is None else recv_exactly(sock, struct.unpack("!H", head)[0])
    except (TimeoutError, ConnectionResetError):
        return None


def recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def exchange(port: int, payload: bytes, tcp: bool = False, timeout: float = 2.0) -> bytes | None:
    """Send one message, return the reply (None: no reply within `timeout`, or closed)."""
    if tcp:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(frame(payload))
            return read_frame(s)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(payload, ("127.0.0.1", port))
        try:
            return s.recv(65535)
        except TimeoutError:
            return None


def rcode_of(reply: bytes) -> int:
    """The header's 4-bit rcode."""
    return reply[3] & 0x0F


def assert_reply(reply: bytes | None, qid: int, rcode: int) -> None:
    assert reply is not None, "no answer"
    assert reply[:2] == struct.pack("!H", qid), "the reply's ID is not the query's"
    assert reply[2] & 0x80, "QR must be set"
    got = rcode_of(reply)
    assert got == rcode, f"rcode {dns.rcode.to_text(got)}, want {dns.rcode.to_text(rcode)}"


def assert_formerr(reply: bytes | None, qid: int) -> None:
    assert_reply(reply, qid, dns.rcode.FORMERR)
