"""From query bytes to reply bytes for one listener: validation, zone routing, the plugin chains.

Three ways a query is answered, fastest first:
1. replayed from a template (kdns.server.fastpath; per packet in C);
2. `prepare`: the chain answers without awaiting (Plugin.serve_now) — a cluster name asked for the
   first time since its data changed — and the reply becomes a template, replayed at once;
3. `handle`: the whole chain, awaited (upstreams, plugins that edit replies, anything unusual).

Server-level answers follow CoreDNS (docs/dns-contract.md §17): REFUSED for non-IN classes (unless
a plugin on the listener answers them), zone transfers and names no server block serves; BADVERS for
EDNS version > 0 (RFC 6891 §6.1.3); FORMERR for packets that do not parse (RFC 1035 §4.1.1);
SERVFAIL when a plugin fails or nothing answers. The REFUSED and SERVFAIL replies carry an Extended
DNS Error (RFC 8914) saying why, when the client sent EDNS (CoreDNS adds none). A packet that cannot
be answered never escapes as an exception: listeners must outlive it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from dnslib import RCODE

from kdns.chain import Chain, Routes
from kdns.log import core_logger
from kdns.observe import FastObserver, Observer, Outcome, Served
from kdns.protocol.edns import EdeCode, ede, max_reply_size
from kdns.protocol.message import BADVERS, add_reply_option, fit, formerr_reply, new_reply, to_wire
from kdns.protocol.query import Dropped, FormatError
from kdns.request import Reply, Request
from kdns.server import fastpath, load
from kdns.server.limits import LIMITS, LISTENER_DEFAULTS, ListenerLimits

_log = core_logger()
_REFUSED_QTYPES = frozenset({252, 251})  # AXFR, IXFR
_QUERY, _CLASS_IN = 0, 1  # OPCODE QUERY, CLASS IN (RFC 1035 §4.1.1, §3.2.4)
_NOTIMP, _REFUSED = 4, 5
_NO_CLIENT = ("", 0)  # prepare's requests: a template's reply must not depend on who asked
# RFC 8914 §4.22 Not Supported: kdns serves no zone transfers; §4.21 Not Authoritative: the REFUSED
# of a server asked for a name it neither serves nor recurses for.
_NO_TRANSFERS = (EdeCode.NOT_SUPPORTED, "zone transfers are not served")
_ONLY_IN = (EdeCode.NOT_SUPPORTED, "only class IN is served")
_NOT_SERVED = (EdeCode.NOT_AUTHORITATIVE, "no server block serves this name")
Why = tuple[int, str] | None  # an EDE for the server's own reply: (INFO-CODE, EXTRA-TEXT)


class Dispatcher:
    """Routes each query of one listener to the server block with the longest matching zone."""

    def __init__(
        self,
        label: str,
        chains: Sequence[Chain],
        native: bool = fastpath.NATIVE,
        limits: ListenerLimits = LISTENER_DEFAULTS,
    ) -> None:
        self.label = label
        self.routes = Routes(chains)
        self.limits = limits  # the listener's bounds under this configuration (kdns.server.listeners)
        self.observers: list[Observer] = []
        self.fast_observers: list[FastObserver] = []
        table = replace(LIMITS, max_entries=limits.templates)
        self.answers: fastpath.AnswerCache[Served] = fastpath.AnswerCache(table, native, self._flushed)
        # Per stats slot, replies `prepare` made whose plugin counted the query itself (a cache's
        # miss): the replay that sends each one is left out of the plugin's counters (Reuse.counters).
        self._counted: dict[int, int] = {}

    @property
    def zones(self) -> Mapping[str, Chain]:
        """Zone → the chain serving it, read-only (prometheus describes the configuration from it)."""
        return self.routes.zones

    @property
    def fast_path_on(self) -> bool:
        """Replays bypass `observers`: the fast path is off while one of them cannot count them."""
        return len(self.fast_observers) == len(self.observers)

    def fast_reply(self, data: bytes, proto: str, client: tuple[str, int]) -> bytes | None:
        """The reply from a template, preparing one first when the chain can answer without awaiting;
        None when `handle` must answer. Synchronous on purpose: no task per query. (UDP listeners use
        `drain`, which does the same for a whole batch of datagrams.)"""
        if not self.fast_path_on:
            return None
        tcp, ipv6 = proto == "tcp", ":" in client[0]
        reply = self.answers.answer(data, tcp, ipv6)
        if reply is None and self.prepare(data, tcp):
            reply = self.answers.answer(data, tcp, ipv6)
        return reply

    def drain(self, fd: int, rounds: int) -> list[tuple[bytes, Any]]:
        """Read a UDP socket until it is empty, answering from templates (prepared on a miss when
        possible); returns the datagrams left for `handle`, with their addresses."""
        on = self.fast_path_on
        return self.answers.drain(fd, on, rounds, self.prepare if on else None)

    def prepare(self, data: bytes, tcp: bool = False) -> bool:
        """Store a template for this query when the chain answers it without awaiting and the reply
        may be replayed; True when one was stored (the table then answers). Never raises: whatever
        goes wrong here, `handle` answers (and reports) instead."""
        try:
            key = self.answers.key(data, tcp)
            if key is None:
                return False
            request = Request.from_wire(data, "tcp" if tcp else "udp", _NO_CLIENT, self.label)
            if request.qtype not in fastpath.REPLAYED_QTYPES or self._server_rcode(request) is not None:
                return False
            routed = self.routes.match(request.qname_lower)
            if routed is None:
                return False
            request.zone, chain = routed
            reply = chain.answer_now(request)
            if reply is None or reply.dropped or reply.reuse is None:
                return False
            out = self._finish(request, reply, chain, observe=False)
            slot = self._remember(key, request, reply, chain, out)
            if slot is None:
                return False
            if reply.reuse.counters:  # the plugin counted this query itself: its replay is not a repeat
                self._counted[slot] = self._counted.get(slot, 0) + 1
            return True
        except Exception:
            _log.debug("preparing a template failed; the chain answers", exc_info=True)
            return False

    def harvest(self) -> None:
        """Hand what the fast path served since the last call to the fast observers (before a
        scrape, and when a reload retires this dispatcher)."""
        for slot, info, stats in self.answers.harvest():
            if info.counters:
                served = sum(map(sum, stats.counts))
                counted = self._counted.pop(slot, 0)
                if counted > served:  # (a prepared reply not yet replayed)
                    self._counted[slot] = counted - served
                for counter in info.counters:
                    counter.inc(max(served - counted, 0))
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
        try:
            reply, chain = await self._answer(request)
        except FormatError as e:  # a plugin needed the dnslib message and dnslib could not read it
            return formerr_reply(e.query_id)
        if reply.dropped:  # a plugin chose silence (acl's drop): no bytes, nothing to replay
            return None
        out = self._finish(request, reply, chain)
        if reply.reuse is not None and chain is not None and request.qtype in fastpath.REPLAYED_QTYPES:
            key = self.answers.key(wire, proto == "tcp")
            if key is not None:
                self._remember(key, request, reply, chain, out)
        return out

    def _remember(self, key: bytes, request: Request, reply: Reply, chain: Chain, out: bytes) -> int | None:
        """Keep `out`, the reply to `request`, as a template when the chain lets it be replayed;
        its stats slot when kept."""
        assert reply.reuse is not None
        if not chain.reusable(request, reply.reuse.by or reply.plugin):
            return None
        reuse, rcode = reply.reuse, reply.rcode
        kind = (request.zone, request.qtype, rcode, reply.plugin, request.do, chain, reuse.counters)

        def info() -> Served:
            return Served(request.server, request.zone, request.qtype, rcode, reply.plugin, request.do, chain,
                          reuse.counters)  # fmt: skip

        limit = max_reply_size(request.edns, request.proto == "tcp")
        slot = self.answers.slot(kind, info)
        return slot if self.answers.store(key, out, reuse, reply.shuffle, slot, limit) else None

    def _flushed(self) -> None:
        """The template table was full and emptied (rare: at most once per `templates` stores)."""
        load.FLUSHES.labels(self.label).inc()

    def _server_rcode(self, request: Request) -> tuple[int, Why] | None:
        """The rcode (and why) the server answers by itself, before any chain; None: a chain answers."""
        if request.edns is not None and request.edns.version > 0:
            return BADVERS, None
        if request.query.opcode != _QUERY:
            return _NOTIMP, None
        if request.qtype in _REFUSED_QTYPES:
            return _REFUSED, _NO_TRANSFERS
        if request.qclass != _CLASS_IN and not self.routes.answers_other_classes:
            return _REFUSED, _ONLY_IN
        return None

    @staticmethod
    def _server_reply(request: Request, rcode: int, why: Why = None) -> Reply:
        """A reply written by the server itself: AA=0, no records (the plugin label is empty), and
        `why` as an EDE (INFO-CODE, EXTRA-TEXT) if the client sent EDNS."""
        message = new_reply(request.query, request.edns, rcode)
        if why is not None:
            add_reply_option(message, *ede(*why))
        return Reply(message, "")

    async def _answer(self, request: Request) -> tuple[Reply, Chain | None]:
        """The reply, and the chain that produced it (None when the server answered by itself)."""
        itself = self._server_rcode(request)
        if itself is not None:
            return self._server_reply(request, *itself), None
        routed = self.routes.match(request.qname_lower)
        if routed is None:
            return self._server_reply(request, RCODE.REFUSED, _NOT_SERVED), None
        request.zone, chain = routed
        return await chain.answer(request), chain

    def _finish(
        self,
        request: Request,
        reply: Reply,
        chain: Chain | None = None,
        observe: bool = True,
    ) -> bytes:
        """The reply's bytes, truncated to what the client takes; observers told (unless the reply
        is about to be replayed, which counts it)."""
        tcp = request.proto == "tcp"
        try:
            if reply.wire is not None:
                wire = fit(reply.wire, request.edns, tcp)
            else:
                wire = to_wire(reply.message, request.edns, tcp)
        except Exception as e:  # a plugin built a reply that cannot be packed (a name over 255 octets…)
            _log.error("cannot pack the reply of plugin/%s (%s): answering SERVFAIL", reply.plugin or "-", e)
            reply = Reply(new_reply(request.query, request.edns, RCODE.SERVFAIL), reply.plugin)
            wire = to_wire(reply.message, request.edns, tcp)
        if observe and self.observers:
            outcome = Outcome(request, reply, wire, chain)
            for observer in self.observers:
                observer(outcome, request.proto, request.client)
        return wire
