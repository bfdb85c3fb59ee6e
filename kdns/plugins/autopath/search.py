"""Where a client's search path comes from (CoreDNS: the AutoPather interface).

A search path is the list of suffixes a stub resolver appends to a relative name, in order, ending
with "" (the name as given); autopath walks it for the client. Two sources, as in CoreDNS:

- a resolv.conf file (`autopath /etc/resolv.conf`): its `search` list, the same for every client;
- `@kubernetes`: the search path kubelet writes into a Pod's resolv.conf (dns-spec: `<ns>.svc.<zone>
  svc.<zone> <zone>` then the node's own search domains), for clients that are Pods — found by
  their source address among the Pods of the kubernetes plugin (`pods verified` only; CoreDNS's
  AutoPath returns nothing otherwise). The server's own search domains stand in for the node's, as
  CoreDNS does (it reads /etc/resolv.conf, the node's with `dnsPolicy: Default`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from kdns.k8s.records import packed_ip
from kdns.plugin import Plugin, find_plugin
from kdns.plugins.kubernetes import Kubernetes
from kdns.plugins.kubernetes.names import pod_search_domains
from kdns.plugins.kubernetes.options import is_reverse_zone
from kdns.protocol.names import zone_matches
from kdns.request import Request


class SearchSource(Protocol):
    def search_path(self, request: Request) -> Sequence[str] | None:
        """The client's search path ending with "", or None: do not autopath this query."""

    def walkable(self, qname: str) -> bool:
        """Could some client's query for `qname` (lower-case) be walked? (fast-path decisions)"""

    def start(self) -> None:
        """Called once every plugin of the block exists."""


class FileSearch:
    """The search list of a resolv.conf file, for every client."""

    def __init__(self, search: Sequence[str]) -> None:
        self._path = (*search, "") if search else ()

    def search_path(self, request: Request) -> Sequence[str] | None:
        return self._path or None

    def walkable(self, qname: str) -> bool:
        return bool(self._path) and _under(qname, self._path[0])

    def start(self) -> None:
        pass


class KubernetesSearch:
    """A Pod client's search path, from the kubernetes plugin of the same server block."""

    def __init__(self, block_plugins: list[Plugin], host_search: Sequence[str]) -> None:
        self._block_plugins = block_plugins
        self._host_search = tuple(host_search)
        self._kubernetes: Kubernetes | None = None

    def start(self) -> None:
        plugin = find_plugin(self._block_plugins, "kubernetes")
        self._kubernetes = plugin if isinstance(plugin, Kubernetes) else None

    def _zone(self, qname: str) -> str | None:
        k = self._kubernetes
        if k is None or k.pod_addresses is None:
            return None  # CoreDNS: no autopath without `pods verified`
        zone = zone_matches(qname, k.opts.zones)
        return None if zone is None or is_reverse_zone(zone) else zone

    def search_path(self, request: Request) -> Sequence[str] | None:
        zone = self._zone(request.qname_lower)
        if zone is None or self._kubernetes is None or self._kubernetes.pod_addresses is None:
            return None
        ip = packed_ip(request.client[0])
        namespace = self._kubernetes.pod_addresses.namespace_of(ip) if ip is not None else None
        if namespace is None:
            return None
        return (*pod_search_domains(namespace, zone), *self._host_search, "")

    def walkable(self, qname: str) -> bool:
        """`<name>.<ns>.svc.<zone>`: the first search element of the Pods of namespace <ns>."""
        zone = self._zone(qname)
        if zone is None:
            return False
        rel = qname[: len(qname) - len(zone)] if zone != "." else qname
        labels = rel.rstrip(".").split(".")
        return len(labels) >= 3 and labels[-1] == "svc"


def _under(name: str, zone: str) -> bool:
    """`name` is `zone` or below it."""
    return zone == "." or name == zone or name.endswith("." + zone)
