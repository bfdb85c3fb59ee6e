"""The fast path's sizes, defined once: the C table (kdns/server/_hotpath.c) and its pure-Python twin
(kdns/server/replay.py) both take them from here when a table is made."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    # Cached questions; on overflow the table is emptied and refills on demand (a plain dict beats an
    # LRU here: the check costs nothing per packet). A template is a few hundred bytes, so a flood of
    # distinct names adds at most a few tens of MiB, inside kind's 170 Mi limit.
    max_entries: int = 64_000
    # Records in one shuffled group (loadbalance); a larger RRset is not replayed but answered by the
    # chain, which shuffles it itself.
    max_group: int = 256
    # Datagrams per recvmmsg/sendmmsg: one pair of system calls per this many queries.
    batch: int = 64
    # Longest query read from UDP: the usual EDNS ceiling; longer ones are cut, then fail to parse.
    max_query: int = 4096
    # Largest UDP reply the drain writes itself; larger ones (rare) go through the chain.
    max_udp_reply: int = 4096


LIMITS = Limits()
