"""A thin dnspython client for tests: one call per question, UDP or TCP, to a loopback server."""

from __future__ import annotations

import socket
import struct

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset

from kdns.protocol.wire import HEADER, rr_offsets, skip_name


def ask(
    port: int,
    name: str,
    rdtype: str | int = "A",
    *,
    tcp: bool = False,
    host: str = "127.0.0.1",
    edns: int | bool = 0,
    payload: int = 1232,
    timeout: float = 3.0,
    rdclass: str = "IN",
    want_dnssec: bool = False,
    options: list[dns.edns.Option] | None = None,
    source: str | None = None,
) -> dns.message.Message:
    """Send one query; `edns=False` sends plain DNS (no OPT). `source`: the loopback address to send
    from (any of 127.0.0.0/8 works on Linux), for tests of source-address rules."""
    use_edns = -1 if edns is False else int(edns)
    q = dns.message.make_query(
        name, rdtype, rdclass, use_edns=use_edns, payload=payload, want_dnssec=want_dnssec, options=options
    )
    if tcp:
        return dns.query.tcp(q, host, port=port, timeout=timeout, source=source)
    return dns.query.udp(q, host, port=port, timeout=timeout, ignore_trailing=True, source=source)


def rcode(msg: dns.message.Message) -> str:
    return dns.rcode.to_text(msg.rcode())


def answer_texts(msg: dns.message.Message, rdtype: str | None = None) -> list[str]:
    """Sorted rdata texts of the answer section (optionally one type only)."""
    out = []
    for rrset in msg.answer:
        if rdtype is None or dns.rdatatype.to_text(rrset.rdtype) == rdtype:
            out.extend(rd.to_text() for rd in rrset)
    return sorted(out)


def section_rrsets(section: list[dns.rrset.RRset]) -> list[tuple[str, str, int, list[str]]]:
    """(owner, type, ttl, sorted rdata) per RRset, for exact comparisons."""
    return [
        (rr.name.to_text(), dns.rdatatype.to_text(rr.rdtype), rr.ttl, sorted(rd.to_text() for rd in rr))
        for rr in section
    ]


def has_flag(msg: dns.message.Message, flag: str) -> bool:
    return bool(msg.flags & dns.flags.from_text(flag))


def ede(msg: dns.message.Message) -> list[tuple[int, str]]:
    """(INFO-CODE, EXTRA-TEXT) of each Extended DNS Error option (RFC 8914) in a reply."""
    return [(o.code, o.text or "") for o in msg.options if isinstance(o, dns.edns.EDEOption)]


def exchange(port: int, wire: bytes, *, tcp: bool = False, timeout: float = 5.0) -> bytes:
    """Send query bytes to a loopback server and return the reply's bytes as they came."""
    if tcp:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(framed(wire))
            size = struct.unpack("!H", _read(s, 2))[0]
            return _read(s, size)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(wire, ("127.0.0.1", port))
        return s.recv(65535)


def framed(wire: bytes) -> bytes:
    """A message as it travels over TCP (RFC 7766 §8: a 2-byte length first)."""
    return struct.pack("!H", len(wire)) + wire


def send_framed(s: socket.socket, wire: bytes) -> None:
    """One query on an open TCP connection."""
    s.sendall(framed(wire))


def read_framed(s: socket.socket) -> bytes | None:
    """The next reply on an open TCP connection; None when the server has closed it."""
    try:
        size = struct.unpack("!H", _read(s, 2))[0]
    except ConnectionError:
        return None
    return _read(s, size)


def _read(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    return data


def without_bare_opt(wire: bytes) -> bytes:
    """A reply's bytes with its OPT record cut out, which must carry no options (RDLENGTH 0): what
    the same reply is to a client without EDNS. Asserts there is exactly one such OPT."""
    qid, flags, qd, an, ns, ar = HEADER.unpack_from(wire)
    i = 12
    for _ in range(qd):
        i = skip_name(wire, i) + 4
    records = rr_offsets(wire, i, an + ns + ar)
    assert records is not None, "the reply does not parse"
    opts = [(start, end, rdata) for start, end, rtype, rdata in records if rtype == dns.rdatatype.OPT]
    assert len(opts) == 1, "no OPT in the reply"
    start, end, rdata = opts[0]
    assert end == rdata, f"the OPT carries options: {wire[rdata:end]!r}"
    return HEADER.pack(qid, flags, qd, an, ns, ar - 1) + wire[12:start] + wire[end:]


def assert_positive_unchanged(port: int, name: str, rdtype: str = "A", *, tcp: bool = False) -> bytes:
    """The reply to `name` with EDNS is the reply without it plus a bare OPT, byte for byte (no EDE
    or other option is added to a positive answer), and it has records. Returns the plain reply."""
    q = dns.message.make_query(name, rdtype, use_edns=0, payload=1232, id=4242)
    plain_q = dns.message.make_query(name, rdtype, use_edns=-1, id=4242)
    with_edns = exchange(port, q.to_wire(), tcp=tcp)
    plain = exchange(port, plain_q.to_wire(), tcp=tcp)
    assert dns.message.from_wire(plain).answer, f"{name} {rdtype}: no answer"
    assert without_bare_opt(with_edns) == plain
    return plain
