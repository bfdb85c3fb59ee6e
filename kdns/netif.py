"""This machine's own IP addresses, read from its network interfaces.

The kubernetes plugin needs them to find the Service that has this server as an endpoint (the apex
NS and `ns.dns.<zone>`, docs/dns-contract.md §15). The hostname is no guide: in a Pod it may not
resolve, on Debian it resolves to 127.0.1.1, and under hostNetwork it names the node. CoreDNS reads
the interfaces (`net.InterfaceAddrs` in `boundIPs`, plugin/kubernetes/local.go), and so does this.
`ifaddr` wraps getifaddrs(3), which lists every address of every interface, whatever its state.
"""

from __future__ import annotations

import ipaddress

import ifaddr


def interface_addresses() -> list[str]:
    """Every address of every interface except loopback ones, each once, interface by interface.

    Link-local addresses are kept, as CoreDNS keeps them (it drops loopback only); an IPv6 one is
    given without its zone index. Raises OSError when the interfaces cannot be listed.
    """
    found: dict[str, None] = {}
    for addresses in addresses_by_interface().values():
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if not address.is_loopback:
                found[str(address)] = None
    return list(found)


def addresses_by_interface() -> dict[str, list[str]]:
    """Interface name → its IP addresses; an IPv6 link-local one carries its `%name` zone, which a
    socket needs to bind it (the bind plugin's interface names). Raises OSError as above."""
    out: dict[str, list[str]] = {}
    for adapter in ifaddr.get_adapters():
        ips = out.setdefault(adapter.nice_name, [])
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                ips.append(ip.ip)
                continue
            text = ip.ip[0]  # IPv6: (address, flowinfo, scope id)
            if ipaddress.IPv6Address(text).is_link_local:
                text = f"{text}%{adapter.nice_name}"
            ips.append(text)
    return out
