"""`health [ADDRESS] { lameduck DURATION }` — liveness: HTTP 200 `OK` on /health while the process runs.

kubeadm's liveness probe reads :8080/health. As in CoreDNS (plugin/health) the answer never depends
on plugin state: a live process is healthy. `lameduck` delays shutdown: on SIGTERM the server keeps
answering DNS and /health for DURATION (Kubernetes is meanwhile removing the pod from the Service's
endpoints), then stops. A self-probe every second feeds coredns_health_request_duration_seconds and
coredns_health_request_failures_total, so a starved event loop shows up in metrics.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

from kdns.corefile.model import Directive
from kdns.http1 import client as http
from kdns.http1.server import Request, Response
from kdns.log import plugin_logger
from kdns.metrics import SLIM_TIME_BUCKETS, counter, histogram
from kdns.plugin import Plugin, SetupContext
from kdns.plugins import _http
from kdns.plugins._args import expect_args, parse_duration, unknown_property
from kdns.plugins._text import go_duration
from kdns.tasks import cancel_and_wait

DEFAULT_ADDRESS = ":8080"
PATH = "/health"
PROBE_INTERVAL = 1.0  # CoreDNS overloaded(): one self-request per second…
PROBE_TIMEOUT = 3.0  # …with a 3 s client timeout, warning when one takes over a second
_log = plugin_logger("health")

DURATION = histogram(
    "health",
    "request_duration_seconds",
    "Histogram of the time (in seconds) each request took.",
    buckets=SLIM_TIME_BUCKETS,
)
FAILURES = counter("health", "request_failures_total", "The number of times the health check failed.")


async def _ok(request: Request) -> Response:
    return Response.text("OK")


class Health(Plugin):
    name = "health"
    in_query_path: ClassVar[bool] = False

    def __init__(self, address: tuple[str | None, int], lameduck: float, shared: dict[str, Any]) -> None:
        self.address = address
        self.lameduck = lameduck
        self.shared = shared
        self._probe: asyncio.Task[None] | None = None

    async def start(self) -> None:
        endpoint = await _http.mount(self.shared, self.address, PATH, self, _ok)
        self._probe = asyncio.get_running_loop().create_task(self._self_probe(endpoint.url + PATH))

    async def on_shutdown(self) -> None:
        if self.lameduck > 0:
            _log.info("Going into lameduck mode for %s", go_duration(self.lameduck))
            await asyncio.sleep(self.lameduck)

    async def stop(self) -> None:
        await cancel_and_wait(self._probe)
        self._probe = None
        await _http.unmount(self.shared, self.address, PATH, self)

    async def _self_probe(self, url: str) -> None:
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            start = time.perf_counter()
            try:
                async with asyncio.timeout(PROBE_TIMEOUT):
                    async with http.get(url, connect_timeout=PROBE_TIMEOUT, read_timeout=PROBE_TIMEOUT) as r:
                        await r.read()
            except (http.HttpError, OSError, TimeoutError) as e:
                DURATION.observe(time.perf_counter() - start)
                FAILURES.inc()
                _log.warning("Local health request to %r failed: %s", url, e or type(e).__name__)
                continue
            elapsed = time.perf_counter() - start
            DURATION.observe(elapsed)
            if elapsed > 1.0:
                _log.warning("Local health request took more than 1s: %s", go_duration(elapsed))


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    args = expect_args(d, 0, 1)
    address = _http.parse_address(d, args[0] if args else DEFAULT_ADDRESS)
    lameduck = 0.0
    for child in d.children:
        if child.name != "lameduck":
            raise unknown_property(d, child)
        (value,) = expect_args(child, 1, 1)
        lameduck = parse_duration(child, value, "lameduck duration")
    return Health(address, lameduck, ctx.shared)
