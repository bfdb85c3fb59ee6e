"""The hot path for cluster names: answer from cached wire bytes without building any object.

A query is answered here only when the slow path (the plugin chain) has answered the same question
before and said its reply may be reused (Reply.reuse); everything else — misses, replies that
asked an upstream, odd flags, EDNS versions — goes through the chain. A truncated reply is replayed
only to clients taking the same number of bytes (the cut depends on it). So the bytes served here are the
chain's own bytes: the reply is the query's ID and RD/CD bits, the template's header, the client's
own question (its spelling: owner names in the template point at it, RFC 1035 §4.1.4 compression),
then the template's sections with the SOA serial patched to the current one and, for replies with
a lifetime (the cache plugin's), every TTL set to the seconds left.

An entry is valid while the index scope it was computed from is unchanged (a namespace, or the
whole index): `scope_gen` is compared on every hit, so a change never serves stale bytes. Entries
with a lifetime stop at its end, and the plugin decides again (serve_stale, refresh).

This module decides what a template is; replaying one per packet is C (kdns/server/_hotpath.c),
because per-packet Python caps a core far below issue #4's target (measured: bench/README.md).
"""

from __future__ import annotations

import struct
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kdns.metrics import SIZE_BUCKETS, TIME_BUCKETS
from kdns.protocol.wire import HEADER, TYPE_OPT, rr_offsets, skip_name
from kdns.request import Reuse
from kdns.server import _hotpath

# Upper bound on cached questions; on overflow the cache is emptied and refills on demand (a plain
# dict beats an LRU here: the check costs nothing on the hot path). A template costs ~480 bytes of
# RSS (measured: 54k of them added 25 MiB in bench/), so a flood of distinct names adds at most
# ~30 MiB, inside kind's 170 Mi limit; the bench's 54k distinct questions still fit.
MAX_ENTRIES = 64_000
MAX_SHUFFLED = 256  # A/AAAA answers shuffled per reply at most (more: replayed in the chain's order)
# Question types whose replies become templates. Every template, and the stats slot its metric labels
# get, is state a client creates by asking; with all 65,536 qtypes (and DO on or off) it reached
# 200 MB. So only the types clients really ask are replayed (CoreDNS's metrics single out the same
# set, plugin/metrics/vars monitorType, plus SVCB and CAA); the rest always take the chain.
REPLAYED_QTYPES = frozenset(
    {1, 2, 5, 6, 12, 15, 16, 28, 33, 43, 46, 47, 48, 50, 64, 65, 255, 257}
)  # A NS CNAME SOA PTR MX TXT AAAA SRV DS RRSIG NSEC DNSKEY NSEC3 SVCB HTTPS ANY CAA
# A key is the question (name, QTYPE, QCLASS) from offset 12 of the message, then one shape byte.
_KEY_TO_QUESTION_END = 12 - 1
_TYPE_SOA, _TYPE_A, _TYPE_AAAA = 6, 1, 28
_TC = 0x0200
_FLAG_MASK_FROM_QUERY = 0x0110  # RD (0x0100) and CD (0x0010) are copied from the query


@dataclass(frozen=True, slots=True)
class FastStats:
    """Replies served from templates of one stats slot since the last harvest (see _hotpath.c)."""

    counts: tuple[tuple[int, int], tuple[int, int]]  # [udp, tcp] × [IPv4, IPv6]
    durations: tuple[int, ...]  # per bucket of metrics.TIME_BUCKETS, +Inf last
    duration_sum: float
    sizes: tuple[SizeStats, SizeStats]  # udp, tcp


@dataclass(frozen=True, slots=True)
class SizeStats:
    requests: tuple[int, ...]  # per bucket of metrics.SIZE_BUCKETS, +Inf last
    request_sum: float
    responses: tuple[int, ...]
    response_sum: float


Info = TypeVar("Info", bound=Hashable)


class AnswerCache(Generic[Info]):
    """Question → reply template, filled from the slow path, replayed by the C table.

    `Info` is what observers need to know of a template's replies (set by the dispatcher); each
    distinct one gets a stats slot, so counting a hit costs a few additions in C.
    """

    def __init__(self, shuffle: bool = False) -> None:
        self.table = _hotpath.Table(TIME_BUCKETS, SIZE_BUCKETS, MAX_ENTRIES, shuffle)
        self._slots: dict[Info, int] = {}
        self._infos: list[Info] = []

    @property
    def shuffle(self) -> bool:
        """loadbalance is in the chain: A/AAAA answers are shuffled per reply."""
        return bool(self.table.shuffle)

    @shuffle.setter
    def shuffle(self, on: bool) -> None:
        self.table.shuffle = on

    def __len__(self) -> int:
        return len(self.table)

    def key(self, data: bytes, tcp: bool) -> bytes | None:
        """The question's key (lower-cased qname, qtype, qclass, EDNS/DO/AD/CD shape), None when the
        query is unusual (odd flags or counts, EDNS version > 0): those always take the slow path."""
        return self.table.key(data, tcp)

    def answer(self, data: bytes, tcp: bool, ipv6: bool) -> bytes | None:
        return self.table.answer(data, tcp, ipv6)

    def drain(self, fd: int, answer_hits: bool, rounds: int) -> list[tuple[bytes, Any]]:
        """Read the UDP socket `fd` until it is empty (at most `rounds` batches), answering hits in C;
        returns the other datagrams with their addresses, as recvfrom gives them."""
        return self.table.drain(fd, answer_hits, rounds)

    def store(self, key: bytes, reply: bytes, reuse: Reuse, info: Info, limit: int) -> None:
        """Remember `reply` (the chain's answer to the question with this key, for a client that
        takes `limit` bytes) as a template. A truncated reply is replayed only for that limit."""
        question_end = len(key) + _KEY_TO_QUESTION_END
        template = _template(reply, question_end, reuse.ttl >= 0)
        if template is None:
            return
        head, answers, after, serial_at, ttl_at = template
        flags = int.from_bytes(head[:2], "big")
        if flags & _TC and answers and self.shuffle:
            return  # the chain shuffles before cutting: each reply may keep other addresses
        if reuse.source is None:
            serial_at = -1  # no source keeps a current serial: the SOA is replayed as it was
        slot = self._slots.get(info)
        if slot is None:
            slot = self._slots[info] = len(self._infos)
            self._infos.append(info)
        self.table.store(
            key, head, answers, after, serial_at, reuse.source, reuse.scope, reuse.generation, slot,
            reuse.stored, reuse.ttl, ttl_at, reply[12:question_end] if reuse.same_spelling else None,
            limit if flags & _TC else 0,
        )  # fmt: skip

    def harvest(self) -> list[tuple[Info, FastStats]]:
        """What was served since the last harvest, per kind of reply."""
        out = []
        for slot, counts, durations, duration_sum, udp, tcp in self.table.harvest():
            stats = FastStats(counts, durations, duration_sum, (SizeStats(*udp), SizeStats(*tcp)))
            out.append((self._infos[slot], stats))
        return out

    def clear(self) -> None:
        self.table.clear()


Template = tuple[bytes, tuple[bytes, ...], bytes, int, tuple[int, ...]]


def _template(reply: bytes, question_end: int, counts_down: bool) -> Template | None:
    """(head, shufflable answers, after, SOA serial offset in `after` or -1, TTL offsets in `after`)
    of a reply; None for replies never replayed (odd shape)."""
    _, flags, qd, an, ns, ar = HEADER.unpack_from(reply)
    if qd != 1:
        return None
    offsets = rr_offsets(reply, question_end, an + ns + ar)
    if offsets is None:
        return None
    answers_start = question_end
    shuffled: tuple[bytes, ...] = ()
    answer_rrs = offsets[:an]
    address_rrs = [(s, e) for s, e, t, _ in answer_rrs if t in (_TYPE_A, _TYPE_AAAA)]
    # Shuffle only a tail of address records whose owner is the question (pointer 0xC00C), so no
    # compression pointer can refer into a moved record.
    if (
        len(address_rrs) == an
        and 1 < an <= MAX_SHUFFLED
        and all(reply[s : s + 2] == b"\xc0\x0c" for s, _ in address_rrs)
    ):
        shuffled = tuple(reply[s:e] for s, e in address_rrs)
        answers_start = address_rrs[-1][1]
    serial_at = -1
    for _, _, rtype, rdata_at in offsets[an : an + ns]:
        if rtype == _TYPE_SOA:  # serial follows MNAME and RNAME (RFC 1035 §3.3.13)
            serial_at = skip_name(reply, skip_name(reply, rdata_at)) - answers_start
            break
    ttl_at: tuple[int, ...] = ()
    if counts_down:  # every TTL but the OPT's (its TTL field holds flags, RFC 6891 §6.1.3)
        ttl_at = tuple(
            at - 6 - answers_start for s, _, t, at in offsets if t != TYPE_OPT and s >= answers_start
        )
    head = struct.pack("!H", flags & ~_FLAG_MASK_FROM_QUERY & 0xFFFF) + reply[4:12]
    return head, shuffled, reply[answers_start:], serial_at, ttl_at
