"""EDNS(0) (RFC 6891): reading the client's OPT and writing ours."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

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


EDE = 15  # RFC 8914 §2: the Extended DNS Error option code
EDE_OTHER, EDE_NOT_READY = 0, 14  # RFC 8914 §4 INFO-CODEs


def ede(info_code: int, extra_text: str = "") -> tuple[int, bytes]:
    """An Extended DNS Error option (RFC 8914 §2): INFO-CODE, then optional UTF-8 EXTRA-TEXT."""
    return EDE, info_code.to_bytes(2, "big") + extra_text.encode()


def encode_options(options: Sequence[tuple[int, bytes]]) -> bytes:
    """EDNS options in wire form (RFC 6891 §6.1.2: code, length, data)."""
    return b"".join(struct.pack("!HH", code, len(data)) + data for code, data in options)


def opt_record(edns: Edns, ext_rcode: int = 0, options: bytes = b"") -> bytes:
    """Our OPT in wire form (RFC 6891 §6.1.2): owner root, our buffer size, the extended rcode's upper
    bits, version 0, DO mirrored; `options` already encoded. The same bytes as make_opt packs."""
    ttl = (ext_rcode & 0xFF) << 24 | (0x8000 if edns.do else 0)
    return b"\x00" + struct.pack("!HHIH", 41, OUR_UDP_SIZE, ttl, len(options)) + options


def max_reply_size(edns: Edns | None, tcp: bool) -> int:
    """How large a reply may be before it must be truncated (RFC 6891 §6.2.5, RFC 1035 §4.2)."""
    if tcp:
        return TCP_MAX_SIZE
    if edns is None:
        return CLASSIC_UDP_SIZE
    return min(edns.udp_size, TCP_MAX_SIZE)
