"""Walking a packed DNS message by offsets, for work that must not unpack it (RFC 1035 §4.1).

Used where re-packing with dnslib would cost more than the answer itself: truncation (kdns.protocol.
message) and the fast path's templates (kdns.server.fastpath). Compression pointers always point
backwards (RFC 1035 §4.1.4: "a prior occurrence of the same name"), so any prefix of a message's
records is itself well-formed.
"""

from __future__ import annotations

import random
import struct

from kdns.protocol import names

HEADER = struct.Struct("!HHHHHH")  # id, flags, qdcount, ancount, nscount, arcount
RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
TYPE_OPT = 41
_TC = 0x0200


def rcode(msg: bytes) -> int:
    """The full rcode of a packed message: the header's 4 bits and the OPT's upper 8 (RFC 6891
    §6.1.3)."""
    code = msg[3] & 0x0F
    _, _, qd, an, ns, ar = HEADER.unpack_from(msg)
    if not ar:
        return code
    i = HEADER.size
    for _ in range(qd):
        i = skip_name(msg, i) + 4
    for _, _, rtype, rdata_at in rr_offsets(msg, i, an + ns + ar) or ():
        if rtype == TYPE_OPT:
            code |= msg[rdata_at - 6] << 4  # the TTL's first octet: EXTENDED-RCODE
    return code


def skip_name(msg: bytes, i: int) -> int:
    """The offset just past the (possibly compressed) name at `i`."""
    while True:
        length = msg[i]
        if length == 0:
            return i + 1
        if length & 0xC0 == 0xC0:
            return i + 2
        i += length + 1


# Record types whose RDATA holds domain names that may be compressed (RFC 1035 §3.3, RFC 3597 §4:
# only these well-known types may), as (offset of the name in RDATA, how many names follow).
_NAMES_IN_RDATA = {2: (0, 1), 5: (0, 1), 12: (0, 1), 15: (2, 1), 6: (0, 2), 33: (6, 1)}


def name_pointers(msg: bytes, start: int, rtype: int, rdata_at: int, end: int) -> list[int]:
    """The compression-pointer targets in the record at `start` (its owner, and the names of its
    RDATA for the types above), each pointer followed once."""
    targets: list[int] = []
    names = [start]
    offset, count = _NAMES_IN_RDATA.get(rtype, (0, 0))
    at = rdata_at + offset
    for _ in range(count):
        if at >= end:
            break
        names.append(at)
        at = skip_name(msg, at)
    for i in names:
        while i < end and msg[i] != 0:
            if msg[i] & 0xC0 == 0xC0:
                targets.append(((msg[i] & 0x3F) << 8) | msg[i + 1])
                break
            i += msg[i] + 1
    return targets


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


_SHUFFLED = ({1, 28}, {15})  # A/AAAA together, MX apart: what loadbalance's round robin shuffles


def shuffle_runs(
    msg: bytes, records: list[tuple[int, int, int, int]], counts: tuple[int, int, int], max_run: int = 65535
) -> list[tuple[int, int]] | None:
    """(first, last) indexes into `records` (rr_offsets of the message's sections, in order) of the
    runs loadbalance shuffles: in each section, 2+ adjacent A/AAAA records, and 2+ adjacent MX (round
    robin puts each kind together, CNAMEs and the rest first). None when a run cannot move without
    breaking a name — a compression pointer into it — or is longer than `max_run`."""
    runs: list[tuple[int, int]] = []
    first = 0
    for count in counts:
        section = range(first, first + count)
        for kinds in _SHUFFLED:
            members = [i for i in section if records[i][2] in kinds]
            if len(members) >= 2 and members == list(range(members[0], members[-1] + 1)):
                runs.append((members[0], members[-1] + 1))
        first += count
    runs.sort()
    if any(last - first > max_run for first, last in runs):
        return None
    spans = [(records[first][0], records[last - 1][1]) for first, last in runs]
    for start, end, rtype, rdata_at in records:
        for target in name_pointers(msg, start, rtype, rdata_at, end):
            if any(span_start <= target < span_end for span_start, span_end in spans):
                return None
    return runs


def shuffled(msg: bytes, rng: random.Random) -> bytes:
    """`msg` (a reply we packed) with each of its shuffle runs in a random order, as loadbalance
    shuffles a reply; unchanged when it has none that can move."""
    _, _, qd, an, ns, ar = HEADER.unpack_from(msg)
    i = HEADER.size
    for _ in range(qd):
        i = skip_name(msg, i) + 4
    records = rr_offsets(msg, i, an + ns + ar)
    runs = shuffle_runs(msg, records, (an, ns, ar)) if records is not None else None
    if not records or not runs:
        return msg
    out = bytearray(msg)
    for first, last in runs:
        chunks = [msg[s:e] for s, e, _, _ in records[first:last]]
        rng.shuffle(chunks)
        out[records[first][0] : records[last - 1][1]] = b"".join(chunks)
    return bytes(out)


def set_ttls(msg: bytes, ttl: int, clear_ad: bool = False) -> bytes:
    """`msg` with every record's TTL set to `ttl` (the OPT's field holds flags, RFC 6891 §6.1.3, and
    stays), and AD cleared when asked (RFC 6840 §5.8)."""
    _, _, qd, an, ns, ar = HEADER.unpack_from(msg)
    i = HEADER.size
    for _ in range(qd):
        i = skip_name(msg, i) + 4
    out = bytearray(msg)
    for _, _, rtype, rdata_at in rr_offsets(msg, i, an + ns + ar) or ():
        if rtype != TYPE_OPT:
            struct.pack_into("!I", out, rdata_at - 6, ttl)
    if clear_ad:
        out[3] &= ~0x20 & 0xFF
    return bytes(out)


def decompressed(msg: bytes, question_end: int) -> bytes | None:
    """`msg` with every name after the question written out in full (RFC 1035 §4.1.4 allows either),
    so that no record points into another and any run of them can move. The names in the RDATA of
    the well-known types are rewritten too (RFC 3597 §4: only those may be compressed); others are
    copied. None when the records do not parse."""
    _, _, _, an, ns, ar = HEADER.unpack_from(msg)
    records = rr_offsets(msg, question_end, an + ns + ar)
    if records is None:
        return None
    out = bytearray(msg[:question_end])
    try:
        for start, end, rtype, rdata_at in records:
            out += _full_name(msg, start)
            out += msg[rdata_at - 10 : rdata_at - 2]  # type, class, ttl
            offset, count = _NAMES_IN_RDATA.get(rtype, (0, 0))
            if not count:
                out += msg[rdata_at - 2 : end]
                continue
            rdata = bytearray(msg[rdata_at : rdata_at + offset])
            at = rdata_at + offset
            for _ in range(count):
                rdata += _full_name(msg, at)
                at = skip_name(msg, at)
            rdata += msg[at:end]
            out += struct.pack("!H", len(rdata)) + rdata
    except (IndexError, names.BadName):
        return None
    return bytes(out)


def _full_name(msg: bytes, at: int) -> bytes:
    labels, _ = names.read_name(msg, at)
    return names.to_wire(labels)
