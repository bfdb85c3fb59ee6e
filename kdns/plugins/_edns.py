"""EDNS(0) options (RFC 6891 §6.1.2) in queries and replies, for plugins that read or add them:
nsid (RFC 5001), acl and template (Extended DNS Errors, RFC 8914), rewrite's edns0 rules.

dnslib keeps an OPT as a plain RR whose rdata is the list of EDNSOption(code, data).
"""

from __future__ import annotations

from typing import Any

from dnslib import QTYPE, DNSRecord, EDNSOption

from kdns.protocol.edns import EDE as EDE  # re-exported for the plugins
from kdns.protocol.edns import ede as ede

NSID = 3  # RFC 5001 §2.3
SUBNET = 8  # RFC 7871 §6
# RFC 8914 §4 info codes used by kdns's plugins.
EDE_BLOCKED = 15
EDE_FILTERED = 17


def opt_record(message: DNSRecord) -> Any | None:
    """The message's OPT pseudo-record, if any."""
    return next((rr for rr in message.ar if rr.rtype == QTYPE.OPT), None)


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


def add_reply_option(message: DNSRecord, code: int, data: bytes) -> bool:
    """Append an option to a reply's OPT. A reply has an OPT only when the client sent one (RFC 6891
    §7): without it there is nowhere to put the option, and nothing is added (False)."""
    opt = opt_record(message)
    if opt is None:
        return False
    opt.rdata.append(EDNSOption(code, data))
    return True
