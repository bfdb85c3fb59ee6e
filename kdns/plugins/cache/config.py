"""`cache [TTL] [ZONES...] { ... }` → CacheConfig: CoreDNS's defaults and limits (plugin/cache/setup.go)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from kdns.corefile.model import Directive
from kdns.plugins._args import expect_args, parse_duration, parse_int, unknown_property, zones_or_default

# plugin/pkg/dnsutil: MaximumDefaulTTL 1h, MinimalDefaultTTL 5s; denial gets half the maximum.
MAX_TTL = 3600
MAX_DENIAL_TTL = 1800
MIN_TTL = 5
SERVFAIL_TTL = 5.0
MAX_SERVFAIL_TTL = 300.0  # "caching SERVFAIL responses over 5 minutes is not permitted"
# CoreDNS shards each cache 256 ways, at least 4 entries per shard: capacity is rounded down to a
# multiple of 256 and never below 1024; the default 10000 becomes 9984.
SHARDS = 256
MIN_SHARD_SIZE = 4
DEFAULT_CAPACITY = 10000
STALE_DEFAULT = 3600.0


def effective_capacity(requested: int) -> int:
    return max(requested // SHARDS, MIN_SHARD_SIZE) * SHARDS


@dataclass(frozen=True, slots=True)
class Tier:
    """One of the two caches: `success` (positive answers) or `denial` (NXDOMAIN, NODATA, SERVFAIL)."""

    capacity: int
    max_ttl: int
    min_ttl: int = MIN_TTL


@dataclass(frozen=True, slots=True)
class CacheConfig:
    zones: tuple[str, ...]
    success: Tier = Tier(effective_capacity(DEFAULT_CAPACITY), MAX_TTL)
    denial: Tier = Tier(effective_capacity(DEFAULT_CAPACITY), MAX_DENIAL_TTL)
    servfail_ttl: float = SERVFAIL_TTL
    prefetch: int = 0  # 0: off
    prefetch_window: float = 60.0
    prefetch_percentage: int = 10
    stale_up_to: float = 0.0  # 0: serve_stale off
    verify_stale: bool = False
    disable_success: tuple[str, ...] = ()
    disable_denial: tuple[str, ...] = ()
    keepttl: bool = False


def parse(d: Directive, block_zones: tuple[str, ...]) -> CacheConfig:
    args = list(d.args)
    ttl: int | None = None
    if args and args[0].lstrip("-").isdigit():  # a leading number is the TTL, anything else a zone
        ttl = int(args.pop(0))
        if ttl <= 0:
            raise d.error(f"cache TTL can not be zero or negative: {ttl}")
    cfg = CacheConfig(zones_or_default(d, args, block_zones))
    if ttl is not None:
        cfg = replace(cfg, success=replace(cfg.success, max_ttl=ttl), denial=replace(cfg.denial, max_ttl=ttl))
    for child in d.children:
        name = child.name
        if name == "success":
            cfg = replace(cfg, success=_parse_tier(child, cfg.success))
        elif name == "denial":
            cfg = replace(cfg, denial=_parse_tier(child, cfg.denial))
        elif name == "prefetch":
            cfg = _parse_prefetch(child, cfg)
        elif name == "serve_stale":
            cfg = _parse_serve_stale(child, cfg)
        elif name == "servfail":
            seconds = parse_duration(child, expect_args(child, 1, 1)[0])
            if seconds > MAX_SERVFAIL_TTL:
                raise child.error("caching SERVFAIL responses over 5 minutes is not permitted")
            cfg = replace(cfg, servfail_ttl=seconds)
        elif name == "disable":
            args2 = expect_args(child, 1)
            kind, zones = args2[0], zones_or_default(child, args2[1:], (".",))
            if kind not in ("success", "denial"):
                raise child.error(f"cache type for disable must be 'success' or 'denial', not '{kind}'")
            if kind == "success":
                cfg = replace(cfg, disable_success=(*cfg.disable_success, *zones))
            else:
                cfg = replace(cfg, disable_denial=(*cfg.disable_denial, *zones))
        elif name == "keepttl":
            expect_args(child, 0, 0)
            cfg = replace(cfg, keepttl=True)
        else:
            raise unknown_property(d, child)
    return cfg


def _parse_tier(child: Directive, tier: Tier) -> Tier:
    """`success|denial CAPACITY [TTL] [MINTTL]`."""
    args = expect_args(child, 1, 3)
    capacity = effective_capacity(parse_int(child, args[0], 0, 2**31 - 1, "capacity"))
    max_ttl, min_ttl = tier.max_ttl, tier.min_ttl
    if len(args) > 1:
        max_ttl = parse_int(child, args[1], -(2**31), 2**31 - 1, "TTL")
        if max_ttl <= 0:
            raise child.error(f"cache TTL can not be zero or negative: {max_ttl}")
    if len(args) > 2:
        min_ttl = parse_int(child, args[2], -(2**31), 2**31 - 1, "min TTL")
        if min_ttl < 0:
            raise child.error(f"cache min TTL can not be negative: {min_ttl}")
    return Tier(capacity, max_ttl, min_ttl)


def _parse_prefetch(child: Directive, cfg: CacheConfig) -> CacheConfig:
    """`prefetch AMOUNT [[DURATION] [PERCENTAGE%]]`."""
    args = expect_args(child, 1, 3)
    amount = parse_int(child, args[0], 0, 2**31 - 1, "prefetch amount")
    window = parse_duration(child, args[1]) if len(args) > 1 else cfg.prefetch_window
    percentage = cfg.prefetch_percentage
    if len(args) > 2:
        if not args[2].endswith("%"):
            raise child.error(f"last character of percentage should be `%`, but is: '{args[2][-1]}'")
        percentage = parse_int(child, args[2][:-1], 10, 90, "percentage")
    return replace(cfg, prefetch=amount, prefetch_window=window, prefetch_percentage=percentage)


def _parse_serve_stale(child: Directive, cfg: CacheConfig) -> CacheConfig:
    """`serve_stale [DURATION [immediate|verify]]`."""
    args = expect_args(child, 0, 2)
    up_to = parse_duration(child, args[0]) if args else STALE_DEFAULT
    verify = False
    if len(args) > 1:
        if args[1] not in ("immediate", "verify"):
            raise child.error(f"invalid serve_stale refresh mode '{args[1]}' (want immediate|verify)")
        verify = args[1] == "verify"
    return replace(cfg, stale_up_to=up_to, verify_stale=verify)
