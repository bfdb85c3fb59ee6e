"""EDNS(0) options (RFC 6891 §6.1.2) in queries and replies, for plugins that read or add them:
nsid (RFC 5001), Extended DNS Errors (RFC 8914: acl, template, forward, cache), rewrite's edns0 rules.

dnslib keeps an OPT as a plain RR whose rdata is the list of EDNSOption(code, data). The EDE codes
and the reply-option helper live in kdns.protocol (the server itself writes EDEs too) and are
re-exported here, so plugins have one module to ask.
"""

from __future__ import annotations

from dnslib import DNSRecord, EDNSOption

from kdns.protocol.edns import EDE, EdeCode, ede
from kdns.protocol.message import add_reply_option, opt_record

__all__ = ["EDE", "NSID", "SUBNET", "EdeCode", "add_reply_option", "ede", "opt_record", "options",
           "set_options"]  # fmt: skip

NSID = 3  # RFC 5001 §2.3
SUBNET = 8  # RFC 7871 §6


def options(message: DNSRecord) -> list[tuple[int, bytes]] | None:
    """The (code, data) options of the message's OPT in order; None when it has no OPT."""
    opt = opt_record(message)
    if opt is None:
        return None
    return [(int(o.code), bytes(o.data)) for o in opt.rdata]


def set_options(message: DNSRecord, new: list[tuple[int, bytes]]) -> None:
    """Replace the options of the message's OPT (which must exist)."""
    opt = opt_record(message)
    assert opt is not None
    opt.rdata = [EDNSOption(code, data) for code, data in new]
