"""EDNS(0) (RFC 6891): reading the client's OPT and writing ours."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from dnslib import EDNS0

# Our advertised UDP payload size. 1232 is the DNS Flag Day 2020 value: it fits in the IPv6 minimum
# MTU (1280) less headers, so replies never rely on IP fragmentation.
OUR_UDP_SIZE = 1232
# RFC 6891 §6.2.3: values below 512 are treated as 512.
MIN_UDP_SIZE = 512
# RFC 1035 §4.2.1: plain DNS over UDP is limited to 512 bytes.
CLASSIC_UDP_SIZE = 512
# RFC 1035 §4.2.2: TCP messages carry a 2-byte length, so 65535 is the ceiling.
TCP_MAX_SIZE = 65535


@dataclass(slots=True)
class Edns:
    """The client's OPT record (RFC 6891 §6.1.3); kdns.protocol.query reads it off the wire."""

    version: int
    udp_size: int  # never below MIN_UDP_SIZE
    do: bool
    options: tuple[tuple[int, bytes], ...] = ()  # (code, data), in the client's order


def make_opt(edns: Edns, ext_rcode: int = 0) -> EDNS0:
    """Our OPT for a reply: our buffer size, DO mirrored, unknown options (e.g. COOKIE) not echoed."""
    return EDNS0(udp_len=OUR_UDP_SIZE, flags="do" if edns.do else "", ext_rcode=ext_rcode, version=0)


def opt_wire(edns: Edns, ext_rcode: int = 0, options: bytes = b"") -> bytes:
    """Our OPT in wire form (RFC 6891 §6.1.2): owner root, our buffer size, the extended rcode's upper
    bits, version 0, DO mirrored; `options` already encoded. The same bytes as make_opt packs."""
    ttl = (ext_rcode & 0xFF) << 24 | (0x8000 if edns.do else 0)
    return b"\x00" + struct.pack("!HHIH", 41, OUR_UDP_SIZE, ttl, len(options)) + options


def encode_options(options: Sequence[tuple[int, bytes]]) -> bytes:
    """EDNS options in wire form (RFC 6891 §6.1.2: code, length, data)."""
    return b"".join(struct.pack("!HH", code, len(data)) + data for code, data in options)


def max_reply_size(edns: Edns | None, tcp: bool) -> int:
    """How large a reply may be before it must be truncated (RFC 6891 §6.2.5, RFC 1035 §4.2)."""
    if tcp:
        return TCP_MAX_SIZE
    if edns is None:
        return CLASSIC_UDP_SIZE
    return min(edns.udp_size, TCP_MAX_SIZE)


# RFC 8914 §2: the Extended DNS Error option.
EDE = 15
# Its INFO-CODEs by number, named as in RFC 8914 §4 (the IANA registry of §5.2), for people reading
# `kdns explain`.
EDE_NAMES = (
    "Other Error", "Unsupported DNSKEY Algorithm", "Unsupported DS Digest Type", "Stale Answer",
    "Forged Answer", "DNSSEC Indeterminate", "DNSSEC Bogus", "Signature Expired",
    "Signature Not Yet Valid", "DNSKEY Missing", "RRSIGs Missing", "No Zone Key Bit Set",
    "NSEC Missing", "Cached Error", "Not Ready", "Blocked", "Censored", "Filtered", "Prohibited",
    "Stale NXDOMAIN Answer", "Not Authoritative", "Not Supported", "No Reachable Authority",
    "Network Error", "Invalid Data",
)  # fmt: skip


class EdeCode(IntEnum):
    """The INFO-CODEs kdns itself sets (RFC 8914 §4; the section of each is its number + 1)."""

    OTHER_ERROR = 0  # §4.1: nothing else fits; EXTRA-TEXT says what happened
    STALE_ANSWER = 3  # §4.4: served from cache after its TTL ran out (RFC 8767)
    CACHED_ERROR = 13  # §4.14: a SERVFAIL from cache, no source asked
    NOT_READY = 14  # §4.15: not fully functional yet
    BLOCKED = 15  # §4.16: refused by the operator's policy
    FILTERED = 17  # §4.18: filtered at the client's request or by its policy
    STALE_NXDOMAIN_ANSWER = 19  # §4.20: a stale NXDOMAIN from cache
    NOT_AUTHORITATIVE = 20  # §4.21: REFUSED for a name the server does not serve
    NOT_SUPPORTED = 21  # §4.22: the query asks for something the server does not do
    NO_REACHABLE_AUTHORITY = 22  # §4.23: no upstream could be reached
    NETWORK_ERROR = 23  # §4.24: contacting an upstream failed


def ede_name(code: int) -> str:
    """`Stale Answer` for 3; codes past RFC 8914's table by number."""
    return EDE_NAMES[code] if 0 <= code < len(EDE_NAMES) else f"Code {code}"


def ede(info_code: int, extra_text: str = "") -> tuple[int, bytes]:
    """An Extended DNS Error option (RFC 8914 §2): INFO-CODE, then optional UTF-8 EXTRA-TEXT."""
    return EDE, info_code.to_bytes(2, "big") + extra_text.encode()


def read_ede(options: Iterable[tuple[int, bytes]]) -> list[tuple[int, str]]:
    """(INFO-CODE, EXTRA-TEXT) of every EDE option among `options`; malformed ones (shorter than
    the 2-byte code) are skipped, and text that is not UTF-8 is read with replacements (RFC 8914 §2
    says it SHOULD be UTF-8, not that it is)."""
    return [
        (int.from_bytes(data[:2], "big"), data[2:].decode(errors="replace"))
        for code, data in options
        if code == EDE and len(data) >= 2
    ]
