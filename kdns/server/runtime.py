"""The running server: start, reload without dropping queries, graceful shutdown.

Start: set up plugins → `start()` them (the kubernetes plugin waits up to startup_timeout for its
first sync here, as CoreDNS does) → open listeners → banner. Reload: build and start the new
configuration beside the old one, swap each listener's dispatcher in one assignment, then stop the
old plugins; on any error the old configuration keeps running. Shutdown: plugins' `on_shutdown`
(health's lameduck keeps DNS serving), then close listeners, then stop plugins.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from collections.abc import Sequence
from typing import Any

from dnslib import DNSRecord

from kdns.chain import ListenKey, Planner, ServerPlan
from kdns.corefile import Corefile, CorefileError, parse_file
from kdns.log import core_logger
from kdns.plugin import Plugin, ReloadObserver, Traced
from kdns.server import fastpath
from kdns.server.dispatch import Dispatcher
from kdns.server.listeners import DispatcherSlot, Listener, listener_label
from kdns.server.trace import ask, trace

_log = core_logger()


class Runtime:
    """Owns the current configuration and the listeners; implements plugin.Controller."""

    def __init__(self, config_path: str, planner: Planner, dns_port: int = 53) -> None:
        self.config_path = config_path
        self._planner = planner  # Corefile → plugins (kdns.plan.build_plan): the server imports no plugin
        self.dns_port = dns_port
        self.shared: dict[str, Any] = {}
        self.corefile: Corefile | None = None
        self.plan: ServerPlan | None = None
        self._starting: ServerPlan | None = None  # a configuration whose plugins are starting
        self.serving = False
        self.listeners: dict[ListenKey, Listener] = {}
        self.stopped = asyncio.Event()
        self.exit_code = 0
        self._reload_lock = asyncio.Lock()
        self._background: set[asyncio.Task[Any]] = set()
        # Hooks for plugins that observe configuration loads (reload: SHA512 line, reload metrics).
        self.reload_observers: list[ReloadObserver] = []

    # --- plugin.Controller -------------------------------------------------------------------

    def plugins(self) -> Sequence[Plugin]:
        plan = self._starting or self.plan
        return plan.plugins if plan else []

    def request_reload(self) -> None:
        self._spawn(self.reload())

    def fatal(self, message: str) -> None:
        _log.error(message)
        self.exit_code = 1
        self.stopped.set()

    async def resolve(self, qname: str, qtype: int, proto: str = "udp") -> DNSRecord:
        listener = next(iter(self.listeners.values()))
        return await ask(listener.slot.dispatcher, qname, qtype, proto)

    async def trace(self, qname: str, qtype: int) -> Traced:
        listener = next(iter(self.listeners.values()))
        return await trace(listener.slot.dispatcher, qname, qtype)

    def serves(self, qname: str) -> bool:
        listener = next(iter(self.listeners.values()))
        return listener.slot.dispatcher.routes.match(qname) is not None

    # --- lifecycle ------------------------------------------------------------------------------

    async def start(self, corefile: Corefile) -> None:
        """Everything is ready, logged and counted before the first socket opens, so whoever sees
        the port open (a probe, a test) sees a finished start-up."""
        if not fastpath.NATIVE:
            _log.warning("kdns.server._hotpath is not built: the fast path replays in pure Python (slower)")
        plan = self._planner(corefile, self, self.shared, self.dns_port)
        await self._start_plugins(plan)
        self.corefile, self.plan = corefile, plan
        for key in plan.listeners:
            self.listeners[key] = _listener(key, plan)
        self._notify_new_dispatchers()
        for observe in self.reload_observers:
            observe(True, corefile)
        _freeze_long_lived()
        for listener in self.listeners.values():
            await listener.start()
        self.serving = True

    async def reload(self) -> bool:
        """Apply the Corefile on disk if it changed and is valid; keep the old one otherwise."""
        async with self._reload_lock:
            try:
                corefile = parse_file(self.config_path)
            except CorefileError as e:
                self._reload_failed(str(e))
                return False
            if self.corefile is not None and corefile.sha512 == self.corefile.sha512:
                return True
            _log.info("Reloading")
            try:
                plan = self._planner(corefile, self, self.shared, self.dns_port)
            except CorefileError as e:
                self._reload_failed(str(e))
                return False
            try:
                await self._start_plugins(plan)
                await self._swap(plan)
            except Exception as e:
                await self._stop_plugins(plan.plugins)
                self._reload_failed(f"{type(e).__name__}: {e}")
                return False
            old = self.plan
            self.corefile, self.plan = corefile, plan
            if old is not None:
                await self._stop_plugins(old.plugins)
            self._notify_new_dispatchers()
            _freeze_long_lived()
            for observe in self.reload_observers:
                observe(True, corefile)
            _log.info("Reloading complete")
            return True

    async def shutdown(self) -> None:
        plugins = list(self.plugins())
        await asyncio.gather(*(p.on_shutdown() for p in plugins), return_exceptions=True)
        for listener in self.listeners.values():
            await listener.close()
        self.listeners.clear()
        await self._stop_plugins(plugins)
        for task in list(self._background):
            task.cancel()

    # --- internals ------------------------------------------------------------------------------

    async def _swap(self, plan: ServerPlan) -> None:
        opened: dict[ListenKey, Listener] = {}
        try:
            for key in plan.listeners:
                if key not in self.listeners:
                    listener = _listener(key, plan)
                    await listener.start()
                    opened[key] = listener
        except Exception:
            for listener in opened.values():
                await listener.close()
            raise
        for key, chains in plan.listeners.items():
            if key in self.listeners:
                current = self.listeners[key]
                new = Dispatcher(current.label, chains, limits=plan.limits[key])
                retired, current.slot.dispatcher = current.slot.dispatcher, new
                retired.harvest()
        for key in [k for k in self.listeners if k not in plan.listeners]:
            closing = self.listeners.pop(key)
            await closing.close()
            closing.slot.dispatcher.harvest()
        self.listeners.update(opened)

    def _notify_new_dispatchers(self) -> None:
        """Let plugins that observe traffic (prometheus) attach to the dispatchers now in use."""
        for plugin in self.plugins():
            for listener in self.listeners.values():
                plugin.observe(listener.slot.dispatcher)

    async def _start_plugins(self, plan: ServerPlan) -> None:
        """Start every plugin of `plan`; meanwhile `plugins()` reports them, so /ready answers for
        the configuration about to serve (the kubernetes plugin waits for its sync here)."""
        started: list[Plugin] = []
        self._starting = plan
        try:
            for plugin in plan.plugins:
                await plugin.start()
                started.append(plugin)
        except BaseException:
            await self._stop_plugins(started)
            raise
        finally:
            self._starting = None

    @staticmethod
    async def _stop_plugins(plugins: Sequence[Plugin]) -> None:
        results = await asyncio.gather(*(p.stop() for p in plugins), return_exceptions=True)
        for plugin, result in zip(plugins, results, strict=True):
            if isinstance(result, Exception):
                _log.warning("plugin/%s: error while stopping: %s", plugin.name, result)

    def _reload_failed(self, why: str) -> None:
        _log.error("Reload failed, keeping the running configuration: %s", why)
        for observe in self.reload_observers:
            observe(False, None)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _listener(key: ListenKey, plan: ServerPlan) -> Listener:
    """A listener for `key` answering with the chains and bounds `plan` gives it (not yet open)."""
    dispatcher = Dispatcher(listener_label(*key), plan.listeners[key], limits=plan.limits[key])
    return Listener(key[0], key[1], DispatcherSlot(dispatcher))


def _freeze_long_lived() -> None:
    """Move everything alive now (configuration, synced cluster data: millions of objects at 100k
    endpoints) out of the cyclic collector's reach. Otherwise every full collection walks them all,
    which showed as tens of milliseconds of p99 latency. They are still freed by reference counting
    when the index drops them; only cycles among them would leak, and the models hold none."""
    gc.collect()
    gc.freeze()


def banner(corefile: Corefile, dns_port: int, version: str) -> str:
    """What CoreDNS prints at start: one line per listener key, then the version lines."""
    lines = []
    for block in corefile.blocks:
        for a in block.addresses:
            lines.append(f"{a.zone}:{a.port if a.port is not None else dns_port}")
    uname = os.uname()
    lines.append(f"kdns-{version}")
    lines.append(f"{sys.platform}/{uname.machine}, python{sys.version.split()[0]}")
    return "\n".join(lines)
