"""The hot path for cluster names: answer from cached wire bytes without building any object.

A query is answered here only when the slow path (the plugin chain) has answered the same question
before and said its reply may be reused (Reply.reuse); everything else — misses, forwarded names,
odd flags, EDNS versions, truncation — goes through the chain. So the bytes served here are the
chain's own bytes: the reply is the query's ID and RD/CD bits, the template's header, the client's
own question (its spelling: owner names in the template point at it, RFC 1035 §4.1.4 compression),
then the template's sections with the SOA serial patched to the current one.

An entry is valid while the index scope it was computed from is unchanged (a namespace, or the
whole index): `scope_gen` is compared on every hit, so a change never serves stale bytes.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from kdns.protocol.edns import CLASSIC_UDP_SIZE, MIN_UDP_SIZE, TCP_MAX_SIZE
from kdns.request import Reuse

# Upper bound on cached questions; on overflow the cache is emptied and refills on demand (a plain
# dict beats an LRU here: the check costs nothing on the hot path).
MAX_ENTRIES = 200_000
_TYPE_OPT, _TYPE_SOA, _TYPE_A, _TYPE_AAAA = 41, 6, 1, 28
_HEADER = struct.Struct("!HHHHHH")
_RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
_FLAG_MASK_FROM_QUERY = 0x0110  # RD (0x0100) and CD (0x0010) are copied from the query


@dataclass(frozen=True, slots=True)
class FastQuery:
    key: tuple[bytes, int]  # (lower-cased qname+qtype+qclass wire, EDNS shape)
    question_end: int
    limit: int  # largest reply the client accepts on this transport


Info = TypeVar("Info")


@dataclass(slots=True)
class Entry(Generic[Info]):
    head: bytes  # flags (RD/CD cleared) + the four counts
    answers: list[bytes]  # A/AAAA answer RRs that loadbalance may shuffle (empty: none)
    after: bytes  # the rest of the message after the question (after `answers` when there are some)
    serial_at: int  # offset of the SOA serial in `after`, or -1
    reuse: Reuse
    info: Info  # what observers need to know of this answer (set by the dispatcher)


def parse_query(data: bytes, tcp: bool) -> FastQuery | None:
    """A plain query we might answer from cache, or None for anything unusual."""
    if len(data) < 17:
        return None
    _, flags, qd, an, ns, ar = _HEADER.unpack_from(data)
    if flags & 0xF800 or qd != 1 or an or ns or ar > 1:  # QR=1 or opcode≠QUERY or odd counts
        return None
    # The name ends at the first zero byte. A zero inside a label would end it early, but then the
    # key cannot equal a stored key (those come from well-formed questions), so it simply misses.
    n = len(data)
    i = data.find(b"\x00", 12)
    if i < 0:
        return None
    question_end = i + 5
    if question_end > n:
        return None
    shape = 0
    limit = TCP_MAX_SIZE if tcp else CLASSIC_UDP_SIZE
    if ar:  # exactly one OPT, version 0 (anything else: the slow path answers, e.g. BADVERS)
        if n < question_end + 11 or data[question_end] != 0:
            return None
        rtype, size, ttl, rdlen = _RR_FIXED.unpack_from(data, question_end + 1)
        if rtype != _TYPE_OPT or (ttl >> 16) & 0xFF or question_end + 11 + rdlen != n:
            return None
        shape = 2 if ttl & 0x8000 else 1
        if not tcp:
            limit = max(size, MIN_UDP_SIZE)
    elif question_end != n:
        return None
    return FastQuery((data[12:question_end].lower(), shape), question_end, limit)


class AnswerCache(Generic[Info]):
    """Question → reply template, filled from the slow path, checked against its scope on reads."""

    def __init__(self, shuffle: bool = False, rng: Callable[[list[bytes]], None] | None = None) -> None:
        self.entries: dict[tuple[bytes, int], Entry[Info]] = {}
        self.shuffle = shuffle  # loadbalance is in the chain: A/AAAA answers are shuffled per reply
        self._shuffle = rng or random.shuffle

    def answer(self, data: bytes, q: FastQuery) -> tuple[bytes, Entry[Info]] | None:
        entry = self.entries.get(q.key)
        if entry is None:
            return None
        reuse = entry.reuse
        if reuse.source.scope_gen.get(reuse.scope, 0) != reuse.generation:
            del self.entries[q.key]
            return None
        (flags,) = struct.unpack_from("!H", data, 2)
        head = struct.pack("!H", int.from_bytes(entry.head[:2], "big") | (flags & _FLAG_MASK_FROM_QUERY))
        after = entry.after
        if entry.serial_at >= 0:
            at = entry.serial_at
            after = after[:at] + struct.pack("!I", reuse.source.serial) + after[at + 4 :]
        answers = entry.answers
        if self.shuffle and len(answers) > 1:
            answers = answers[:]
            self._shuffle(answers)
        reply = b"".join((data[:2], head, entry.head[2:], data[12 : q.question_end], *answers, after))
        return (reply, entry) if len(reply) <= q.limit else None

    def store(self, q: FastQuery, reply: bytes, reuse: Reuse, info: Info) -> None:
        """Remember `reply` (the chain's answer to the query `q` came from) as a template."""
        entry = _template(reply, q.question_end, reuse, info)
        if entry is None:
            return
        if len(self.entries) >= MAX_ENTRIES:
            self.entries.clear()
        self.entries[q.key] = entry

    def clear(self) -> None:
        self.entries.clear()


def _template(reply: bytes, question_end: int, reuse: Reuse, info: Info) -> Entry[Info] | None:
    _, flags, qd, an, ns, ar = _HEADER.unpack_from(reply)
    if qd != 1 or flags & 0x0200:  # truncated replies are never reused
        return None
    offsets = _rr_offsets(reply, question_end, an + ns + ar)
    if offsets is None:
        return None
    answers_start = question_end
    shuffled: list[bytes] = []
    answer_rrs = offsets[:an]
    address_rrs = [(s, e) for s, e, t, _ in answer_rrs if t in (_TYPE_A, _TYPE_AAAA)]
    # Shuffle only a tail of address records whose owner is the question (pointer 0xC00C), so no
    # compression pointer can refer into a moved record.
    if len(address_rrs) == an and an > 1 and all(reply[s : s + 2] == b"\xc0\x0c" for s, _ in address_rrs):
        shuffled = [reply[s:e] for s, e in address_rrs]
        answers_start = address_rrs[-1][1]
    serial_at = -1
    for _, _, rtype, rdata_at in offsets[an : an + ns]:
        if rtype == _TYPE_SOA:  # serial follows MNAME and RNAME (RFC 1035 §3.3.13)
            serial_at = _skip_name(reply, _skip_name(reply, rdata_at)) - answers_start
            break
    head = struct.pack("!H", flags & ~_FLAG_MASK_FROM_QUERY & 0xFFFF) + reply[4:12]
    return Entry(head, shuffled, reply[answers_start:], serial_at, reuse, info)


def _skip_name(msg: bytes, i: int) -> int:
    while True:
        length = msg[i]
        if length == 0:
            return i + 1
        if length & 0xC0 == 0xC0:
            return i + 2
        i += length + 1


def _rr_offsets(msg: bytes, start: int, count: int) -> list[tuple[int, int, int, int]] | None:
    """(start, end, type, rdata offset) of `count` resource records from `start`."""
    out = []
    i = start
    try:
        for _ in range(count):
            j = _skip_name(msg, i)
            rtype, _cls, _ttl, rdlen = _RR_FIXED.unpack_from(msg, j)
            end = j + 10 + rdlen
            out.append((i, end, rtype, j + 10))
            i = end
    except (IndexError, struct.error):
        return None
    return out if i == len(msg) else None
