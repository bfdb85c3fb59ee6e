"""`forward FROM TO... { ... }` — proxy queries for FROM to upstream resolvers (CoreDNS's forward plugin).

Layout: config (Corefile → ForwardConfig; file TOs are read by kdns.plugins._resolvconf), tls (the
client settings of tls:// TOs), transport (sockets and the connection cache), proxy (one upstream),
health (probe loop), policy (upstream order), plugin (the query path), metrics (Prometheus series
under CoreDNS's names).
"""

from __future__ import annotations

from kdns.corefile.model import Directive
from kdns.plugin import Plugin, SetupContext
from kdns.plugins.forward.config import parse
from kdns.plugins.forward.plugin import Forward


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    return Forward(parse(d))
