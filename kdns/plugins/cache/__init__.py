"""`cache [TTL] [ZONES...] { ... }` — a response cache in front of the later plugins (CoreDNS's cache).

Layout: config (Corefile → CacheConfig), classify (reply kind and lowest TTL), entry (a stored reply
and its TTL countdown), plugin (lookup, store, prefetch, serve_stale), metrics (Prometheus series).
"""

from __future__ import annotations

from kdns.corefile.model import Directive
from kdns.plugin import Plugin, SetupContext
from kdns.plugins.cache.config import parse
from kdns.plugins.cache.plugin import Cache


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    return Cache(parse(d, ctx.block.zones))
