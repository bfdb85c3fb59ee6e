"""`autopath [ZONES...] RESOLV-CONF|@kubernetes` — server-side search-path completion (CoreDNS's autopath).

Layout: search (where a client's search path comes from: a resolv.conf file, or the kubernetes
plugin's Pods), plugin (the walk down the search path).
"""

from __future__ import annotations

from kdns.corefile.model import Directive
from kdns.log import plugin_logger
from kdns.plugin import Plugin, SetupContext
from kdns.plugins._args import expect_args, zones_or_default
from kdns.plugins._resolvconf import read_search
from kdns.plugins.autopath.plugin import AutoPath
from kdns.plugins.autopath.search import FileSearch, KubernetesSearch, SearchSource

_log = plugin_logger("autopath")
# Where CoreDNS's kubernetes plugin reads the server's own search domains, appended to a Pod's.
HOST_RESOLV_CONF = "/etc/resolv.conf"


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    args = expect_args(d, 1)
    if d.children:
        raise d.error("autopath takes no block")
    zones = zones_or_default(d, args[:-1], ctx.block.zones)
    return AutoPath(zones, _source(d, ctx, args[-1]))


def _source(d: Directive, ctx: SetupContext, resolv: str) -> SearchSource | None:
    if not resolv.startswith("@"):
        try:
            search = read_search(resolv)
        except OSError as e:
            raise d.error(f"failed to parse {resolv!r}: {e}") from None
        return FileSearch(search)
    name = resolv[1:]
    present = any(other.name == name for other in ctx.block.directives)
    if present and name != "kubernetes":
        # CoreDNS: "<name> does not implement the AutoPather interface", at start-up.
        raise d.error(f"{name} does not implement the AutoPather interface (only @kubernetes does)")
    if not present:
        # CoreDNS silently does nothing here; kdns says so once.
        _log.warning("@%s: no %s plugin in this server block; no query is autopathed (%s:%d)",
                     name, name, d.file, d.line)  # fmt: skip
        return None
    if not any(_verified(k) for k in ctx.block.directives if k.name == "kubernetes"):
        _log.warning("@kubernetes needs `pods verified` in the kubernetes block; without it no query "
                     "is autopathed, as in CoreDNS (%s:%d)", d.file, d.line)  # fmt: skip
    try:
        host_search = read_search(HOST_RESOLV_CONF)
    except OSError:
        host_search = []
    return KubernetesSearch(ctx.block_plugins, host_search)


def _verified(kubernetes: Directive) -> bool:
    return any(c.name == "pods" and c.args == ("verified",) for c in kubernetes.children)
