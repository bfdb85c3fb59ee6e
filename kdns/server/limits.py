"""The server's sizes, defined once.

`Limits` are the fast path's: the C table (kdns/server/_hotpath.c) and its pure-Python twin
(kdns/server/replay.py) take them when a table is made. `ListenerLimits` are what one listener
(address:port) holds at once and how long it waits for TCP clients; the `timeouts` and `limits`
directives of the server blocks it serves set them (docs/operations.md, "Limits").
"""

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


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    """One listener's bounds. Field names are what plugins declare (kdns.plugin.ListenerSetting)."""

    # CoreDNS's server defaults (core/dnsserver/server.go; `timeouts` changes them): the first query
    # of a TCP connection must arrive within `read_timeout`, each later one within `idle_timeout` of
    # the connection's last query or reply (RFC 7766 §6.2.3: "at least a few seconds"), and a reply
    # the client does not read within `write_timeout` closes the connection.
    read_timeout: float = 3.0
    write_timeout: float = 5.0
    idle_timeout: float = 10.0
    # Queries served on one TCP connection before it is closed; -1: unlimited (CoreDNS's default).
    max_tcp_queries: int = -1
    # At this many TCP connections a new one replaces the longest-idle one, or is closed when none
    # is idle (RFC 7766 §6.2.3: a server under load may close idle connections).
    tcp_connections: int = 1024
    # Queries read from one TCP connection and not yet answered; beyond this, reading waits
    # (back-pressure), so a client pipelining without reading cannot make kdns queue without bound.
    tcp_inflight: int = 256
    # Queries of this listener being answered through the plugin chain (not replayed from templates),
    # UDP and TCP together. Beyond it UDP misses are dropped (and counted) and TCP connections stop
    # reading. CoreDNS has no such bound (a goroutine per query is cheap) but bounds its upstreams with
    # forward's max_concurrent (kind: 1000). A query waiting on forward costs ~10 KiB here (measured:
    # a task, the request, coroutine frames, the upstream socket), so 2048 is ~20 MiB, well inside
    # kind's 170 Mi limit; it is twice kind's max_concurrent, so forward's own REFUSED comes first, and
    # at 50 ms upstream latency it still admits 40k misses/s, more than the chain answers.
    inflight: int = 2048
    # Fast-path templates (Limits.max_entries of this listener's table).
    templates: int = LIMITS.max_entries


LISTENER_DEFAULTS = ListenerLimits()
