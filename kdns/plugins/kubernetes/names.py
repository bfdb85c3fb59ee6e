"""Pure name helpers: reverse names → addresses, pod labels → addresses, a Pod's search domains."""

from __future__ import annotations

import ipaddress


def address_from_reverse(labels: list[str], zone_kind: str) -> bytes | None:
    """`['4','3','2','1']` under in-addr.arpa → 1.2.3.4 packed; 32 nibbles under ip6.arpa → IPv6.

    `labels` are the labels left of `in-addr.arpa`/`ip6.arpa`, as in the name. Anything that is not
    a complete address is None (a name error, which kind's Corefile lets fall through).
    """
    try:
        if zone_kind == "in-addr.arpa." and len(labels) == 4:
            if not all(part.isdigit() and len(part) <= 3 for part in labels):
                return None
            return ipaddress.IPv4Address(".".join(reversed(labels))).packed
        if zone_kind == "ip6.arpa." and len(labels) == 32:
            if not all(len(n) == 1 and n in "0123456789abcdef" for n in labels):
                return None
            return bytes.fromhex("".join(reversed(labels)))
    except ValueError:
        return None
    return None


def address_from_pod_label(label: str) -> str | None:
    """`10-244-1-5` → `10.244.1.5`; `fd00-10-244-1--41` → `fd00:10:244:1::41` (docs/dns-contract.md §7)."""
    try:
        if label.count("-") == 3 and "--" not in label:
            return str(ipaddress.IPv4Address(label.replace("-", ".")))
        return str(ipaddress.IPv6Address(label.replace("-", ":")))
    except ValueError:
        return None


def reverse_prefix(labels: list[str], zone_kind: str) -> tuple[bytes, int] | None:
    """The leading part of an address that a reverse name above whole addresses stands for: `['2',
    '1']` under in-addr.arpa → (1.2.0.0 packed, 4 half-octets); 1–31 nibbles under ip6.arpa. None
    when the labels are not such a prefix (or are a whole address: address_from_reverse's case)."""
    if zone_kind == "in-addr.arpa.":
        if not 1 <= len(labels) <= 3 or not all(
            p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in labels
        ):
            return None
        octets = [int(p) for p in reversed(labels)]
        return bytes(octets + [0] * (4 - len(octets))), 2 * len(octets)
    if not 1 <= len(labels) <= 31 or not all(len(n) == 1 and n in "0123456789abcdef" for n in labels):
        return None
    nibbles = "".join(reversed(labels))
    return bytes.fromhex(nibbles.ljust(32, "0")), len(nibbles)


def pod_search_domains(namespace: str, zone: str) -> tuple[str, str, str]:
    """The search domains kubelet writes into the resolv.conf of a Pod in `namespace` (dnsPolicy
    ClusterFirst; Kubernetes DNS specification, "Pod's DNS Policy"), before the node's own:
    `<ns>.svc.<zone> svc.<zone> <zone>`, absolute. `zone` is absolute too."""
    svc = "svc." if zone == "." else f"svc.{zone}"
    return (f"{namespace}.{svc}", svc, zone)
