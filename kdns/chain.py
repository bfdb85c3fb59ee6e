"""A server block's plugins composed into one handler, in the fixed order of `plugins.ORDER`."""

from __future__ import annotations

from collections.abc import Sequence

from kdns.plugin import Handler, NoNextPlugin, Plugin, find_plugin
from kdns.request import Reply, Request


async def _end_of_chain(request: Request) -> Reply:
    raise NoNextPlugin(f"no next plugin found for {request.qname}")


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


class Chain:
    """The plugins of one server block and their composed handler."""

    def __init__(self, zones: Sequence[str], plugins: Sequence[Plugin]) -> None:
        self.zones = tuple(zones)
        self.plugins = tuple(plugins)
        self.handler = build_handler(self.plugins)

    def find(self, name: str) -> Plugin | None:
        return find_plugin(self.plugins, name)
