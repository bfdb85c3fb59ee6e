"""`timeouts { read D; write D; idle D; maxtcpqueries N }` — the TCP side of the block's listeners
(CoreDNS's timeouts; the UDP side has no connections to time out).

`read`: the first query of a connection must arrive within it (default 3s); `idle`: each later one
within this long of the connection's last query or reply (10s); `write`: a reply the client does not
take within it closes the connection (5s); `maxtcpqueries`: close a connection after this many
queries, -1 for no limit (the default). A bare number of seconds or a Go duration (`1m30s`) between
1 second and 24 hours, as CoreDNS checks. Server blocks sharing a listener must agree (kdns.plan).
"""

from __future__ import annotations

from typing import ClassVar

from kdns.corefile.model import Directive
from kdns.plugin import ListenerSetting, Plugin, SetupContext
from kdns.plugins._args import expect_args, parse_duration

# Option → kdns.server.limits.ListenerLimits field.
DURATIONS = {"read": "read_timeout", "write": "write_timeout", "idle": "idle_timeout"}
MAX_TCP_QUERIES = "maxtcpqueries"
SHORTEST, LONGEST = 1.0, 24 * 3600.0


class Timeouts(Plugin):
    name = "timeouts"
    in_query_path: ClassVar[bool] = False

    def __init__(self, settings: tuple[ListenerSetting, ...]) -> None:
        self.settings = settings

    def listener_settings(self) -> tuple[ListenerSetting, ...]:
        return self.settings


def _setting(child: Directive) -> ListenerSetting:
    (text,) = expect_args(child, 1, 1)
    if child.name == MAX_TCP_QUERIES:
        try:
            n = int(text)
        except ValueError:
            raise child.error(f"invalid value for maxtcpqueries '{text}'") from None
        if n == 0 or n < -1:
            raise child.error(f"maxtcpqueries provided '{n}' needs to be -1 (unlimited) or a positive number")
        return ListenerSetting("max_tcp_queries", n, child)
    field = DURATIONS.get(child.name)
    if field is None:
        raise child.error(f"unknown option: '{child.name}' (want read, write, idle or maxtcpqueries)")
    seconds = parse_duration(child, text, f"{child.name} timeout")
    if not SHORTEST <= seconds <= LONGEST:
        raise child.error(f"timeout provided '{text}' needs to be between 1 second and 24 hours")
    return ListenerSetting(field, seconds, child)


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    expect_args(d, 0, 0)
    settings: dict[str, ListenerSetting] = {}
    for child in d.children:
        setting = _setting(child)
        if setting.name in settings:
            raise child.error(f"{child.name} is set twice in this block")
        settings[setting.name] = setting
    if not settings:
        raise d.error("timeouts block with no timeouts specified")
    return Timeouts(tuple(settings.values()))
