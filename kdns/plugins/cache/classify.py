"""What kind of reply this is, and how long it may be cached (CoreDNS response.Typify, dnsutil.MinimalTTL).

NXDOMAIN and NODATA count as denial only with an SOA in the authority section (RFC 2308 §5: without
it a negative answer must not be cached); a SERVFAIL goes to the denial cache for `servfail`
seconds; other errors, zone transfers and NOTIFY/UPDATE are never cached. Unlike CoreDNS, expired
RRSIGs are not detected (kdns does not validate DNSSEC).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from dnslib import OPCODE, QTYPE, RCODE, DNSRecord

from kdns.plugins.cache.config import MAX_TTL, MIN_TTL
from kdns.protocol.wire import HEADER, TYPE_OPT, rr_offsets, skip_name


class Kind(Enum):
    SUCCESS = "success"  # NOERROR with answers, or NOERROR without answers nor SOA
    DELEGATION = "delegation"
    NXDOMAIN = "nxdomain"
    NODATA = "nodata"
    SERVFAIL = "servfail"
    OTHER = "other"  # other error rcodes: never cached
    META = "meta"  # AXFR/IXFR, NOTIFY, UPDATE: never cached

    @property
    def denial(self) -> bool:
        return self in (Kind.NXDOMAIN, Kind.NODATA, Kind.SERVFAIL)

    @property
    def cacheable(self) -> bool:
        return self not in (Kind.OTHER, Kind.META)


_META_QTYPES = frozenset({QTYPE.AXFR, QTYPE.IXFR})
_TYPE_SOA, _TYPE_NS = 6, 2


@dataclass(frozen=True, slots=True)
class Shape:
    """What classifying and timing a reply reads, from a dnslib message or from wire bytes alike (a
    prepared reply is classified without being parsed into objects)."""

    opcode: int
    qtype: int | None
    rcode: int  # the header's 4 bits
    answers: int
    authority: tuple[int, ...]  # record types in AUTHORITY
    ttls: tuple[int, ...]  # every record's TTL but the OPT's

    @classmethod
    def of(cls, reply: DNSRecord | bytes | Shape) -> Shape:
        if isinstance(reply, Shape):
            return reply
        if isinstance(reply, bytes):
            return cls._of_wire(reply)
        h = reply.header
        return cls(
            int(h.opcode), int(reply.questions[0].qtype) if reply.questions else None, int(h.rcode),
            len(reply.rr), tuple(int(rr.rtype) for rr in reply.auth),
            tuple(int(rr.ttl) for rr in (*reply.rr, *reply.auth, *reply.ar) if rr.rtype != QTYPE.OPT),
        )  # fmt: skip

    @classmethod
    def _of_wire(cls, wire: bytes) -> Shape:
        _, flags, qd, an, ns, ar = HEADER.unpack_from(wire)
        i, qtype = HEADER.size, None
        for n in range(qd):
            i = skip_name(wire, i)
            if n == 0:
                qtype = int.from_bytes(wire[i : i + 2], "big")
            i += 4
        records = rr_offsets(wire, i, an + ns + ar) or []
        ttls = tuple(
            int.from_bytes(wire[at - 6 : at - 2], "big") for _, _, rtype, at in records if rtype != TYPE_OPT
        )
        return cls(
            (flags >> 11) & 0xF,
            qtype,
            flags & 0xF,
            an,
            tuple(t for _, _, t, _ in records[an : an + ns]),
            ttls,
        )


def classify(reply: DNSRecord | bytes | Shape) -> Kind:
    shape = Shape.of(reply)
    if shape.opcode in (OPCODE.UPDATE, OPCODE.NOTIFY) or shape.qtype in _META_QTYPES:
        return Kind.META
    rcode = shape.rcode
    if shape.answers and rcode == RCODE.NOERROR:
        return Kind.SUCCESS
    soa = _TYPE_SOA in shape.authority
    if soa and rcode == RCODE.NOERROR:
        return Kind.NODATA
    if soa and rcode == RCODE.NXDOMAIN:
        return Kind.NXDOMAIN
    if rcode == RCODE.SERVFAIL:
        return Kind.SERVFAIL
    if rcode == RCODE.NOERROR:
        return Kind.DELEGATION if _TYPE_NS in shape.authority else Kind.SUCCESS
    return Kind.OTHER


def minimal_ttl(reply: DNSRecord | bytes | Shape, kind: Kind) -> int:
    """The lowest TTL of all records but OPT; 5 s when there are none or for delegations."""
    if kind not in (Kind.SUCCESS, Kind.NXDOMAIN, Kind.NODATA):
        return MIN_TTL
    ttls = Shape.of(reply).ttls
    return min([MAX_TTL, *ttls]) if ttls else MIN_TTL
