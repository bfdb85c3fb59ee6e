"""`k8s_external` options, with CoreDNS's defaults and limits (plugin/k8s_external/setup.go)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kdns.corefile.model import Directive
from kdns.plugins._args import expect_args, parse_int, unknown_property, zones_or_default

MAX_TTL = 3600


@dataclass(frozen=True, slots=True)
class ExternalConfig:
    zones: tuple[str, ...]
    apex: str = "dns"  # the label under which the zone's own nameserver records live
    ttl: int = 5
    headless: bool = False
    fallthrough: tuple[str, ...] | None = None  # None: no fallthrough


def parse(d: Directive, block_zones: Sequence[str]) -> ExternalConfig:
    zones = zones_or_default(d, d.args, block_zones)
    apex, ttl, headless = "dns", 5, False
    fallthrough: tuple[str, ...] | None = None
    for child in d.children:
        if child.name == "apex":
            apex = expect_args(child, 1, 1)[0].lower().strip(".")
            if not apex or "." in apex:
                raise child.error(f"apex must be one DNS label, got '{child.args[0]}'")
        elif child.name == "ttl":
            ttl = parse_int(child, expect_args(child, 1, 1)[0], 0, MAX_TTL, "ttl")
        elif child.name == "headless":
            expect_args(child, 0, 0)
            headless = True
        elif child.name == "fallthrough":
            fallthrough = zones_or_default(child, child.args, (".",))
        else:
            raise unknown_property(d, child)
    return ExternalConfig(zones, apex, ttl, headless, fallthrough)
