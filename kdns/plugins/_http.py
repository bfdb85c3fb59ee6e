"""HTTP listeners for health, ready and prometheus that outlive reloads.

A reload builds and starts the new plugins before it stops the old ones, so a plugin that bound its
own socket would collide with its predecessor on the same address. Instead each address gets one
HTTP/1.1 server (kdns.http1.server), kept in the process-lifetime `SetupContext.shared`; plugins
mount a handler on a path and unmount it when they stop. Each path keeps a stack of mounts, so after
a reload the new instance answers, and after a failed reload (new instance stopped) the old one
answers again. Several server blocks naming the same address share the listener, as CoreDNS does.
The socket closes when its last path is unmounted. Any path not mounted is 404, and each handler
decides which methods it serves (health, ready and metrics answer any, as CoreDNS's do).
"""

from __future__ import annotations

import ipaddress
from typing import Any, ClassVar

from kdns.corefile.model import Directive
from kdns.http1.server import Handler, Request, Response, Server
from kdns.plugin import Controller, Plugin

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
        self._mounts: dict[str, list[tuple[object, Handler]]] = {}
        self._server: Server | None = None

    @property
    def url(self) -> str:
        host = self.host or "localhost"
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    async def open(self) -> None:
        if self._server is None:
            server = Server(self._dispatch)  # no access log: CoreDNS logs no probe or scrape
            await server.start(self.host, self.port)
            self._server = server

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.close()

    def mount(self, path: str, owner: object, handler: Handler) -> None:
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

    async def _dispatch(self, request: Request) -> Response:
        stack = self._mounts.get(request.path)
        if not stack:
            return Response.text("404 page not found\n", 404)  # Go's http.NotFound, as CoreDNS
        return await stack[-1][1](request)


async def mount(
    shared: dict[str, Any], address: tuple[str | None, int], path: str, owner: object, handler: Handler
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


class WithdrawnFirst(Plugin):
    """A plugin serving one path (`PATH`) that is withdrawn at shutdown before the DNS listeners
    close (ready, explain): kubelet and people stop asking while kdns still answers."""

    PATH: ClassVar[str]
    in_query_path: ClassVar[bool] = False

    def __init__(
        self, address: tuple[str | None, int], controller: Controller, shared: dict[str, Any]
    ) -> None:
        self.address = address
        self.controller = controller
        self.shared = shared
        self._mounted = False

    async def handle(self, request: Request) -> Response:
        raise NotImplementedError

    async def start(self) -> None:
        await mount(self.shared, self.address, self.PATH, self, self.handle)
        self._mounted = True

    async def on_shutdown(self) -> None:
        await self.stop()

    async def stop(self) -> None:
        if self._mounted:
            self._mounted = False
            await unmount(self.shared, self.address, self.PATH, self)
