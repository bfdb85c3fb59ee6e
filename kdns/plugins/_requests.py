"""Every change kdns's plugins make to a query, in one place.

CoreDNS plugins change the query in front of the next plugins by editing the dns.Msg in place
(rewrite's name, type, class and EDNS options; bufsize's payload size). Here rewrite gets a new
Request for the plugins after it and keeps the client's for its reply, and bufsize clamps the one
request in place, since the server must truncate the reply to the clamped size too.
"""

from __future__ import annotations

from dnslib import EDNS0, QTYPE, RR, DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from kdns.plugins import _edns
from kdns.protocol import names
from kdns.request import Request

# The payload size of an OPT a plugin adds to a query that had none (miekg/dns SetEdns0 in CoreDNS's
# rewrite).
NEW_OPT_UDP_SIZE = 4096


class InvalidName(ValueError):
    """A rewritten name that is not a domain name (empty or over-long label, name over 255 octets)."""


def with_question(request: Request, qname: str, qtype: int, qclass: int) -> Request:
    """`request` asking another question: the name (absolute, escaped text as kdns.protocol.names
    writes it), type and class are replaced; header, EDNS and the rest stay."""
    if not qname.endswith("."):
        raise InvalidName(qname)
    try:
        labels = names.from_text(qname)  # RFC 1035 §2.3.4 limits are checked here
    except names.BadName:
        raise InvalidName(qname) from None
    return request.replaced(_copy(request.message, DNSQuestion(DNSLabel(labels), qtype, qclass)))


def with_options(request: Request, options: list[tuple[int, bytes]]) -> Request:
    """`request` with these EDNS options in its OPT (one is added when it had none, as CoreDNS does;
    `edns` still describes the client's, which the reply follows)."""
    message = _copy(request.message, request.message.q)
    if _edns.opt_record(message) is None:
        message.add_ar(EDNS0(udp_len=NEW_OPT_UDP_SIZE))
    _edns.set_options(message, options)
    return request.replaced(message)


def clamp_udp_size(request: Request, size: int) -> None:
    """Lower the query's EDNS payload size to `size` when it is larger, in place: the plugins after
    (forward) ask with it, and the server truncates the reply to it."""
    if request.edns is None or request.edns.udp_size <= size:
        return
    message = _copy(request.message, request.message.q)
    opt = _edns.opt_record(message)
    if opt is not None:
        opt.rclass = size  # an OPT's CLASS field is the payload size (RFC 6891 §6.1.2)
        request.update(message)


def _copy(message: DNSRecord, question: DNSQuestion) -> DNSRecord:
    """A new query message: header copied, `question`, and copies of the additional records (so the
    OPT can change without touching the client's)."""
    h = message.header
    ar = [_copy_rr(rr) for rr in message.ar]
    return DNSRecord(DNSHeader(id=h.id, bitmap=h.bitmap), questions=[question], ar=ar)


def _copy_rr(rr: RR) -> RR:
    """Records are shared, but for the OPT, whose option list a plugin may change."""
    if rr.rtype != QTYPE.OPT:
        return rr
    return RR(rr.rname, rr.rtype, rr.rclass, rr.ttl, list(rr.rdata))
