"""A Corefile's configuration answering without a socket: `kdns explain -conf FILE`.

So an explanation needs no running kdns: from a laptop against `manifests`, or from a debug Pod that
lists and watches the API itself. The plugins are set up exactly as the server sets them up and the
questions go through a Dispatcher of the first listener, as the server's own re-entry does; only the
plugins that answer queries are started. The others would open HTTP ports the real server may
hold (health, ready, prometheus, reload, explain) or send loop's probe to the listen address, where
another server may answer; none of them changes an answer (prometheus still counts in its query
path, it just serves no /metrics).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dnslib import DNSRecord

from kdns.corefile.model import Corefile
from kdns.plan import build_plan
from kdns.plugin import Plugin, ReloadObserver, Traced
from kdns.server.dispatch import Dispatcher
from kdns.server.listeners import DispatcherSlot, Listener
from kdns.server.trace import ask, trace

# In the query path, but started only for what they do beside it: /metrics, loop's probe.
_NOT_STARTED = frozenset({"prometheus", "loop"})


class OfflineServer:
    """Implements plugin.Controller for one explanation; no reloads, nothing listens."""

    def __init__(self, corefile: Corefile, config_path: str, dns_port: int = 53) -> None:
        self.config_path = config_path
        self.reload_observers: list[ReloadObserver] = []
        self.serving = True
        self._shared: dict[str, Any] = {}
        self._plan = build_plan(corefile, self, self._shared, dns_port)  # raises CorefileError
        (host, port), chains = next(iter(self._plan.listeners.items()))
        self._dispatcher = Dispatcher("", chains)
        # Labelled as the server labels it (Runtime.start); the Listener never opens a socket.
        self._dispatcher.label = Listener(host, port, DispatcherSlot(self._dispatcher)).label
        self._started: list[Plugin] = []

    async def start(self) -> None:
        """Start the query-path plugins (the kubernetes plugin syncs, up to its startup_timeout)."""
        for plugin in self._plan.plugins:
            if plugin.in_query_path and plugin.name not in _NOT_STARTED:
                await plugin.start()
                self._started.append(plugin)

    async def stop(self) -> None:
        for plugin in reversed(self._started):
            await plugin.stop()
        self._started.clear()

    # --- plugin.Controller ----------------------------------------------------------------------

    def plugins(self) -> Sequence[Plugin]:
        return self._plan.plugins

    def request_reload(self) -> None:
        """One explanation, one configuration: nothing to reload."""

    def fatal(self, message: str) -> None:
        raise RuntimeError(message)

    async def resolve(self, qname: str, qtype: int, proto: str = "udp") -> DNSRecord:
        return await ask(self._dispatcher, qname, qtype, proto)

    async def trace(self, qname: str, qtype: int) -> Traced:
        return await trace(self._dispatcher, qname, qtype)

    def serves(self, qname: str) -> bool:
        return self._dispatcher.routes.match(qname) is not None
