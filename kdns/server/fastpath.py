"""The hot path: questions answered again from the bytes the plugin chain answered with before.

A reply becomes a template when its author said it may be reused (Reply.reuse) and every plugin in
front of the author lets it through unchanged (Chain.reusable). The template is the reply after the
question, with what differs per query left out: the ID and RD/CD bits (copied from each query), the
question (the client's own spelling: owner names in the template point at it, RFC 1035 §4.1.4), the
SOA serial (patched to the current one) and, for replies with a lifetime (the cache's), every TTL
(set to the seconds left). A template is valid while the data it was computed from is the same
objects (Reuse.deps): the index replaces an object when a change alters the answers that depend on
it, so a change invalidates exactly the names whose answers it changes.

Shuffling (loadbalance) is a property of the template: when the chain shuffled a reply
(Reply.shuffle), each run of records loadbalance shuffles (kdns.protocol.wire.shuffle_runs) becomes
a group that the replay shuffles per reply, as loadbalance's round robin would. When names point
into such a run (MX targets sharing a suffix, as dnslib compresses them), the template's names are
written out in full first: other bytes than the chain's first reply, the same records.

Replaying per packet is C (kdns/server/_hotpath.c; the same table in pure Python is
kdns/server/replay.py, used when the extension is not built).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kdns.metrics import SIZE_BUCKETS, TIME_BUCKETS
from kdns.observe import FastStats, SizeStats
from kdns.protocol.wire import HEADER, TYPE_OPT, decompressed, rr_offsets, shuffle_runs, skip_name
from kdns.request import Dependency, Reuse
from kdns.server import replay
from kdns.server.limits import LIMITS, Limits

try:
    from kdns.server import _hotpath

    Table: Any = _hotpath.Table
    drain: Any = _hotpath.drain
    NATIVE = True
except ImportError:  # no compiler at install, or PyPy: the same table in Python, slower
    Table = replay.Table
    drain = replay.drain
    NATIVE = False

# Question types whose replies become templates. Every template, and the stats slot its metric labels
# get, is state a client creates by asking; with all 65,536 qtypes (and DO on or off) it reached
# 200 MB. So only the types clients really ask are replayed (CoreDNS's metrics single out the same
# set, plugin/metrics/vars monitorType, plus SVCB and CAA); the rest always take the chain.
REPLAYED_QTYPES = frozenset(
    {1, 2, 5, 6, 12, 15, 16, 28, 33, 43, 46, 47, 48, 50, 64, 65, 255, 257}
)  # A NS CNAME SOA PTR MX TXT AAAA SRV DS RRSIG NSEC DNSKEY NSEC3 SVCB HTTPS ANY CAA
_TYPE_SOA = 6
_SOA_ANSWERED = (6, 255)  # qtypes whose answer may hold an SOA (SOA, ANY)
_TC = 0x0200
_FLAGS_FROM_QUERY = 0x0110  # RD (0x0100) and CD (0x0010) are copied from the query
Part = bytes | tuple[bytes, ...]


@dataclass(slots=True)
class Template:
    """One reply as the table replays it: the record the C table reads at store()."""

    head: bytes  # flags (RD/CD cleared) and the four counts: 10 bytes
    parts: bytes | tuple[Part, ...]  # the message after the question; a tuple part is a shuffled group
    serial_at: int  # offset of the SOA serial in the parts (outside groups), or -1
    serial_source: Any  # has .serial, patched in at serial_at; None when serial_at is -1
    ttl_at: tuple[int, ...]  # TTLs outside groups counting down with the lifetime (groups: all theirs)
    deps: tuple[Dependency, ...]
    stored: float
    lifetime: int  # seconds, -1: none
    spelling: bytes | None  # replay only for this exact question (a cache's spelling)
    only_limit: int  # a truncated reply: replay only to clients taking this many bytes; 0: any
    slot: int  # stats slot: which metric labels its replies count under


Info = TypeVar("Info")


class AnswerCache(Generic[Info]):
    """Question → template, filled from the chain's replies, replayed by the table.

    `Info` is what observers need to know of a template's replies (set by the dispatcher); each
    distinct one gets a stats slot, so counting a hit costs a few additions in C.
    """

    def __init__(
        self, limits: Limits = LIMITS, native: bool = NATIVE, on_flush: Callable[[], None] | None = None
    ) -> None:
        table_type = Table if native else replay.Table
        self.table = table_type(limits, TIME_BUCKETS, SIZE_BUCKETS)
        self._max_entries = limits.max_entries
        self._on_flush = on_flush  # told when a full table is emptied to make room
        self._drain = drain if native else replay.drain
        self._slots: dict[Hashable, int] = {}
        self._infos: list[Info] = []

    def __len__(self) -> int:
        return len(self.table)

    def key(self, data: bytes, tcp: bool) -> bytes | None:
        """The question's key (lower-cased qname, qtype, qclass, EDNS/DO/AD/CD shape), None when the
        query is unusual (odd flags or counts, EDNS version > 0): those always take the chain."""
        key: bytes | None = self.table.key(data, tcp)
        return key

    def answer(self, data: bytes, tcp: bool, ipv6: bool) -> bytes | None:
        reply: bytes | None = self.table.answer(data, tcp, ipv6)
        return reply

    def drain(self, fd: int, answer_hits: bool, rounds: int, prepare: Any) -> list[tuple[bytes, Any]]:
        """Read the UDP socket `fd` until it is empty (at most `rounds` batches), answering what the
        table holds; `prepare(data)` is asked once per miss and may store a template. Returns the
        other datagrams with their addresses, as recvfrom gives them."""
        misses: list[tuple[bytes, Any]] = self._drain(self.table, fd, answer_hits, rounds, prepare)
        return misses

    def slot(self, kind: Hashable, info: Callable[[], Info]) -> int:
        """The stats slot of one kind of reply (its metric labels), made with `info()` when new."""
        slot = self._slots.get(kind)
        if slot is None:
            slot = self._slots[kind] = len(self._infos)
            self._infos.append(info())
        return slot

    def store(self, key: bytes, reply: bytes, reuse: Reuse, shuffle: bool, slot: int, limit: int) -> bool:
        """Remember `reply` (the chain's answer to the question with this key, for a client that
        takes `limit` bytes), counted under `slot`. False when its shape is not replayable."""
        template = template_of(reply, len(key) + HEADER.size - 1, reuse, shuffle, slot, limit)
        if template is None:
            return False
        full = len(self.table) >= self._max_entries  # the table empties itself before this store
        self.table.store(key, template)
        if full and self._on_flush is not None:
            self._on_flush()
        return True

    def harvest(self) -> list[tuple[int, Info, FastStats]]:
        """What was served since the last harvest, per kind of reply (its slot and info)."""
        out = []
        for slot, counts, durations, duration_sum, udp, tcp in self.table.harvest():
            stats = FastStats(counts, durations, duration_sum, (SizeStats(*udp), SizeStats(*tcp)))
            out.append((slot, self._infos[slot], stats))
        return out

    def clear(self) -> None:
        self.table.clear()


def template_of(
    reply: bytes, question_end: int, reuse: Reuse, shuffle: bool, slot: int, limit: int
) -> Template | None:
    """The template of a reply whose question ends at `question_end`; None for replies never
    replayed (odd shape, or a shuffled reply that was truncated: each reply may keep other records)."""
    _, flags, qd, an, ns, ar = HEADER.unpack_from(reply)
    if qd != 1:
        return None
    truncated = bool(flags & _TC)
    if shuffle and truncated:
        return None  # the chain shuffles before it cuts: each reply may keep other records
    head = struct.pack("!H", flags & ~_FLAGS_FROM_QUERY & 0xFFFF) + reply[4:12]
    qtype = int.from_bytes(reply[question_end - 4 : question_end - 2], "big")
    soa_possible = reuse.serial_source is not None and (ns or qtype in _SOA_ANSWERED)
    if not (shuffle or soa_possible or reuse.lifetime >= 0):  # nothing to find inside: the bytes as they are
        return Template(head, reply[question_end:], -1, None, (), reuse.deps, reuse.stored, -1,
                        _spelling(reply, question_end, reuse), limit if truncated else 0, slot)  # fmt: skip
    records = rr_offsets(reply, question_end, an + ns + ar)
    if records is None:
        return None
    groups = shuffle_runs(reply, records, (an, ns, ar), LIMITS.max_group) if shuffle else []
    if groups is None:  # names point into records that move: write them out in full, then try again
        expanded = decompressed(reply, question_end)
        records = rr_offsets(expanded, question_end, an + ns + ar) if expanded is not None else None
        if expanded is None or records is None:
            return None
        reply = expanded
        groups = shuffle_runs(reply, records, (an, ns, ar), LIMITS.max_group)
        if groups is None:
            return None
    counts_down = reuse.lifetime >= 0
    serial_at = -1
    ttl_at: list[int] = []
    in_group = {i for first, last in groups for i in range(first, last)}
    for i, (_, _, rtype, rdata_at) in enumerate(records):
        if serial_at < 0 and rtype == _TYPE_SOA and reuse.serial_source is not None and i < an + ns:
            serial_at = skip_name(reply, skip_name(reply, rdata_at)) - question_end  # RFC 1035 §3.3.13
        if counts_down and rtype != TYPE_OPT and i not in in_group:  # an OPT's TTL holds flags (RFC 6891)
            ttl_at.append(rdata_at - 6 - question_end)
    parts: list[Part] = []
    at = question_end
    for first, last in groups:
        group_start = records[first][0]
        if group_start > at:
            parts.append(reply[at:group_start])
        parts.append(tuple(reply[s:e] for s, e, _, _ in records[first:last]))
        at = records[last - 1][1]
    body: bytes | tuple[Part, ...]
    if groups:
        if at < len(reply):
            parts.append(reply[at:])
        body = tuple(parts)
    else:
        body = reply[question_end:]
    return Template(
        head=head,
        parts=body,
        serial_at=serial_at,
        serial_source=reuse.serial_source if serial_at >= 0 else None,
        ttl_at=tuple(ttl_at),
        deps=reuse.deps,
        stored=reuse.stored,
        lifetime=reuse.lifetime,
        spelling=_spelling(reply, question_end, reuse),
        only_limit=limit if truncated else 0,
        slot=slot,
    )


def _spelling(reply: bytes, question_end: int, reuse: Reuse) -> bytes | None:
    return reply[HEADER.size : question_end] if reuse.same_spelling else None
