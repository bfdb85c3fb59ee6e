"""Walking a packed DNS message by offsets, for work that must not unpack it (RFC 1035 §4.1).

Used where re-packing with dnslib would cost more than the answer itself: truncation (kdns.protocol.
message) and the fast path's templates (kdns.server.fastpath). Compression pointers always point
backwards (RFC 1035 §4.1.4: "a prior occurrence of the same name"), so any prefix of a message's
records is itself well-formed.
"""

from __future__ import annotations

import struct

HEADER = struct.Struct("!HHHHHH")  # id, flags, qdcount, ancount, nscount, arcount
RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
TYPE_OPT = 41
_TC = 0x0200


def skip_name(msg: bytes, i: int) -> int:
    """The offset just past the (possibly compressed) name at `i`."""
    while True:
        length = msg[i]
        if length == 0:
            return i + 1
        if length & 0xC0 == 0xC0:
            return i + 2
        i += length + 1


def rr_offsets(msg: bytes, start: int, count: int) -> list[tuple[int, int, int, int]] | None:
    """(start, end, type, rdata offset) of `count` records from `start`, which must end the
    message; None when they do not parse or leave bytes over."""
    out = []
    i = start
    try:
        for _ in range(count):
            j = skip_name(msg, i)
            rtype, _cls, _ttl, rdlen = RR_FIXED.unpack_from(msg, j)
            end = j + 10 + rdlen
            out.append((i, end, rtype, j + 10))
            i = end
    except (IndexError, struct.error):
        return None
    return out if i == len(msg) else None


def truncate(msg: bytes, limit: int) -> bytes:
    """`msg` cut to `limit` bytes the way CoreDNS does it: TC=1, the longest prefix of the answer
    section that fits, no authority or additional records but the OPT. `msg` is a message we packed
    ourselves; ValueError if it does not parse."""
    qid, flags, qd, an, ns, ar = HEADER.unpack_from(msg)
    i = 12
    try:
        for _ in range(qd):
            i = skip_name(msg, i) + 4
    except IndexError:
        raise ValueError("the question does not parse") from None
    records = rr_offsets(msg, i, an + ns + ar)
    if records is None:
        raise ValueError("the records do not parse")
    opt = b"".join(msg[s:e] for s, e, rtype, _ in records[an + ns :] if rtype == TYPE_OPT)
    room = limit - len(opt)
    kept, end = 0, i
    for _, rr_end, _, _ in records[:an]:
        if rr_end > room:
            break
        kept, end = kept + 1, rr_end
    return HEADER.pack(qid, flags | _TC, qd, kept, 0, 1 if opt else 0) + msg[12:end] + opt
