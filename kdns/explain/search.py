"""The names a Pod's stub resolver asks for one name: resolv.conf(5)'s `search` and `ndots`.

kubelet gives ClusterFirst Pods `search <ns>.svc.<zone> svc.<zone> <zone>` (plus the node's own
domains, which kdns cannot know) and `options ndots:5`. glibc then asks, for a name that is not
absolute (no trailing dot): when it has fewer than `ndots` dots, each search domain appended in
order, then the name as it is; otherwise the name as it is first, then the search domains. It stops
at the first reply with records and goes on past NXDOMAIN, NODATA and SERVFAIL (res_search(3)).
"""

from __future__ import annotations

from collections.abc import Sequence

from kdns.protocol import names

NDOTS = 5  # kubelet's resolv.conf for ClusterFirst Pods


def candidates(name: str, search: Sequence[str], ndots: int = NDOTS) -> list[str]:
    """The absolute names asked for `name` (escaped text), in the order a glibc resolver asks them."""
    if _absolute(name):
        return [name]
    as_is = name + "."
    with_domains = [f"{name}.{domain}" if domain != "." else as_is for domain in search]
    if len(names.split(name)) - 1 >= ndots:
        return list(dict.fromkeys([as_is, *with_domains]))
    return list(dict.fromkeys([*with_domains, as_is]))


def _absolute(name: str) -> bool:
    """Ends with a dot that is not escaped (not preceded by an odd number of backslashes)."""
    body = name[:-1]
    return name.endswith(".") and (len(body) - len(body.rstrip("\\"))) % 2 == 0
