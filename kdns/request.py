"""What a plugin receives (Request) and returns (Reply)."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

from dnslib import RCODE, DNSLabel, DNSRecord

from kdns.protocol import names
from kdns.protocol.edns import Edns
from kdns.protocol.message import MessageError, new_reply, parse_message
from kdns.protocol.query import FormatError, Query, parse
from kdns.protocol.wire import rcode as wire_rcode


@dataclass(slots=True)
class Request:
    """One question, read once off the wire (kdns.protocol.query), with the facts plugins keep
    asking for. Names are kdns's escaped text (kdns.protocol.names), so a label holding a dot never
    reads as two labels."""

    wire: bytes
    query: Query
    proto: str  # "udp" | "tcp"
    client: tuple[str, int]
    server: str  # listener label, as CoreDNS's metrics name it: "dns://:53"
    zone: str = "."  # the server block zone that matched
    qname: str = field(init=False)  # as the client spelled it, absolute (trailing dot)
    qname_lower: str = field(init=False)
    # The labels of qname_lower, each as escaped text: what plugins split names into.
    labels: tuple[str, ...] = field(init=False)
    _message: DNSRecord | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        labels = self.query.labels
        self.qname = names.to_text(labels)
        self.qname_lower = self.qname.lower()
        if "\\" in self.qname:  # escapes: split label by label
            self.labels = tuple(names.label_text(label).lower() for label in labels)
        else:
            self.labels = tuple(self.qname_lower[:-1].split(".")) if labels else ()

    @classmethod
    def from_wire(cls, wire: bytes, proto: str, client: tuple[str, int], server: str = "") -> Request:
        """Raises kdns.protocol.query.Dropped or FormatError, as query.parse does."""
        return cls(wire, parse(wire), proto, client, server)

    @property
    def qtype(self) -> int:
        return self.query.qtype

    @property
    def qclass(self) -> int:
        return self.query.qclass

    @property
    def edns(self) -> Edns | None:
        return self.query.edns

    @property
    def size(self) -> int:
        """Bytes on the wire."""
        return len(self.wire)

    @property
    def family(self) -> int:
        """1 for IPv4 clients, 2 for IPv6 (the `family` label of CoreDNS's metrics)."""
        return 2 if ":" in self.client[0] else 1

    @property
    def do(self) -> bool:
        return self.query.edns is not None and self.query.edns.do

    @property
    def cd(self) -> bool:
        """Checking Disabled (RFC 4035 §3.2.2)."""
        return bool(self.query.flags & 0x0010)

    @property
    def ad(self) -> bool:
        """Authentic Data, which a client may set to say it understands it (RFC 6840 §5.7)."""
        return bool(self.query.flags & 0x0020)

    @property
    def owner(self) -> DNSLabel:
        """The question's name as a dnslib label, spelled as asked: the owner of answer records."""
        return DNSLabel(self.query.labels)

    @property
    def message(self) -> DNSRecord:
        """The query as a dnslib message, parsed on first use: only plugins that edit or forward
        messages need it. Raises FormatError when dnslib cannot read what passed our checks (e.g. a
        label that is not UTF-8): the dispatcher answers FORMERR."""
        if self._message is None:
            try:
                self._message = parse_message(self.wire)
            except MessageError as e:
                raise FormatError(f"dnslib cannot read this query: {e}", self.query.id) from None
        return self._message

    def replaced(self, message: DNSRecord) -> Request:
        """This request asking `message` instead (rewrite): same transport, client, server and zone."""
        new = Request.from_wire(bytes(message.pack()), self.proto, self.client, self.server)
        new.zone = self.zone
        return new

    def update(self, message: DNSRecord) -> None:
        """From now on this request is `message` (bufsize lowers the EDNS size in place, so that the
        plugins after it ask with it and the server truncates the reply to it)."""
        self.wire = bytes(message.pack())
        self.query = parse(self.wire)
        self._message = message

    def reply(self, rcode: int = RCODE.NOERROR, aa: bool = False) -> DNSRecord:
        """An empty reply to this request (question echoed in the client's spelling, OPT mirrored)."""
        return new_reply(self.query, self.edns, rcode, aa)

    def matches(self, reply: DNSRecord) -> bool:
        """`reply` answers this question, names compared case-insensitively (CoreDNS request.Match)."""
        if not reply.header.qr or len(reply.questions) != 1:
            return False
        q = reply.questions[0]
        return names.lower(q.qname.label) == names.lower(self.query.labels) and int(q.qtype) == self.qtype

    def matches_wire(self, wire: bytes) -> bool:
        """`matches` for a reply in wire form, read without a message object."""
        if len(wire) < 12 or not wire[2] & 0x80 or wire[4:6] != b"\0\1":  # QR, one question
            return False
        end = self.query.question_end
        if wire[12:end] == self.wire[12:end]:  # the question echoed as asked: the common case
            return True
        try:
            labels, end = names.read_name(wire, 12)
        except names.BadName:
            return False
        if end + 4 > len(wire) or int.from_bytes(wire[end : end + 2], "big") != self.qtype:
            return False
        return names.lower(labels) == names.lower(self.query.labels)


class Countable(Protocol):
    """A counter child (prometheus-client's or kdns.metrics.HotCount)."""

    def inc(self, amount: float = 1) -> None: ...


class Serial(Protocol):
    """Data whose SOA serial replayed replies carry (kdns.k8s.index.ClusterIndex)."""

    serial: int


# (mapping, key, expected): an answer depends on `mapping` holding exactly the object `expected` under
# `key` (None: holding nothing). The data's owner replaces that object whenever a change alters the
# answers that depend on it (kdns.k8s.index), so checking is one lookup and an identity comparison.
Dependency = tuple[dict[Any, Any], Hashable, object]


@dataclass(slots=True)  # not frozen: that costs ~1 µs per reply on the hot path; never modified
class Reuse:
    """A plugin's promise that its reply to this question may be served again as the same bytes
    (fast path): while every dependency in `deps` holds, and, for a reply with a lifetime
    (lifetime ≥ 0), while whole seconds since `stored` (time.monotonic) stay below it — every TTL in
    the replayed reply then counts down with it, as the cache plugin's do. `serial_source` keeps the
    current SOA serial, patched into a replayed SOA. `counters` are what the plugin counts when it
    answers (cache hits); replays add to them too. `same_spelling`: the reply spells names as stored,
    not as asked (a cache holds the first asker's spelling), so only a query spelled exactly the same
    may get these bytes again."""

    deps: tuple[Dependency, ...] = ()
    serial_source: Serial | None = None
    stored: float = 0.0
    lifetime: int = -1
    counters: tuple[Countable, ...] = ()
    same_spelling: bool = False
    # The plugin making this promise when it is not the reply's author: a cache that has just stored
    # the reply it passes on vouches for replaying it until the entry expires. Empty: the author.
    by: str = ""


class Reply:
    """A finished reply and the name of the plugin that wrote it (for metrics and logs).

    A plugin gives either a dnslib `message`, or the reply's `wire` bytes (the kubernetes plugin's
    answers are prepared in wire form). Plugins in front that read or edit `message` get it parsed
    from the wire on first use; from then on the message is the reply, re-packed by the server.
    """

    __slots__ = ("_message", "dropped", "plugin", "reuse", "shuffle", "wire")

    def __init__(
        self,
        message: DNSRecord | None = None,
        plugin: str = "",
        reuse: Reuse | None = None,
        *,
        wire: bytes | None = None,
        shuffle: bool = False,
        dropped: bool = False,
    ) -> None:
        if (message is None) == (wire is None):
            raise ValueError("a Reply has a message or wire bytes, not both")
        self._message = message
        self.wire = wire
        self.plugin = plugin
        self.reuse = reuse
        # Replays shuffle the reply's address and MX records (loadbalance said so): kdns.server.fastpath.
        self.shuffle = shuffle
        # Send the client nothing (acl's `drop`), as a CoreDNS plugin that returns without writing;
        # the plugins in front still see the reply, as CoreDNS's log and metrics see an unwritten one.
        self.dropped = dropped

    @property
    def message(self) -> DNSRecord:
        if self._message is None:
            assert self.wire is not None
            self._message = parse_message(self.wire)
            self.wire = None  # whoever asked may edit it: the message is the reply from now on
        return self._message

    def with_message(self, message: DNSRecord) -> Reply:
        """The same reply (author, reuse, flags) carrying another message."""
        return Reply(message, self.plugin, self.reuse, shuffle=self.shuffle, dropped=self.dropped)

    @property
    def rcode(self) -> int:
        """The full (extended) rcode: header bits plus the OPT's upper 8 bits."""
        if self.wire is not None:
            return wire_rcode(self.wire)
        rcode = int(self.message.header.rcode)
        for rr in self.message.ar:
            if rr.rtype == 41:
                rcode |= ((int(rr.ttl) >> 24) & 0xFF) << 4
        return rcode
