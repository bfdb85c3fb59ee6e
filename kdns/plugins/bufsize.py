"""`bufsize [SIZE]` — cap the EDNS UDP payload size a query asks for (default 1232, 512..4096).

As CoreDNS's bufsize: a query whose OPT asks for more than SIZE is changed to ask for SIZE, before
the later plugins see it. So `forward` asks upstream with SIZE, and the server truncates the reply
to SIZE (RFC 6891 §6.2.5), which keeps UDP replies under the path MTU (no IP fragmentation, DNS Flag
Day 2020). Queries without an OPT, or asking for less, are left as they are: SIZE only lowers.
"""

from __future__ import annotations

from kdns.corefile.model import Directive
from kdns.plugin import Handler, Plugin, SetupContext
from kdns.plugins._args import expect_args, parse_int
from kdns.plugins._requests import clamp_udp_size
from kdns.request import Reply, Request

DEFAULT_SIZE = 1232  # DNS Flag Day 2020: fits the IPv6 minimum MTU less headers
MIN_SIZE, MAX_SIZE = 512, 4096  # CoreDNS's bounds (RFC 6891 §6.2.5: below 512 means 512)


class Bufsize(Plugin):
    name = "bufsize"

    def __init__(self, size: int) -> None:
        self.size = size

    async def serve(self, request: Request, next_: Handler) -> Reply:
        clamp_udp_size(request, self.size)
        return await next_(request)


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    args = expect_args(d, 0, 1)
    if d.children:
        raise d.error(f"unknown property '{d.children[0].name}'")
    size = parse_int(d, args[0], MIN_SIZE, MAX_SIZE, "buffer size") if args else DEFAULT_SIZE
    return Bufsize(size)
