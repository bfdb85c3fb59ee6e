"""What a plugin receives (Request) and returns (Reply)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from dnslib import RCODE, DNSRecord

from kdns.protocol.edns import Edns
from kdns.protocol.message import new_reply


@dataclass(slots=True)
class Request:
    """One question, parsed once, with the facts plugins keep asking for."""

    message: DNSRecord
    proto: str  # "udp" | "tcp"
    client: tuple[str, int]
    server: str  # listener label, as CoreDNS's metrics name it: "dns://:53"
    qname: str  # as the client spelled it, absolute (trailing dot)
    qtype: int
    qclass: int
    edns: Edns | None
    size: int  # bytes on the wire
    zone: str = "."  # the server block zone that matched
    qname_lower: str = field(init=False)

    def __post_init__(self) -> None:
        self.qname_lower = self.qname.lower()

    @property
    def family(self) -> int:
        """1 for IPv4 clients, 2 for IPv6 (the `family` label of CoreDNS's metrics)."""
        return 2 if ":" in self.client[0] else 1

    @property
    def do(self) -> bool:
        return self.edns is not None and self.edns.do

    def reply(self, rcode: int = RCODE.NOERROR, aa: bool = False) -> DNSRecord:
        """An empty reply to this request (question echoed, OPT mirrored)."""
        return new_reply(self.message, self.edns, rcode, aa)

    def matches(self, reply: DNSRecord) -> bool:
        """`reply` answers this question, names compared case-insensitively (CoreDNS request.Match)."""
        if not reply.header.qr or len(reply.questions) != 1:
            return False
        q = reply.questions[0]
        return str(q.qname).lower() == self.qname_lower and int(q.qtype) == self.qtype


class Countable(Protocol):
    """A counter child (prometheus-client's or kdns.metrics.HotCount)."""

    def inc(self, amount: float = 1) -> None: ...


class Scoped(Protocol):
    """Data whose parts are versioned by scope (kdns.k8s.index.ClusterIndex): a namespace, or ""
    for the whole of it. A scope's generation changes whenever anything in it changes."""

    scope_gen: dict[str, int]
    serial: int


@dataclass(frozen=True, slots=True)
class Reuse:
    """A plugin's promise that its reply to this question may be served again as the same bytes
    (fast path): while `source`'s `scope` keeps its generation (None: no scope to check), and, for a
    reply with a lifetime (ttl ≥ 0), while whole seconds since `stored` (time.monotonic) stay below
    `ttl` — every TTL in the replayed reply then counts down with it, as the cache plugin's do.
    `counters` are what the plugin counts when it answers (cache hits); replays add to them too.
    `same_spelling`: the reply spells names as stored, not as asked (a cache holds the first asker's
    spelling), so only a query spelled exactly the same may get these bytes again."""

    source: Scoped | None
    scope: str = ""
    generation: int = 0
    stored: float = 0.0
    ttl: int = -1
    counters: tuple[Countable, ...] = ()
    same_spelling: bool = False


@dataclass(slots=True)
class Reply:
    """A finished reply and the name of the plugin that wrote it (for metrics and logs)."""

    message: DNSRecord
    plugin: str
    reuse: Reuse | None = None
    # Send the client nothing (acl's `drop`), as a CoreDNS plugin that returns without writing; the
    # plugins in front still see `message`, as CoreDNS's log and metrics see an unwritten reply.
    dropped: bool = False

    @property
    def rcode(self) -> int:
        """The full (extended) rcode: header bits plus the OPT's upper 8 bits."""
        rcode = int(self.message.header.rcode)
        for rr in self.message.ar:
            if rr.rtype == 41:
                rcode |= ((int(rr.ttl) >> 24) & 0xFF) << 4
        return rcode
