"""The `nameserver` lines of a resolv.conf(5) file, as CoreDNS reads them (miekg/dns ClientConfigFromFile).

resolv.conf has no port syntax: every server is used on port 53. Other keywords (search, options…)
and comment lines are ignored; an IPv6 zone suffix (`fe80::1%eth0`) is dropped, as CoreDNS's
stripZone does.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path


def parse_nameservers(text: str) -> list[str]:
    """Server addresses in file order; ValueError names a `nameserver` value that is not an IP."""
    servers: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0] != "nameserver":
            continue
        host = fields[1].split("%", 1)[0]
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"nameserver '{fields[1]}' is not an IP address") from None
        servers.append(host)
    return servers


def read_nameservers(path: str) -> list[str]:
    """parse_nameservers of the file at `path` (FileNotFoundError / OSError pass through)."""
    return parse_nameservers(Path(path).read_text(errors="replace"))
