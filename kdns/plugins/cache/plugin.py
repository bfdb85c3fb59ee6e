"""The cache plugin's query path (CoreDNS plugin/cache handler.go and cache.go).

Lookup order is the denial cache, then the success cache (a cached SERVFAIL gives way to a still
valid positive entry). On a miss the reply of the next plugins is classified, its lifetime is the
lowest TTL in it clamped to the tier's [MINTTL, TTL] (SERVFAIL: `servfail`), and it is stored unless
truncated, an uncacheable kind, not an answer to the question (counted as a drop), or in a zone
`disable`d for its tier. Like CoreDNS, every record of a reply passing through carries that lifetime
(so a cached answer never starts higher than a fresh one), and failures of the next plugins
(exceptions) are never cached: the server answers those SERVFAIL itself.

Extended DNS Errors (RFC 8914) for EDNS clients, which CoreDNS's cache does not add: an expired
entry served by serve_stale carries 3 Stale Answer (§4.4; 19 Stale NXDOMAIN Answer, §4.20, for a
name error), a cached SERVFAIL 13 Cached Error (§4.14), each with how old the entry is in the
EXTRA-TEXT; the EDEs of the reply that was stored come back with it (entry.py).

Capacity: each tier is a cachetools LRUCache (CoreDNS evicts at random within 256 shards).
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Callable
from typing import ClassVar

from cachetools import LRUCache
from dnslib import QTYPE, RCODE, DNSHeader, DNSRecord

from kdns.log import plugin_logger
from kdns.plugin import Handler, NowHandler, Plugin
from kdns.plugins import _edns
from kdns.plugins.cache import metrics
from kdns.plugins.cache.classify import Kind, Shape, classify, minimal_ttl
from kdns.plugins.cache.config import CacheConfig, Tier
from kdns.plugins.cache.entry import Entry, with_ttl
from kdns.protocol.message import MessageError
from kdns.protocol.names import zone_matches
from kdns.protocol.wire import set_ttls
from kdns.request import Reply, Request, Reuse
from kdns.tasks import cancel_and_wait

Key = tuple[str, int, int, bool, bool]  # qname (lower-case), qtype, qclass, DO, CD
_log = plugin_logger("cache")


class _Store(LRUCache[Key, Entry]):
    """An LRU cache that reports each eviction (coredns_cache_evictions_total)."""

    def __init__(self, maxsize: int, on_evict: Callable[[], None]) -> None:
        super().__init__(maxsize)
        self._on_evict = on_evict

    def popitem(self) -> tuple[Key, Entry]:
        item = super().popitem()
        self._on_evict()
        return item


class Cache(Plugin):
    name: ClassVar[str] = "cache"

    def __init__(self, config: CacheConfig) -> None:
        self.config = config
        self._zones_label = ",".join(config.zones)
        self._server = ""  # the listener label of the latest request, for eviction/size metrics
        self._series: dict[str, metrics.Series] = {}
        self.success = _Store(config.success.capacity, lambda: self._evicted(metrics.SUCCESS))
        self.denial = _Store(config.denial.capacity, lambda: self._evicted(metrics.DENIAL))
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def _m(self) -> metrics.Series:
        """The series of the current listener, labelled on first use."""
        series = self._series.get(self._server)
        if series is None:
            series = self._series[self._server] = metrics.Series.of(self._server, self._zones_label)
        return series

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)

    # --- query path -------------------------------------------------------------------------------

    def transparent_for(self, qname: str) -> bool:
        """Nothing is ever stored for names outside the cache's zones or disabled in both tiers (kind's
        cluster.local), and what the cache does to their replies, the TTL cap, depends on the reply
        alone: the server's fast path may replay the chain's bytes for them. Only the cache's
        request/miss counters do not see those replays."""
        cfg = self.config
        if zone_matches(qname, cfg.zones) is None:
            return True
        return zone_matches(qname, cfg.disable_success) is not None and (
            zone_matches(qname, cfg.disable_denial) is not None
        )

    async def serve(self, request: Request, next_: Handler) -> Reply:
        if zone_matches(request.qname_lower, self.config.zones) is None:
            return await next_(request)
        self._server = request.server
        now = time.monotonic()
        key = self._key(request)
        found = self._lookup(key, now)
        if found is None:
            return await self._fetch(request, next_, key)
        entry, tier = found
        remaining = entry.remaining(now)
        if remaining <= 0:  # expired, but within serve_stale's window
            if self.config.verify_stale:
                fresh = await self._verify(request, next_, key)
                if fresh is not None:
                    return fresh
            else:
                self._refresh_later(entry, request, next_, key)
            self._m.served_stale.inc()
            ttl = 0
        else:
            if self._should_prefetch(entry, now):
                self._refresh_later(entry, request, next_, key)
            ttl = entry.ttl if self.config.keepttl else remaining
        try:
            msg = entry.to_reply(request, ttl)
        except MessageError:  # stored in wire form, which dnslib cannot read: drop it, ask again
            (self.denial if tier == metrics.DENIAL else self.success).pop(key, None)
            return await self._fetch(request, next_, key)
        why = self._why_cached(entry, remaining)
        if why is not None:
            _edns.add_reply_option(msg, *_edns.ede(*why))
        return Reply(msg, self.name, self._reuse(entry, tier, remaining))

    @staticmethod
    def _key(request: Request) -> Key:
        return (request.qname_lower, request.qtype, request.qclass, request.do, request.cd)

    def _why_cached(self, entry: Entry, remaining: int) -> tuple[int, str] | None:
        """The EDE a hit adds: a cached SERVFAIL, or an expired entry served stale (see the module
        docstring); None for a fresh answer, which needs no explaining."""
        if entry.rcode == RCODE.SERVFAIL:
            left = f"{remaining}s" if remaining > 0 else "now"
            return _edns.EdeCode.CACHED_ERROR, f"cached SERVFAIL; the source is asked again in {left}"
        if remaining > 0:
            return None
        codes = _edns.EdeCode
        code = codes.STALE_NXDOMAIN_ANSWER if entry.rcode == RCODE.NXDOMAIN else codes.STALE_ANSWER
        how = "the source failed to refresh it" if self.config.verify_stale else "it is being refreshed"
        return code, f"expired {-remaining}s ago, served stale (cache serve_stale): {how}"

    def _reuse(self, entry: Entry, tier: str, remaining: int) -> Reuse | None:
        """A fresh hit may be replayed by the server's fast path until the entry expires, its TTLs
        counting down as here, and counted as a hit here would be; for the same spelling only (names
        are spelled as stored). Not with prefetch (each hit
        counts toward it), keepttl (TTLs do not count down) or for a cached SERVFAIL (a positive
        entry stored later would take its place in _lookup). Replays do not refresh the LRU order."""
        cfg = self.config
        if remaining <= 0 or cfg.prefetch > 0 or cfg.keepttl or entry.rcode == RCODE.SERVFAIL:
            return None
        counters = (
            self._m.requests,
            self._m.hits[tier],
        )
        return Reuse(stored=entry.stored, lifetime=entry.ttl, counters=counters, same_spelling=True)

    def _lookup(self, key: Key, now: float) -> tuple[Entry, str] | None:
        """The entry to answer from and its tier (metrics.SUCCESS or DENIAL), counted as a hit."""
        m = self._m
        m.requests.inc()
        denial = self._usable(self.denial.get(key), now)
        if denial is not None and denial.rcode == RCODE.SERVFAIL:
            positive = self._usable(self.success.get(key), now)
            if positive is not None:  # a transient SERVFAIL does not hide a good answer
                m.hits[metrics.SUCCESS].inc()
                return positive, metrics.SUCCESS
        if denial is not None:
            m.hits[metrics.DENIAL].inc()
            return denial, metrics.DENIAL
        positive = self._usable(self.success.get(key), now)
        if positive is not None:
            m.hits[metrics.SUCCESS].inc()
            return positive, metrics.SUCCESS
        m.misses.inc()
        return None

    def _usable(self, entry: Entry | None, now: float) -> Entry | None:
        if entry is None:
            return None
        remaining = entry.remaining(now)
        if remaining > 0 or (self.config.stale_up_to > 0 and -remaining < self.config.stale_up_to):
            return entry
        return None

    def serve_now(self, request: Request, next_now: NowHandler) -> Reply | None:
        """For names the cache never stores, it only caps TTLs, which needs no awaiting: the same
        reply `serve` gives (minus the request and miss counts, which replays skip too). For a name
        it has nothing stored under, the miss, when the next plugins answer without awaiting: stored
        and passed on, counted as `serve` counts it. Anything stored (fresh, stale or a SERVFAIL)
        takes `serve`."""
        if self.transparent_for(request.qname_lower):
            reply = next_now(request)
            if reply is None or reply.wire is None:
                return None
            shape = Shape.of(reply.wire)
            return self._capped(reply, request, self._lifetime(shape, classify(shape)))
        key = self._key(request)
        if key in self.denial or key in self.success:  # (`in` leaves the LRU order alone)
            return None
        reply = next_now(request)
        if reply is None:
            return None
        self._server = request.server
        self._m.requests.inc()
        self._m.misses.inc()
        return self._fetched(request, reply, key)

    async def _fetch(self, request: Request, next_: Handler, key: Key, verify: bool = False) -> Reply:
        """Ask the next plugins, store what may be stored, and cap the reply's TTLs."""
        return self._fetched(request, await next_(request), key, verify)

    def _fetched(self, request: Request, reply: Reply, key: Key, verify: bool = False) -> Reply:
        """The next plugins' `reply`: stored when it may be, its TTLs capped. A reply kept in wire
        form is stored as it is; as it is what a hit on the new entry would give until the entry
        expires, the cache vouches for replaying it (Reuse.by) when a hit could be replayed."""
        shape = Shape.of(reply.wire if reply.wire is not None else reply.message)
        kind = classify(shape)
        ttl = self._lifetime(shape, kind)
        refreshed = not verify or shape.rcode in (RCODE.NOERROR, RCODE.NXDOMAIN)  # RFC 8767 §4
        if kind.cacheable and not _truncated(reply) and ttl > 0 and refreshed and self._stores(request, kind):
            entry = self._entry(request, reply, ttl)
            if entry is not None:
                tier = self._store(key, entry, kind)
                capped = self._capped(reply, request, ttl)
                reuse = self._reuse(entry, tier, ttl) if _authoritative(capped) else None
                if reuse is not None:
                    reuse.by = self.name
                    capped.reuse = reuse
                return capped
            self._m.drops.inc()
        return self._capped(reply, request, ttl)

    def _entry(self, request: Request, reply: Reply, ttl: int) -> Entry | None:
        """The entry for `reply`; None when it does not answer `request` (CoreDNS drops those) or
        dnslib cannot read it (a label that is not UTF-8: any octet may be in one, RFC 2181 §11)."""
        now = time.monotonic()
        if reply.wire is not None:
            return Entry.from_wire(reply.wire, ttl, now) if request.matches_wire(reply.wire) else None
        try:
            msg = reply.message
        except MessageError:
            return None
        return Entry.from_reply(msg, ttl, now) if request.matches(msg) else None

    def _lifetime(self, shape: Shape, kind: Kind) -> int:
        if kind is Kind.SERVFAIL:
            return int(self.config.servfail_ttl)
        tier: Tier = self.config.denial if kind.denial else self.config.success
        return min(max(minimal_ttl(shape, kind), tier.min_ttl), tier.max_ttl)

    def _stores(self, request: Request, kind: Kind) -> bool:
        """Is this kind of reply to this name kept (not in a zone `disable`d for its tier)?"""
        disabled = self.config.disable_denial if kind.denial else self.config.disable_success
        return zone_matches(request.qname_lower, disabled) is None

    @staticmethod
    def _capped(reply: Reply, request: Request, ttl: int) -> Reply:
        """Every record's TTL set to `ttl`, AD cleared for non-DNSSEC clients (CoreDNS cache
        WriteMsg: even replies it does not keep pass through it). A prepared reply stays wire."""
        clear_ad = not (request.do or request.ad)
        if reply.wire is not None:
            reply.wire = set_ttls(reply.wire, ttl, clear_ad)
            return reply
        return reply.with_message(_capped(reply.message, ttl, request))

    def _store(self, key: Key, entry: Entry, kind: Kind) -> str:
        """Keep `entry` in its tier; returns the tier (metrics.SUCCESS or DENIAL)."""
        denial = kind.denial
        (self.denial if denial else self.success)[key] = entry
        if not denial:
            self.denial.pop(key, None)  # a fresh positive answer replaces a cached denial or SERVFAIL
        for store, tier in ((self.success, metrics.SUCCESS), (self.denial, metrics.DENIAL)):
            self._m.entries[tier].set(len(store))
        return metrics.DENIAL if denial else metrics.SUCCESS

    def _evicted(self, kind_label: str) -> None:
        self._m.evictions[kind_label].inc()

    # --- prefetch and serve_stale -----------------------------------------------------------------

    def _should_prefetch(self, entry: Entry, now: float) -> bool:
        """Popular (AMOUNT hits without a gap of DURATION) and within PERCENTAGE of its lifetime's end."""
        cfg = self.config
        if cfg.prefetch <= 0:
            return False
        hits = entry.count_hit(cfg.prefetch_window, now)
        threshold = math.ceil(cfg.prefetch_percentage / 100 * entry.ttl)
        return hits >= cfg.prefetch and entry.remaining(now) <= threshold

    def _refresh_later(self, entry: Entry, request: Request, next_: Handler, key: Key) -> None:
        """Refresh `entry` in the background, at most one refresh per entry at a time."""
        if entry.refreshing:
            return
        entry.refreshing = True
        task = asyncio.get_running_loop().create_task(self._refresh(entry, request, next_, key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _refresh(self, entry: Entry, request: Request, next_: Handler, key: Key) -> None:
        self._m.prefetches.inc()
        try:
            # Over TCP, as CoreDNS does, so the refreshed reply is not truncated.
            await self._fetch(dataclasses.replace(request, proto="tcp"), next_, key)
        except Exception as e:  # the old entry stays; the next miss or refresh tries again
            _log.debug("refreshing %s %s failed: %s", request.qname, QTYPE.get(request.qtype), e)
        finally:
            entry.refreshing = False
        fresh = self.denial.get(key) or self.success.get(key)
        if fresh is not None and fresh is not entry:  # keep the popularity gathered so far
            fresh.hits, fresh.last_hit = entry.hits, time.monotonic()

    async def _verify(self, request: Request, next_: Handler, key: Key) -> Reply | None:
        """serve_stale verify: a fresh NOERROR/NXDOMAIN answer if the source gives one, else None."""
        try:
            reply = await self._fetch(request, next_, key, verify=True)
        except Exception:
            return None
        return reply if reply.rcode in (RCODE.NOERROR, RCODE.NXDOMAIN) else None


def _truncated(reply: Reply) -> bool:
    return bool(reply.wire[2] & 0x02) if reply.wire is not None else bool(reply.message.header.tc)


def _capped(msg: DNSRecord, ttl: int, request: Request) -> DNSRecord:
    """`msg` with every record's TTL set to `ttl` and AD cleared for non-DNSSEC clients (CoreDNS
    cache WriteMsg); `msg` itself is returned when nothing changes, and is never modified."""
    clear_ad = bool(msg.header.ad) and not (request.do or request.ad)
    records = (*msg.rr, *msg.auth, *msg.ar)
    if not clear_ad and all(rr.ttl == ttl for rr in records if rr.rtype != QTYPE.OPT):
        return msg
    out = DNSRecord(
        DNSHeader(id=msg.header.id, bitmap=msg.header.bitmap),
        questions=list(msg.questions),
        rr=with_ttl(msg.rr, ttl),
        auth=with_ttl(msg.auth, ttl),
        ar=with_ttl(msg.ar, ttl) + [rr for rr in msg.ar if rr.rtype == QTYPE.OPT],
    )
    if clear_ad:
        out.header.ad = 0
    return out


def _authoritative(reply: Reply) -> bool:
    """AA set: a hit answers with AA=1 (entry.to_reply), so only such a reply is what hits give."""
    return bool(reply.wire[2] & 0x04) if reply.wire is not None else bool(reply.message.header.aa)
