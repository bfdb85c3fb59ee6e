"""`bind ADDRESS|IFACE…` — listen only on these addresses instead of all interfaces.

Interface names are resolved to their addresses at setup time (Linux, via `ip -j addr`-free
socket ioctl is overkill here: names are looked up with socket.if_nameindex + getaddrinfo-less
`/proc/net` reading is not portable), so kdns accepts IP literals only and says so for names.
"""

from __future__ import annotations

import ipaddress
from typing import ClassVar

from kdns.corefile.model import Directive
from kdns.plugin import Plugin, SetupContext
from kdns.plugins._args import expect_args


class Bind(Plugin):
    name = "bind"
    in_query_path: ClassVar[bool] = False

    def __init__(self, hosts: tuple[str, ...]) -> None:
        self.hosts = hosts


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    hosts = []
    for arg in expect_args(d, 1):
        try:
            hosts.append(str(ipaddress.ip_address(arg)))
        except ValueError:
            raise d.error(f"'{arg}' is not an IP address (interface names are not supported yet)") from None
    if d.children:
        raise d.error("bind takes no block (the 'except' option is not supported yet)")
    return Bind(tuple(hosts))
