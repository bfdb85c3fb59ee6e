"""kdns.netif: the machine's own addresses, read from its interfaces (docs/dns-contract.md §15)."""

from __future__ import annotations

import json
import subprocess

from kdns.netif import interface_addresses
from tests.rehearsal.netns import NetNs


def _iproute2_addresses(*netns: str) -> set[str]:
    """Every address `ip addr` lists (netlink, a reader independent of getifaddrs)."""
    out = subprocess.run(["ip", *netns, "-j", "addr", "show"], capture_output=True, text=True, check=True)
    return {a["local"] for link in json.loads(out.stdout) for a in link.get("addr_info", ())}


def test_every_non_loopback_address_of_this_machine() -> None:
    found = interface_addresses()
    assert len(found) == len(set(found))
    assert set(found) == _iproute2_addresses() - {"127.0.0.1", "::1"}


def test_loopback_out_link_local_and_down_interfaces_in(netns: NetNs) -> None:
    """As CoreDNS's boundIPs: only loopback addresses are dropped, whatever the interface's state."""
    netns.ip("link", "add", "eth0", "type", "veth", "peer", "name", "eth1")  # no dummy module here
    for link in ("eth0", "eth1"):
        netns.ip("link", "set", link, "addrgenmode", "none")  # no automatic link-local: the list is exact
    netns.ip("addr", "add", "10.244.7.9/24", "dev", "eth0")
    netns.ip("addr", "add", "fd00:10:244:7::9/64", "dev", "eth0", "nodad")
    netns.ip("addr", "add", "fe80::9/64", "dev", "eth0", "nodad")
    netns.ip("addr", "add", "127.0.0.2/8", "dev", "lo")  # a second loopback address stays out too
    netns.ip("link", "set", "eth0", "up")
    netns.ip("addr", "add", "10.244.8.9/24", "dev", "eth1")  # eth1 is left down

    found = netns.call(interface_addresses)

    assert sorted(found) == sorted(["10.244.7.9", "10.244.8.9", "fd00:10:244:7::9", "fe80::9"])
    assert set(found) == _iproute2_addresses("-n", netns.name) - {"127.0.0.1", "127.0.0.2", "::1"}


def test_only_loopback_gives_nothing(netns: NetNs) -> None:
    assert netns.call(interface_addresses) == []
