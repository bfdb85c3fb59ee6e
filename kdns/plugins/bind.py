"""`bind ADDRESS|IFACE... { except ADDRESS|IFACE... }` — listen on these addresses only, instead of all
interfaces (CoreDNS's bind).

An interface name stands for every address the interface has when the configuration is loaded (at
start and at each reload), IPv4 and IPv6; an IPv6 link-local address keeps its `%IFACE` zone, as
CoreDNS does. Names win over addresses when a word is both. `except` removes addresses (or an
interface's addresses) from this directive's list only. Several `bind` lines in one block add up.
NodeLocal DNSCache binds two addresses (`bind 169.254.20.10 10.96.0.10`) on its dummy interface.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import ClassVar

from kdns import netif
from kdns.corefile.model import Directive
from kdns.plugin import Plugin, SetupContext
from kdns.plugins._args import expect_args


class Bind(Plugin):
    name = "bind"
    in_query_path: ClassVar[bool] = False

    def __init__(self, hosts: tuple[str, ...]) -> None:
        self.hosts = hosts

    def listen_hosts(self) -> tuple[str, ...]:
        return self.hosts


def resolve(d: Directive, words: Sequence[str], interfaces: Mapping[str, list[str]]) -> list[str]:
    """Addresses and interface names → addresses, in order (CoreDNS's listIP)."""
    out: list[str] = []
    for word in words:
        if word in interfaces:
            out.extend(interfaces[word])
            continue
        try:
            out.append(str(ipaddress.ip_address(word)))
        except ValueError:
            raise d.error(f"not a valid IP address or interface name: {word!r}") from None
    return out


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    words = expect_args(d, 1)
    interfaces = netif.addresses_by_interface()
    excluded: list[str] = []
    for child in d.children:
        if child.name != "except":
            raise child.error(f"invalid option {child.name!r} (bind takes only 'except')")
        excluded.extend(resolve(child, expect_args(child, 1), interfaces))
    hosts = [h for h in resolve(d, words, interfaces) if h not in excluded]
    return Bind(tuple(dict.fromkeys(hosts)))
