"""HTTP listeners for health, ready and prometheus that outlive reloads.

A reload builds and starts the new plugins before it stops the old ones, so a plugin that bound its
own socket would collide with its predecessor on the same address. Instead each address gets one
aiohttp server, kept in the process-lifetime `SetupContext.shared`; plugins mount a handler on a path
and unmount it when they stop. Each path keeps a stack of mounts, so after a reload the new instance
answers, and after a failed reload (new instance stopped) the old one answers again. Several server
blocks naming the same address share the listener, as CoreDNS does. The socket closes when its last
path is unmounted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from kdns.corefile.model import Directive

RouteHandler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
_SHARED_KEY = "http.endpoints"


def parse_address(d: Directive, text: str) -> tuple[str | None, int]:
    """`host:port`, `[v6]:port` or `:port` (Go's net.SplitHostPort, as CoreDNS parses these)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        raise d.error(f"address {text}: missing port in address")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise d.error(f"address {text}: '{host}' is not an IPv6 address") from None
    elif ":" in host:
        raise d.error(f"address {text}: too many colons in address (write IPv6 as [addr]:port)")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise d.error(f"address {text}: invalid port '{port}'")
    return host or None, int(port)


class HttpEndpoint:
    """One listening address; requests go to whatever handler is on top of their path's stack."""

    def __init__(self, host: str | None, port: int) -> None:
        self.host = host
        self.port = port
        self._mounts: dict[str, list[tuple[object, RouteHandler]]] = {}
        self._runner: web.ServerRunner | None = None

    @property
    def url(self) -> str:
        host = self.host or "localhost"
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    async def open(self) -> None:
        if self._runner is not None:
            return
        # access_log=None: CoreDNS does not log probe and scrape requests.
        runner = web.ServerRunner(web.Server(self._dispatch, access_log=None), shutdown_timeout=2.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port, reuse_address=True).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def mount(self, path: str, owner: object, handler: RouteHandler) -> None:
        self._mounts.setdefault(path, []).append((owner, handler))

    def unmount(self, path: str, owner: object) -> None:
        stack = [m for m in self._mounts.get(path, []) if m[0] is not owner]
        if stack:
            self._mounts[path] = stack
        else:
            self._mounts.pop(path, None)

    @property
    def unused(self) -> bool:
        return not self._mounts

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        stack = self._mounts.get(request.path)
        if not stack:
            return web.Response(status=404, text="404 page not found\n")
        return await stack[-1][1](request)


async def mount(
    shared: dict[str, Any], address: tuple[str | None, int], path: str, owner: object, handler: RouteHandler
) -> HttpEndpoint:
    """Serve `handler` at `path` on `address`, opening the listener if nothing serves there yet."""
    endpoints: dict[tuple[str | None, int], HttpEndpoint] = shared.setdefault(_SHARED_KEY, {})
    endpoint = endpoints.get(address)
    if endpoint is None:
        endpoint = HttpEndpoint(*address)
        await endpoint.open()  # raises OSError (address in use…): the plugin's start fails
        endpoints[address] = endpoint
    endpoint.mount(path, owner, handler)
    return endpoint


async def unmount(shared: dict[str, Any], address: tuple[str | None, int], path: str, owner: object) -> None:
    """Withdraw `owner`'s handler; close the listener when no path is left on it."""
    endpoints: dict[tuple[str | None, int], HttpEndpoint] = shared.setdefault(_SHARED_KEY, {})
    endpoint = endpoints.get(address)
    if endpoint is None:
        return
    endpoint.unmount(path, owner)
    if endpoint.unused:
        del endpoints[address]
        await endpoint.close()
