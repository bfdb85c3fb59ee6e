"""The kubernetes plugin's replies in wire form: a Result (lookup.py) written after the client's
question, with no message object in between, so the first ask of a cluster name costs a few
microseconds and its bytes become the server's template (kdns.server.fastpath).

Spelling follows CoreDNS (docs/dns-contract.md §15): records at the asked name point at the question
(the client's spelling), and names in the zone — the SOA's owner and its MNAME/RNAME, SRV targets,
NS targets, glue — end in the zone as the client spelled it. A negative answer carries the zone's
SOA in authority (RFC 2308 §3) and, when the query has EDNS, an Extended DNS Error whose text says
why (RFC 8914); positive answers carry none.
"""

from __future__ import annotations

from collections.abc import Sequence

from kdns.plugins.kubernetes.lookup import (
    AddressRR,
    Lookup,
    Name,
    NameRR,
    Record,
    Result,
    SrvRR,
    Status,
    TxtRR,
)
from kdns.protocol.edns import EdeCode, ede, encode_options
from kdns.protocol.writer import QUESTION, MessageWriter, address_record
from kdns.request import Request

TXT, SOA = 16, 6
# SOA timers from CoreDNS (docs/dns-contract.md §15): refresh, retry, expire; the RR's TTL is capped.
SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, SOA_TTL_CAP = 7200, 1800, 86400, 300
ANSWER, AUTHORITY, ADDITIONAL = 0, 1, 2


class Zone:
    """The zone an answer is in, as the client spelled it (its last labels of the question)."""

    def __init__(self, request: Request, zone_labels: int) -> None:
        labels = request.query.labels
        self.labels: tuple[bytes, ...] = labels[len(labels) - zone_labels :] if zone_labels else ()

    def name(self, name: Name) -> tuple[bytes, ...]:
        return name.labels + self.labels if name.zoned else name.labels

    def asked(self, name: Name | None) -> int:
        """How many of the name's last labels are spelled as the client asked (the zone's)."""
        return len(self.labels) if name is not None and name.zoned else 0


def render(
    request: Request,
    result: Result,
    zone: Zone,
    rcode: int,
    lookup: Lookup,
    serial: int,
    info_code: int = EdeCode.OTHER_ERROR,
) -> tuple[bytes, bool]:
    """The reply to `request` saying `result`, with `rcode`; and whether its bytes copy the client's
    spelling out (then they are replayed to the same spelling only)."""
    w = MessageWriter(request.query, request.wire)
    ttl = lookup.ttl
    _records(w, ANSWER, result.answer, zone)
    glue: list[Record] = []
    if result.apex_ns:
        ns_rrs, glue = lookup.nameservers()
        _records(w, ANSWER, ns_rrs, zone)
    if result.apex_soa:
        _soa(w, ANSWER, zone, ttl, serial)
    negative = result.status is not Status.ANSWER or result.negative_tail
    if negative:
        _soa(w, AUTHORITY, zone, ttl, serial)
    _records(w, ADDITIONAL, [*result.additional, *glue], zone)
    options = b""
    if request.edns is not None and (negative or rcode) and result.reason:
        options = encode_options([ede(info_code, result.reason)])
    return w.finish(rcode, aa=True, edns=request.edns, options=options), w.spelled


def _records(w: MessageWriter, section: int, records: Sequence[Record], zone: Zone) -> None:
    for rec in records:
        owner = None if rec.owner is None else zone.name(rec.owner)
        asked = zone.asked(rec.owner)
        if isinstance(rec, AddressRR):
            if owner is None:  # the common case: one concatenation, no name to compress
                w.add(section, address_record(rec.rtype, rec.ttl, rec.rdata, QUESTION))
            else:
                w.record(section, owner, rec.rtype, rec.ttl, rec.rdata, asked)
        elif isinstance(rec, NameRR):
            target = zone.name(rec.target)
            w.name_record(
                section, owner, rec.rtype, rec.ttl, target, b"", True, asked, zone.asked(rec.target)
            )
        elif isinstance(rec, SrvRR):
            w.srv(section, owner, rec.ttl, rec.fields, zone.name(rec.target), asked, zone.asked(rec.target))
        elif isinstance(rec, TxtRR):
            w.record(section, owner, TXT, rec.ttl, rec.text, asked)


def _soa(w: MessageWriter, section: int, zone: Zone, ttl: int, serial: int) -> None:
    """The zone's SOA (docs/dns-contract.md §15): ns.dns.<zone>, hostmaster.<zone>, serial = time of
    the last change, CoreDNS's timers, minimum = ttl; the record's TTL is ttl capped at 300."""
    w.zone_soa(
        section, len(zone.labels), min(ttl, SOA_TTL_CAP), (serial, SOA_REFRESH, SOA_RETRY, SOA_EXPIRE, ttl)
    )
