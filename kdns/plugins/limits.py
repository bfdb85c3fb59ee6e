"""`limits { tcp_connections N; tcp_inflight N; inflight N; templates N }` — bounds of the block's
listeners (kdns's own directive: CoreDNS has none of these as options).

`tcp_connections`: open TCP connections (default 1024; past it a new one replaces the longest-idle
one, or is closed); `tcp_inflight`: queries read from one connection and not yet answered (256;
past it the connection is not read); `inflight`: queries of the listener answered through the
plugin chain, UDP and TCP (2048; past it UDP queries are dropped, TCP connections not read);
`templates`: replies the fast path keeps (64000; when full it is emptied and refills). Defaults and
why: kdns.server.limits.ListenerLimits and docs/operations.md. Server blocks sharing a listener must
agree (kdns.plan).
"""

from __future__ import annotations

from typing import ClassVar

from kdns.corefile.model import Directive
from kdns.plugin import ListenerSetting, Plugin, SetupContext
from kdns.plugins._args import expect_args, parse_int

# Option → kdns.server.limits.ListenerLimits field (the same names).
OPTIONS = ("tcp_connections", "tcp_inflight", "inflight", "templates")
MAXIMUM = 2**31 - 1


class Limits(Plugin):
    name = "limits"
    in_query_path: ClassVar[bool] = False

    def __init__(self, settings: tuple[ListenerSetting, ...]) -> None:
        self.settings = settings

    def listener_settings(self) -> tuple[ListenerSetting, ...]:
        return self.settings


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    expect_args(d, 0, 0)
    settings: dict[str, ListenerSetting] = {}
    for child in d.children:
        if child.name not in OPTIONS:
            raise child.error(f"unknown option: '{child.name}' (want {', '.join(OPTIONS)})")
        if child.name in settings:
            raise child.error(f"{child.name} is set twice in this block")
        (text,) = expect_args(child, 1, 1)
        value = parse_int(child, text, 1, MAXIMUM, child.name)
        settings[child.name] = ListenerSetting(child.name, value, child)
    if not settings:
        raise d.error("limits block with no limits specified")
    return Limits(tuple(settings.values()))
