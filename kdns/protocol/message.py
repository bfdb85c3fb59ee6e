"""Building replies and turning them into bytes that fit the transport.

Rules we follow and where they come from:
- the question is echoed in the client's spelling (RFC 1035 §4.1.1; 0x20-safe resolvers need it);
- RD is copied (RFC 1035 §4.1.1); RA stays 0 as CoreDNS's authoritative answers do;
- an OPT is returned iff the client sent one (RFC 6891 §6.1.1);
- a reply too large for UDP drops whole records from the end and sets TC (RFC 2181 §9, RFC 1035
  §4.2.1), so the client retries over TCP.
"""

from __future__ import annotations

from dnslib import QTYPE, RCODE, RR, DNSHeader, DNSLabel, DNSQuestion, DNSRecord, EDNSOption

from kdns.protocol.edns import Edns, make_opt, max_reply_size
from kdns.protocol.query import Query
from kdns.protocol.wire import truncate

BADVERS = 16  # RFC 6891 §9: extended rcode, 12 bits split between header and OPT
_RD, _CD = 0x0100, 0x0010


def new_reply(query: Query, edns: Edns | None, rcode: int = RCODE.NOERROR, aa: bool = False) -> DNSRecord:
    """An empty reply to `query`: ID, opcode, RD and CD copied, question echoed, OPT mirrored."""
    header = DNSHeader(
        id=query.id,
        qr=1,
        opcode=query.opcode,
        aa=int(aa),
        rd=int(bool(query.flags & _RD)),
        ra=0,
        rcode=rcode & 0xF,
    )
    header.cd = int(bool(query.flags & _CD))
    reply = DNSRecord(header)
    # DNSLabel from the label tuple: the labels as sent, a dot inside one included.
    reply.add_question(DNSQuestion(DNSLabel(query.labels), query.qtype, query.qclass))
    if edns is not None:
        reply.add_ar(make_opt(edns, ext_rcode=rcode >> 4))
    return reply


def opt_record(message: DNSRecord) -> RR | None:
    """The message's OPT pseudo-record, if any (dnslib keeps it as a plain RR in `ar`)."""
    return next((rr for rr in message.ar if rr.rtype == QTYPE.OPT), None)


def add_reply_option(message: DNSRecord, code: int, data: bytes) -> bool:
    """Append an option to a reply's OPT. A reply has an OPT only when the client sent one (RFC 6891
    §7): without it there is nowhere to put the option, and nothing is added (False)."""
    opt = opt_record(message)
    if opt is None:
        return False
    opt.rdata.append(EDNSOption(code, data))
    return True


class MessageError(ValueError):
    """A message dnslib cannot read (an upstream's reply, for the forward plugin)."""


def parse_message(wire: bytes) -> DNSRecord:
    """Any DNS message as a dnslib object, or MessageError. dnslib raises many types on bad input,
    RecursionError among them for deep compression-pointer chains: all of them mean "does not parse"."""
    try:
        record = DNSRecord.parse(wire)
    except Exception as e:
        raise MessageError(str(e) or type(e).__name__) from None
    if record.ar and record.ar[-1].rtype == QTYPE.OPT:
        _restore_last_empty_option(record.ar[-1], wire)
    return record


def _restore_last_empty_option(opt: RR, wire: bytes) -> None:
    """dnslib (0.9.26) reads EDNS options only while more than 4 bytes are left, so an empty option
    at the end of the OPT (NSID as a client asks for it, RFC 5001 §2.1) is lost. When the OPT ends
    the packet, its RDLENGTH shows whether it held 4 more bytes than were read: add that option."""
    read = sum(4 + len(o.data) for o in opt.rdata)
    at = len(wire) - read - 6  # where RDLENGTH sits if those 4 bytes were the option, TYPE 8 before
    if (
        at >= 20
        and wire[-2:] == b"\0\0"
        and int.from_bytes(wire[at : at + 2], "big") == read + 4
        and int.from_bytes(wire[at - 8 : at - 6], "big") == QTYPE.OPT
    ):
        opt.rdata.append(EDNSOption(int.from_bytes(wire[-4:-2], "big"), b""))


def formerr_reply(query_id: int) -> bytes:
    """A bare FORMERR (RFC 1035 §4.1.1) for a packet whose question could not be read."""
    return bytes(DNSRecord(DNSHeader(id=query_id, qr=1, rcode=RCODE.FORMERR)).pack())


def to_wire(reply: DNSRecord, edns: Edns | None, tcp: bool) -> bytes:
    """Pack `reply`, truncating with TC=1 when it does not fit the client's limit."""
    return fit(bytes(reply.pack()), edns, tcp)


def fit(wire: bytes, edns: Edns | None, tcp: bool) -> bytes:
    """`wire` as sent to this client: cut with TC=1 when longer than it takes (RFC 1035 §4.2.1)."""
    limit = max_reply_size(edns, tcp)
    if len(wire) <= limit:
        return wire
    return truncate(wire, limit)  # byte surgery: re-packing with dnslib cost ~0.2 ms a try
