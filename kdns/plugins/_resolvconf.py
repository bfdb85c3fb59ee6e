"""resolv.conf(5) files as CoreDNS reads them (miekg/dns ClientConfigFromFile): the `nameserver`
lines (forward's file TOs) and the search list (autopath).

resolv.conf has no port syntax: every server is used on port 53. An IPv6 zone suffix
(`fe80::1%eth0`) is dropped, as CoreDNS's stripZone does. The search list is the last `search` or
`domain` line (each replaces the list, as in miekg/dns and glibc). Other keywords and comment lines
are ignored.
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


def parse_search(text: str) -> list[str]:
    """The search domains, lower-case and fully qualified, in order (empty when none is set)."""
    search: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] in ("search", "domain"):
            words = fields[1:] if fields[0] == "search" else fields[1:2]
            search = [w.lower().rstrip(".") + "." for w in words]
    return search


def read_search(path: str) -> list[str]:
    """parse_search of the file at `path` (OSError passes through)."""
    return parse_search(Path(path).read_text(errors="replace"))
