"""`k8s_external [ZONES...] { apex APEX; ttl TTL; headless; fallthrough [ZONES...] }` — the external
IPs and load-balancer addresses of Services under a zone outside the cluster (CoreDNS's k8s_external).

Layout: config (Corefile → ExternalConfig), cluster (the one place that reads the kubernetes
plugin's data), plugin (the answers).
"""

from __future__ import annotations

from kdns.corefile.model import Directive
from kdns.plugin import Plugin, SetupContext
from kdns.plugins.k8s_external.config import parse
from kdns.plugins.k8s_external.plugin import K8sExternal


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    if not any(other.name == "kubernetes" for other in ctx.block.directives):
        # CoreDNS fails at start-up ("kubernetes plugin not loaded"); here with the Corefile line.
        raise d.error("k8s_external needs the kubernetes plugin in the same server block")
    return K8sExternal(parse(d, ctx.block.zones), ctx.block_plugins, ctx.controller)
