"""What kind of reply this is, and how long it may be cached (CoreDNS response.Typify, dnsutil.MinimalTTL).

NXDOMAIN and NODATA count as denial only with an SOA in the authority section (RFC 2308 §5: without
it a negative answer must not be cached); a SERVFAIL goes to the denial cache for `servfail`
seconds; other errors, zone transfers and NOTIFY/UPDATE are never cached. Unlike CoreDNS, expired
RRSIGs are not detected (kdns does not validate DNSSEC).
"""

from __future__ import annotations

from enum import Enum

from dnslib import OPCODE, QTYPE, RCODE, DNSRecord

from kdns.plugins.cache.config import MAX_TTL, MIN_TTL


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


def classify(msg: DNSRecord) -> Kind:
    h = msg.header
    if h.opcode in (OPCODE.UPDATE, OPCODE.NOTIFY):
        return Kind.META
    if msg.questions and msg.questions[0].qtype in _META_QTYPES:
        return Kind.META
    rcode = h.rcode
    if msg.rr and rcode == RCODE.NOERROR:
        return Kind.SUCCESS
    soa = any(rr.rtype == QTYPE.SOA for rr in msg.auth)
    if soa and rcode == RCODE.NOERROR:
        return Kind.NODATA
    if soa and rcode == RCODE.NXDOMAIN:
        return Kind.NXDOMAIN
    if rcode == RCODE.SERVFAIL:
        return Kind.SERVFAIL
    if rcode == RCODE.NOERROR:
        return Kind.DELEGATION if any(rr.rtype == QTYPE.NS for rr in msg.auth) else Kind.SUCCESS
    return Kind.OTHER


def minimal_ttl(msg: DNSRecord, kind: Kind) -> int:
    """The lowest TTL of all records but OPT; 5 s when there are none or for delegations."""
    if kind not in (Kind.SUCCESS, Kind.NXDOMAIN, Kind.NODATA):
        return MIN_TTL
    ttls = [int(rr.ttl) for rr in (*msg.rr, *msg.auth, *msg.ar) if rr.rtype != QTYPE.OPT]
    return min([MAX_TTL, *ttls]) if ttls else MIN_TTL
