"""A server block's plugins composed into one handler, and the zones that route questions to blocks.

This layer sits between the server and the plugins: the server asks it for a block's reply
(`Chain.answer`, or `Chain.answer_now` without awaiting) and whether that reply may be replayed
(`Chain.reusable`); the execution order was fixed when the plugins were set up (kdns.plan).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from dnslib import QTYPE, RCODE

from kdns.corefile.model import Corefile
from kdns.log import plugin_logger
from kdns.plugin import Controller, Handler, NoNextPlugin, NowHandler, Plugin, PluginError, find_plugin
from kdns.protocol.edns import EdeCode, ede
from kdns.protocol.message import add_reply_option, new_reply
from kdns.protocol.names import zone_matches
from kdns.protocol.query import FormatError
from kdns.request import Reply, Request
from kdns.server.limits import ListenerLimits

_errors_log = plugin_logger("errors")


async def _end_of_chain(request: Request) -> Reply:
    raise NoNextPlugin(f"no next plugin found for {request.qname}")


def _end_of_chain_now(request: Request) -> Reply | None:
    return None  # NoNextPlugin is serve's to raise (and the errors plugin's to log)


def build_handler(plugins: Sequence[Plugin]) -> Handler:
    """Compose `plugins` (already sorted) so that the first one runs first."""
    handler: Handler = _end_of_chain
    for plugin in reversed([p for p in plugins if p.in_query_path]):
        handler = _link(plugin, handler)
    return handler


def _link(plugin: Plugin, next_: Handler) -> Handler:
    serve = plugin.serve

    async def handle(request: Request) -> Reply:
        return await serve(request, next_)

    return handle


def build_handler_now(plugins: Sequence[Plugin]) -> NowHandler:
    """The same composition for serve_now."""
    handler: NowHandler = _end_of_chain_now
    for plugin in reversed([p for p in plugins if p.in_query_path]):
        handler = _link_now(plugin, handler)
    return handler


def _link_now(plugin: Plugin, next_now: NowHandler) -> NowHandler:
    serve_now = plugin.serve_now

    def handle(request: Request) -> Reply | None:
        return serve_now(request, next_now)

    return handle


def _failure_reason(error: Exception) -> tuple[int, str]:
    """The EDE of the SERVFAIL for a failed plugin: the plugin's own code and reason (PluginError),
    else Other Error (RFC 8914 §4.1) in general words: a bug's message is for the log, not clients."""
    if isinstance(error, PluginError):
        return error.info_code, error.reason
    if isinstance(error, NoNextPlugin):
        return EdeCode.OTHER_ERROR, "no plugin answered: the last one passed the query on"
    return EdeCode.OTHER_ERROR, "internal error while answering"


class Chain:
    """The plugins of one server block and their composed handlers."""

    def __init__(self, zones: Sequence[str], plugins: Sequence[Plugin]) -> None:
        self.zones = tuple(zones)
        self.plugins = tuple(plugins)
        self.handler = build_handler(self.plugins)
        self.handler_now = build_handler_now(self.plugins)
        self.answers_other_classes = any(p.answers_other_classes for p in self.plugins)
        self._reports_failures = any(p.reports_failures for p in self.plugins)

    def find(self, name: str) -> Plugin | None:
        return find_plugin(self.plugins, name)

    async def answer(self, request: Request) -> Reply:
        """The block's reply; a failing plugin is a SERVFAIL for this query, never a dead listener."""
        try:
            return await self.handler(request)
        except FormatError:
            raise  # the query could not be read after all: the server answers FORMERR
        except Exception as e:
            if not self._reports_failures:
                _errors_log.debug("%d %s %s: %s", RCODE.SERVFAIL, request.qname, QTYPE.get(request.qtype), e)
            message = new_reply(request.query, request.edns, RCODE.SERVFAIL)
            add_reply_option(message, *ede(*_failure_reason(e)))  # only when the client sent EDNS
            return Reply(message, "")

    def answer_now(self, request: Request) -> Reply | None:
        """The block's reply without awaiting, or None when a plugin must await (or fails: `answer`
        then runs, and reports the failure as it always does)."""
        try:
            return self.handler_now(request)
        except Exception:
            return None

    def reusable(self, request: Request, author: str) -> bool:
        """Would every plugin in front of the reply's author have let it through unchanged?"""
        for plugin in self.plugins:
            if plugin.name == author:
                return True
            if plugin.in_query_path and not plugin.transparent_for(request.qname_lower):
                return False
        return False


class Routes:
    """Zones → the chain of the server block serving them, for one listener (first block wins)."""

    def __init__(self, chains: Sequence[Chain]) -> None:
        routes: dict[str, Chain] = {}
        for chain in chains:
            for zone in chain.zones:
                routes.setdefault(zone, chain)
        self._routes = routes
        self._zones = tuple(routes)
        self.answers_other_classes = any(c.answers_other_classes for c in chains)

    @property
    def zones(self) -> Mapping[str, Chain]:
        return MappingProxyType(self._routes)

    def match(self, qname_lower: str) -> tuple[str, Chain] | None:
        """The longest zone `qname_lower` is in, and its chain; None when no block serves it."""
        zone = zone_matches(qname_lower, self._zones)
        return None if zone is None else (zone, self._routes[zone])


ListenKey = tuple[str | None, int]  # (host or None for all interfaces, port)


@dataclass
class ServerPlan:
    """Everything a configuration needs before its listeners open: its chains, which of them each
    listen address serves, and each address's bounds (default ones when none was set)."""

    chains: list[Chain]
    listeners: dict[ListenKey, list[Chain]]
    limits: dict[ListenKey, ListenerLimits]

    @property
    def plugins(self) -> list[Plugin]:
        return [p for c in self.chains for p in c.plugins]


# Corefile → ServerPlan (kdns.plan.build_plan, handed to the server by kdns.cli).
Planner = Callable[[Corefile, Controller, dict[str, Any], int], ServerPlan]
