"""Corefile → plugins → chains → the chains each listen address serves. Pure setup, no sockets.

The one place that knows the plugin registry (kdns.plugins): the server is handed `build_plan` by
the command line (kdns.cli) and knows plugins only through kdns/plugin.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from kdns import plugins as registry
from kdns.chain import Chain, ListenKey, ServerPlan
from kdns.corefile.errors import CorefileError
from kdns.corefile.model import Corefile, Directive
from kdns.log import core_logger
from kdns.plugin import Controller, ListenerSetting, SetupContext
from kdns.server.limits import ListenerLimits

_log = core_logger()
_REPEATABLE = frozenset({"bind", "file", "rewrite", "template", "acl"})
# Repeats that CoreDNS hands to one setup call, making one plugin whose rules keep the lines' order
# (rewrite's `stop` ends the rules of every line): setup runs for the first line and reads them all
# from the block.
_GATHERED = frozenset({"rewrite", "template", "acl"})


def build_plan(
    corefile: Corefile, controller: Controller, shared: dict[str, Any], dns_port: int
) -> ServerPlan:
    """Set up every block's plugins (raising CorefileError on any bad directive)."""
    chains: list[Chain] = []
    listeners: dict[ListenKey, list[Chain]] = defaultdict(list)
    for block in corefile.blocks:
        ctx = SetupContext(block, corefile, controller, shared, dns_port)
        for d in _directives_in_order(block.directives):
            ctx.block_plugins.append(registry.setup_function(d.name)(d, ctx))
        plugins = list(ctx.block_plugins)
        chain = Chain(block.zones, plugins)
        chains.append(chain)
        hosts: list[str | None] = [h for p in plugins for h in p.listen_hosts()] or [None]
        ports = dict.fromkeys(a.port if a.port is not None else dns_port for a in block.addresses)
        for port in ports:
            for host in hosts:
                if chain not in listeners[(host, port)]:
                    listeners[(host, port)].append(chain)
    limits = {key: listener_limits(key, served) for key, served in listeners.items()}
    return ServerPlan(chains, dict(listeners), limits)


def listener_limits(key: ListenKey, chains: Sequence[Chain]) -> ListenerLimits:
    """The bounds of one listener from the settings of the blocks it serves; defaults for the rest.

    CoreDNS applies the server blocks sharing an address in order, each overwriting what the one
    before set (core/dnsserver NewServer), so one block's `timeouts` silently loses to another's.
    kdns makes that a Corefile error instead: blocks that set the same bound must agree.
    """
    chosen: dict[str, ListenerSetting] = {}
    for chain in chains:
        for plugin in chain.plugins:
            for setting in plugin.listener_settings():
                earlier = chosen.setdefault(setting.name, setting)
                if earlier.value != setting.value:
                    where, other = setting.where, earlier.where
                    raise CorefileError(
                        f"{where.name} {' '.join(where.args)} disagrees with {other.name} "
                        f"{' '.join(other.args)} at {other.file}:{other.line}: server blocks sharing a "
                        f"listener (port {key[1]}) must set the same value", where.file, where.line,
                        plugin.name)  # fmt: skip
    # Each plugin gives ints for the int fields; mypy cannot match names to field types here.
    return ListenerLimits(**{name: s.value for name, s in chosen.items()})  # type: ignore[arg-type]


def _directives_in_order(directives: tuple[Directive, ...]) -> list[Directive]:
    seen: set[str] = set()
    kept: list[Directive] = []
    for d in directives:
        if not registry.is_known(d.name):
            raise d.error(f"unknown directive '{d.name}'")
        if d.name in seen and d.name not in _REPEATABLE:
            raise d.error("this plugin can only be used once per server block")
        first = d.name not in seen
        seen.add(d.name)
        if not registry.is_implemented(d.name):
            if not registry.is_ignorable(d.name):
                # As CoreDNS refuses a directive it does not know: ignoring it could change answers.
                raise d.error(f"plugin '{d.name}' is not implemented by kdns (see docs/plugins.md)")
            _log.warning("plugin/%s: not implemented by kdns, and it cannot change answers; directive at "
                         "%s:%d ignored", d.name, d.file, d.line)  # fmt: skip
            continue
        if first or d.name not in _GATHERED:
            kept.append(d)
    return sorted(kept, key=lambda d: registry.rank(d.name))
