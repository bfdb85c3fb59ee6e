"""`ready [ADDRESS]` — readiness: /ready answers 200 `OK` once every plugin that reports readiness is ready.

kubeadm's readiness probe reads :8181/ready. Otherwise 503 with the sorted, comma-separated names of
the plugins not ready yet (CoreDNS plugin/ready). The plugins are asked at request time through the
controller: those of the configuration being started while it starts (the kubernetes plugin waiting
for its first sync, at start-up or after a reload), else the running one's. And never 200 before the
DNS listeners are open, or kubelet would route traffic to a Pod that does not answer yet. As in
CoreDNS, a plugin instance that has once been ready is not asked again (a later API outage does not
make the pod unready); instances created by a reload are asked afresh. At shutdown the endpoint is
withdrawn first, before health's lameduck, so the pod leaves the Service while it still answers.
"""

from __future__ import annotations

import weakref
from typing import Any

from kdns.corefile.model import Directive
from kdns.http1.server import Request, Response
from kdns.log import plugin_logger
from kdns.plugin import Controller, Plugin, SetupContext
from kdns.plugins import _http
from kdns.plugins._args import expect_args

DEFAULT_ADDRESS = ":8181"
PATH = "/ready"
_SEEN_KEY = "ready.seen"  # in ctx.shared: plugin instances that have been ready once
_log = plugin_logger("ready")


def not_ready(plugins: list[Plugin], seen: weakref.WeakSet[Plugin]) -> list[str]:
    """Sorted names of the plugins whose readiness is False, remembering those found ready."""
    names = []
    for plugin in plugins:
        if plugin in seen:
            continue
        state = plugin.ready()
        if state is None:
            continue
        if state:
            seen.add(plugin)
        else:
            names.append(plugin.name)
    return sorted(names)


class Ready(_http.WithdrawnFirst):
    name = "ready"
    PATH = PATH

    def __init__(
        self, address: tuple[str | None, int], controller: Controller, shared: dict[str, Any]
    ) -> None:
        super().__init__(address, controller, shared)
        self.seen: weakref.WeakSet[Plugin] = shared.setdefault(_SEEN_KEY, weakref.WeakSet())

    async def handle(self, request: Request) -> Response:
        names = not_ready(list(self.controller.plugins()), self.seen)
        if not names and self.controller.serving:
            return Response.text("OK")
        body = ",".join(names)
        _log.info('Plugins not ready: "%s"', body)
        return Response.text(body, 503)


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    args = expect_args(d, 0, 1)
    if d.children:
        raise d.error(f"unknown property '{d.children[0].name}'")
    return Ready(_http.parse_address(d, args[0] if args else DEFAULT_ADDRESS), ctx.controller, ctx.shared)
