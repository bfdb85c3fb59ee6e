"""From query bytes to reply bytes for one listener: validation, zone routing, the plugin chain.

Server-level answers follow CoreDNS (docs/dns-contract.md §17): REFUSED for non-IN classes (unless
a plugin on the listener answers them), zone transfers and names no server block serves; BADVERS for
EDNS version > 0 (RFC 6891 §6.1.3); FORMERR for packets that do not parse (RFC 1035 §4.1.1);
SERVFAIL when a plugin fails or nothing answers. The REFUSED and SERVFAIL replies carry an Extended
DNS Error (RFC 8914) saying why, when the client sent EDNS (CoreDNS adds none).
A packet that cannot be answered never escapes as an exception: listeners must outlive it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from dnslib import CLASS, OPCODE, QTYPE, RCODE

from kdns.chain import Chain
from kdns.log import core_logger, plugin_logger
from kdns.plugin import NoNextPlugin, PluginError
from kdns.protocol.edns import EdeCode, ede, max_reply_size
from kdns.protocol.message import BADVERS, add_reply_option, formerr_reply, new_reply, to_wire
from kdns.protocol.names import zone_matches
from kdns.protocol.query import Dropped, FormatError
from kdns.request import Countable, Reply, Request
from kdns.server import fastpath

_errors_log = plugin_logger("errors")
_log = core_logger()
_REFUSED_QTYPES = frozenset({QTYPE.AXFR, QTYPE.IXFR})
# Queries of other classes than IN are REFUSED unless a plugin on the listener may answer them:
# CoreDNS opens them to the whole chain when a block has one of these (core/dnsserver/server.go,
# EnableChaos). Then the chain sees them like any query (chaos answers CH TXT, forward passes them on).
_OTHER_CLASS_PLUGINS = ("chaos", "forward")


# RFC 8914 §4.22 Not Supported: kdns serves no zone transfers; §4.21 Not Authoritative: the REFUSED
# of a server asked for a name it neither serves nor recurses for.
_NO_TRANSFERS = (EdeCode.NOT_SUPPORTED, "zone transfers are not served")
_ONLY_IN = (EdeCode.NOT_SUPPORTED, "only class IN is served")
_NOT_SERVED = (EdeCode.NOT_AUTHORITATIVE, "no server block serves this name")


def _failure_reason(error: Exception) -> tuple[int, str]:
    """The EDE of the SERVFAIL for a failed plugin: the plugin's own code and reason (PluginError),
    else Other Error (RFC 8914 §4.1) in general words: a bug's message is for the log, not clients."""
    if isinstance(error, PluginError):
        return error.info_code, error.reason
    if isinstance(error, NoNextPlugin):
        return EdeCode.OTHER_ERROR, "no plugin answered: the last one passed the query on"
    return EdeCode.OTHER_ERROR, "internal error while answering"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one packet, for observers such as the prometheus plugin."""

    request: Request | None  # None when the packet never became a request (dropped)
    reply: Reply | None
    wire: bytes | None
    chain: Chain | None = None  # the server block that answered; None: the server itself did


Observer = Callable[[Outcome, str, tuple[str, int]], None]


@dataclass(frozen=True, slots=True)
class FastInfo:
    """What fast-path observers learn of a reply served from cached bytes."""

    server: str  # the listener label ("dns://:53")
    zone: str  # the server block zone that answered
    qtype: int
    rcode: int
    plugin: str
    do: bool
    chain: Chain
    counters: tuple[Countable, ...]  # the author's own counters, bumped per reply (Reuse.counters)


# What the fast path served since the last harvest, per kind of reply (kdns.server.fastpath).
FastObserver = Callable[[FastInfo, fastpath.FastStats], None]


class Dispatcher:
    """Routes each query of one listener to the server block with the longest matching zone."""

    def __init__(self, label: str, chains: Sequence[Chain]) -> None:
        self.label = label
        self._routes: dict[str, Chain] = {}
        for chain in chains:
            for zone in chain.zones:
                self._routes.setdefault(zone, chain)
        self._zones = tuple(self._routes)
        self._other_classes = any(c.find(p) is not None for c in chains for p in _OTHER_CLASS_PLUGINS)
        self.observers: list[Observer] = []
        # Replies the fast path serves bypass `observers`; an observer that must see every reply
        # registers here too, and is given their counts at each `harvest`. The fast path stays off
        # while any observer has not.
        self.fast_observers: list[FastObserver] = []
        self.answers: fastpath.AnswerCache[FastInfo] = fastpath.AnswerCache(
            shuffle=any(c.find("loadbalance") for c in chains)
        )

    @property
    def routes(self) -> Mapping[str, Chain]:
        """Zone → the chain serving it, read-only (prometheus describes the configuration from it)."""
        return MappingProxyType(self._routes)

    def route(self, qname_lower: str) -> tuple[str, Chain] | None:
        zone = zone_matches(qname_lower, self._zones)
        return None if zone is None else (zone, self._routes[zone])

    @property
    def fast_path_on(self) -> bool:
        return len(self.fast_observers) == len(self.observers)

    def fast_reply(self, data: bytes, proto: str, client: tuple[str, int]) -> bytes | None:
        """The reply from cached bytes when this exact question was answered reusably before, else
        None (then `handle` answers). Synchronous on purpose: no task, no object per query. (UDP
        listeners use `answers.drain`, which does the same for a whole batch of datagrams.)"""
        if not self.fast_path_on:
            return None
        return self.answers.answer(data, proto == "tcp", ":" in client[0])

    def harvest(self) -> None:
        """Hand what the fast path served since the last call to the fast observers (before a
        scrape, and when a reload retires this dispatcher)."""
        for info, stats in self.answers.harvest():
            if info.counters:
                served = sum(map(sum, stats.counts))
                for counter in info.counters:
                    counter.inc(served)
            for observe in self.fast_observers:
                observe(info, stats)

    async def handle(self, wire: bytes, proto: str, client: tuple[str, int]) -> bytes | None:
        """Answer one packet. None means: send nothing (a response, or noise without a header)."""
        try:
            request = Request.from_wire(wire, proto, client, self.label)
        except Dropped:
            return None
        except FormatError as e:
            return formerr_reply(e.query_id)
        if request.query.qdcount != 1:
            rcode = RCODE.SERVFAIL if request.query.qdcount == 0 else RCODE.FORMERR
            return self._finish(request, self._server_reply(request, rcode), counted=False)
        try:
            reply, chain = await self._answer(request)
        except FormatError as e:  # a plugin needed the dnslib message and dnslib could not read it
            return formerr_reply(e.query_id)
        if reply.dropped:  # a plugin chose silence (acl's drop): no bytes, nothing to replay
            return None
        out = self._finish(request, reply, chain)
        if (
            reply.reuse is not None
            and chain is not None
            and request.qtype in fastpath.REPLAYED_QTYPES
            and self._reusable_through(chain, request, reply.plugin)
        ):
            key = self.answers.key(wire, proto == "tcp")
            if key is not None:
                info = FastInfo(
                    request.server,
                    request.zone,
                    request.qtype,
                    reply.rcode,
                    reply.plugin,
                    request.do,
                    chain,
                    reply.reuse.counters,
                )
                self.answers.store(key, out, reply.reuse, info, max_reply_size(request.edns, proto == "tcp"))
        return out

    @staticmethod
    def _reusable_through(chain: Chain, request: Request, author: str) -> bool:
        """Would every plugin in front of the reply's author have let it through unchanged?"""
        for plugin in chain.plugins:
            if plugin.name == author:
                return True
            if plugin.in_query_path and not plugin.transparent_for(request.qname_lower):
                return False
        return False

    @staticmethod
    def _server_reply(request: Request, rcode: int, why: tuple[int, str] | None = None) -> Reply:
        """A reply written by the server itself: AA=0, no records (the plugin label is empty), and
        `why` as an EDE (INFO-CODE, EXTRA-TEXT) if the client sent EDNS."""
        message = new_reply(request.query, request.edns, rcode)
        if why is not None:
            add_reply_option(message, *ede(*why))
        return Reply(message, "")

    async def _answer(self, request: Request) -> tuple[Reply, Chain | None]:
        """The reply, and the chain that produced it (None when the server answered by itself)."""
        if request.edns is not None and request.edns.version > 0:
            return self._server_reply(request, BADVERS), None
        if request.query.opcode != OPCODE.QUERY:
            return self._server_reply(request, RCODE.NOTIMP), None
        if request.qtype in _REFUSED_QTYPES:
            return self._server_reply(request, RCODE.REFUSED, _NO_TRANSFERS), None
        if request.qclass != CLASS.IN and not self._other_classes:
            return self._server_reply(request, RCODE.REFUSED, _ONLY_IN), None
        routed = self.route(request.qname_lower)
        if routed is None:
            return self._server_reply(request, RCODE.REFUSED, _NOT_SERVED), None
        request.zone, chain = routed
        try:
            return await chain.handler(request), chain
        except FormatError:
            raise
        except Exception as e:  # a plugin failure is a SERVFAIL for this query, never a dead listener
            if chain.find("errors") is None:
                _errors_log.debug("%d %s %s: %s", RCODE.SERVFAIL, request.qname, QTYPE.get(request.qtype), e)
            return self._server_reply(request, RCODE.SERVFAIL, _failure_reason(e)), chain

    def _finish(
        self, request: Request, reply: Reply, chain: Chain | None = None, counted: bool = True
    ) -> bytes:
        """The reply's bytes, truncated to what the client takes; observers told. `counted` False:
        the packet never became a request to observers (no question, or several)."""
        tcp = request.proto == "tcp"
        try:
            wire = to_wire(reply.message, request.edns, tcp)
        except Exception as e:  # a plugin built a reply that cannot be packed (a name over 255 octets…)
            _log.error("cannot pack the reply of plugin/%s (%s): answering SERVFAIL", reply.plugin or "-", e)
            reply = Reply(new_reply(request.query, request.edns, RCODE.SERVFAIL), reply.plugin)
            wire = to_wire(reply.message, request.edns, tcp)
        if self.observers:
            outcome = Outcome(request if counted else None, reply, wire, chain)
            for observe in self.observers:
                observe(outcome, request.proto, request.client)
        return wire
