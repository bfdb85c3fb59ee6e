"""A cached reply and how it is turned back into an answer (CoreDNS cache item.go).

An entry keeps the sections of the reply (OPT left out: it is hop-by-hop) and one lifetime, `ttl`,
fixed when it was stored. The reply's Extended DNS Errors (RFC 8914) are kept apart and given back
to EDNS clients: they say why the answer is what it is, which stays true while it is cached
(CoreDNS drops them with the OPT). Served from cache, every record carries the remaining lifetime — the same
value for all of them, counting down by whole elapsed seconds and never below 0 — and AA=1, as the
CoreDNS kind ships sets it (some old stub resolvers drop non-authoritative answers).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dnslib import QTYPE, RR, DNSRecord

from kdns.plugins import _edns
from kdns.protocol.message import parse_message
from kdns.request import Request


def with_ttl(records: list[RR], ttl: int) -> list[RR]:
    """Copies of `records` carrying `ttl` (OPT dropped); the originals are never modified."""
    return [RR(rr.rname, rr.rtype, rr.rclass, ttl, rr.rdata) for rr in records if rr.rtype != QTYPE.OPT]


@dataclass(slots=True)
class Entry:
    rcode: int
    ra: bool
    ad: bool
    ttl: int  # seconds this entry lives, fixed at store time (CoreDNS origTTL)
    stored: float  # monotonic time of storing
    # A reply stored in wire form is read into the sections below only when an answer is built from
    # them: while the server's fast path replays the reply, that may be never (and reading it with
    # dnslib costs more than the rest of a miss).
    wire: bytes | None = None
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)
    ede: tuple[tuple[int, bytes], ...] = ()  # the reply's EDE options, (code, data)
    # Prefetch bookkeeping (CoreDNS freq.Freq): hits seen with gaps shorter than the prefetch window.
    hits: int = 0
    last_hit: float = 0.0
    refreshing: bool = field(default=False)

    @classmethod
    def from_reply(cls, msg: DNSRecord, ttl: int, now: float) -> Entry:
        h = msg.header
        entry = cls(rcode=h.rcode, ra=bool(h.ra), ad=bool(h.ad), ttl=ttl, stored=now)
        entry._keep_sections(msg)
        return entry

    @classmethod
    def from_wire(cls, wire: bytes, ttl: int, now: float) -> Entry:
        """An entry for a reply in wire form (whose question the caller has checked)."""
        flags = int.from_bytes(wire[2:4], "big")
        return cls(rcode=flags & 0xF, ra=bool(flags & 0x80), ad=bool(flags & 0x20), ttl=ttl, stored=now,
                   wire=wire)  # fmt: skip

    def _keep_sections(self, msg: DNSRecord) -> None:
        self.answer = list(msg.rr)
        self.authority = list(msg.auth)
        self.additional = [rr for rr in msg.ar if rr.rtype != QTYPE.OPT]
        self.ede = tuple(opt for opt in _edns.options(msg) or () if opt[0] == _edns.EDE)

    def remaining(self, now: float) -> int:
        """Seconds left; zero or negative once expired (negative: how long ago, for serve_stale)."""
        return self.ttl - int(now - self.stored)

    def count_hit(self, window: float, now: float) -> int:
        """Record a hit; the count restarts when the previous one is older than `window`."""
        self.hits = 1 if now - self.last_hit > window else self.hits + 1
        self.last_hit = now
        return self.hits

    def to_reply(self, request: Request, ttl: int) -> DNSRecord:
        """This entry as the answer to `request`: its ID, question spelling, RD/CD and OPT. Raises
        kdns.protocol.message.MessageError for a wire reply dnslib cannot read."""
        if self.wire is not None:  # raises MessageError when dnslib cannot read it
            self._keep_sections(parse_message(self.wire))
            self.wire = None
        msg = request.reply(self.rcode, aa=True)
        msg.header.ra = int(self.ra)
        # RFC 6840 §5.7-5.8: AD only for clients that asked for DNSSEC (DO) or set AD themselves.
        msg.header.ad = int(self.ad and (request.do or request.ad))
        ttl = max(ttl, 0)
        msg.rr = with_ttl(self.answer, ttl)
        msg.auth = with_ttl(self.authority, ttl)
        msg.ar = with_ttl(self.additional, ttl) + msg.ar  # our OPT (if the client sent one) goes last
        for code, data in self.ede:
            _edns.add_reply_option(msg, code, data)
        return msg
