"""EDNS(0) (RFC 6891): reading the client's OPT and writing ours."""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class Edns:
    """The client's OPT record (RFC 6891 §6.1.3); kdns.protocol.query reads it off the wire."""

    version: int
    udp_size: int  # never below MIN_UDP_SIZE
    do: bool
    options: tuple[tuple[int, bytes], ...] = ()  # (code, data), in the client's order


def make_opt(edns: Edns, ext_rcode: int = 0) -> EDNS0:
    """Our OPT for a reply: our buffer size, DO mirrored, unknown options (e.g. COOKIE) not echoed."""
    return EDNS0(udp_len=OUR_UDP_SIZE, flags="do" if edns.do else "", ext_rcode=ext_rcode, version=0)


def max_reply_size(edns: Edns | None, tcp: bool) -> int:
    """How large a reply may be before it must be truncated (RFC 6891 §6.2.5, RFC 1035 §4.2)."""
    if tcp:
        return TCP_MAX_SIZE
    if edns is None:
        return CLASSIC_UDP_SIZE
    return min(edns.udp_size, TCP_MAX_SIZE)
