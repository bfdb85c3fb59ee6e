"""A thin dnspython client for tests: one call per question, UDP or TCP, to a loopback server."""

from __future__ import annotations

import dns.edns
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset


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
