"""Reading a query off the wire without building message objects (sans-IO).

Every packet a client sends is checked whole here before any plugin sees it, so that each outcome
is decided in one place (RFC 1035 §4.1.1):
- fewer than 12 octets, or QR=1 (a response: answering it would let two servers bounce packets at
  each other): dropped, no reply;
- anything else that does not parse — names breaking RFC 1035 §4.1.4 or §2.3.4 (pointer loops and
  chains, names over 255 octets, label types 0b01/0b10), records running past the end, more than
  one OPT or an OPT outside the additional section or not owned by the root (RFC 6891 §6.1.1):
  FORMERR carrying the query's ID;
- a header that no query has — no question or more than one, more than one answer or authority
  record, more than two additional records: FORMERR without reading further, as CoreDNS's server
  library does before any plugin runs (miekg/dns DefaultMsgAcceptFunc; the counts leave room for a
  NOTIFY's SOA, RFC 1996 §3.7, and an OPT plus a TSIG);
Octets after the last record are ignored, as most servers do.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from kdns.protocol import names
from kdns.protocol.edns import MIN_UDP_SIZE, Edns
from kdns.protocol.wire import HEADER, RR_FIXED, TYPE_OPT

QR = 0x8000


class Dropped(Exception):
    """Not a query to answer at all: too short for a header, or a response (QR=1)."""


class FormatError(Exception):
    """The packet is not a well-formed DNS message; the reply is FORMERR with `query_id`."""

    def __init__(self, reason: str, query_id: int) -> None:
        super().__init__(reason)
        self.query_id = query_id


@dataclass(slots=True)
class Query:
    """The parts of a query the server and plugins decide on."""

    id: int
    flags: int  # the header's second 16 bits
    labels: tuple[bytes, ...]  # the question's name as the client spelled it
    qtype: int
    qclass: int
    question_end: int  # offset just past QTYPE/QCLASS
    edns: Edns | None

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF


def parse(wire: bytes) -> Query:
    """Check and read a query. Raises Dropped or FormatError."""
    if len(wire) < HEADER.size:
        raise Dropped("shorter than a DNS header")
    qid, flags, qd, an, ns, ar = HEADER.unpack_from(wire)
    if flags & QR:
        raise Dropped("a response, not a query")
    if qd != 1 or an > 1 or ns > 1 or ar > 2:
        raise FormatError(f"a query has one question (this has {qd}) and few records ({an}/{ns}/{ar})", qid)
    try:
        labels, i = names.read_name(wire, HEADER.size)
        if i + 4 > len(wire):
            raise FormatError("question runs past the end of the message", qid)
        qtype, qclass = struct.unpack_from("!HH", wire, i)
        question_end = i = i + 4
        edns = None
        for section, count in enumerate((an, ns, ar)):
            for _ in range(count):
                owner, i = names.read_name(wire, i)
                if i + RR_FIXED.size > len(wire):
                    raise FormatError("record runs past the end of the message", qid)
                rtype, rclass, ttl, rdlength = RR_FIXED.unpack_from(wire, i)
                rdata_at = i + RR_FIXED.size
                i = rdata_at + rdlength
                if i > len(wire):
                    raise FormatError("record data runs past the end of the message", qid)
                if rtype == TYPE_OPT:
                    if section != 2 or edns is not None or owner:
                        raise FormatError("OPT must be one record, owned by the root, in additional", qid)
                    edns = _edns(rclass, ttl, wire[rdata_at:i], qid)
    except names.BadName as e:
        raise FormatError(str(e), qid) from None
    return Query(qid, flags, labels, qtype, qclass, question_end, edns)


def _edns(udp_size: int, ttl: int, rdata: bytes, qid: int) -> Edns:
    """The OPT's fields (RFC 6891 §6.1.3) and its options (§6.1.2: code, length, data)."""
    options: list[tuple[int, bytes]] = []
    i = 0
    while i < len(rdata):
        if i + 4 > len(rdata):
            raise FormatError("EDNS option header runs past the OPT record", qid)
        code, length = struct.unpack_from("!HH", rdata, i)
        if i + 4 + length > len(rdata):
            raise FormatError("EDNS option runs past the OPT record", qid)
        options.append((code, rdata[i + 4 : i + 4 + length]))
        i += 4 + length
    return Edns(
        version=(ttl >> 16) & 0xFF,
        udp_size=max(udp_size, MIN_UDP_SIZE),
        do=bool(ttl & 0x8000),
        options=tuple(options),
    )
