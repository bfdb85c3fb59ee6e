"""ready: which plugins are asked and remembered, /ready over real HTTP, a real kdns process whose
kubernetes plugin starts unsynced (503 `kubernetes`, then 200), and /ready closing first on SIGTERM."""

from __future__ import annotations

import re
import signal
import weakref
from collections.abc import Callable, Iterator

import aiohttp
import pytest

from kdns.corefile import CorefileError
from kdns.plugin import Plugin
from kdns.plugins import ready
from tests.support.apiserver import ApiServer
from tests.support.dnsclient import ask, rcode
from tests.support.http import get, until
from tests.support.ports import free_port
from tests.support.process import KdnsProcess
from tests.support.units import FakeController, context, directive

Kdns = Callable[..., KdnsProcess]


class Gate(Plugin):
    """A plugin with a readiness the test sets."""

    def __init__(self, name: str, state: bool | None) -> None:
        self.name = name  # type: ignore[misc]
        self.state = state
        self.asked = 0

    def ready(self) -> bool | None:
        self.asked += 1
        return self.state


def test_not_ready_names_are_sorted_and_readiness_is_remembered() -> None:
    kube, zeta, alpha, plain = (
        Gate("kubernetes", False),
        Gate("zeta", False),
        Gate("alpha", True),
        Gate("x", None),
    )
    seen: weakref.WeakSet[Plugin] = weakref.WeakSet()
    plugins: list[Plugin] = [zeta, kube, alpha, plain]
    assert ready.not_ready(plugins, seen) == ["kubernetes", "zeta"]
    kube.state = True
    assert ready.not_ready(plugins, seen) == ["zeta"]
    kube.state = False  # once ready, stays ready (CoreDNS): an API outage later does not unready the pod
    zeta.state = True
    assert ready.not_ready(plugins, seen) == []
    asked = kube.asked
    assert ready.not_ready(plugins, seen) == [] and kube.asked == asked


def test_syntax() -> None:
    plugin = ready.setup(directive("ready"), context("ready"))
    assert isinstance(plugin, ready.Ready) and plugin.address == (None, 8181)
    plugin = ready.setup(directive("ready 127.0.0.1:9999"), context("ready 127.0.0.1:9999"))
    assert isinstance(plugin, ready.Ready) and plugin.address == ("127.0.0.1", 9999)
    for text, message in [
        ("ready 1 2", "wrong argument count"),
        ("ready 8181", "missing port"),
        ("ready {\n monitor continuously\n}", "unknown property 'monitor'"),
    ]:
        with pytest.raises(CorefileError, match=re.escape(message)):
            ready.setup(directive(text), context(text))


async def test_ready_endpoint_follows_the_controllers_plugins() -> None:
    port = free_port()
    gate = Gate("kubernetes", False)
    controller = FakeController([gate, Gate("whoami", None)])
    shared: dict[str, object] = {}
    plugin = ready.setup(
        directive(f"ready 127.0.0.1:{port}"), context("ready", controller=controller, shared=shared)
    )
    await plugin.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/ready") as r:
                assert (r.status, await r.text()) == (503, "kubernetes")
            gate.state = True
            async with http.get(f"http://127.0.0.1:{port}/ready") as r:
                assert (r.status, await r.text()) == (200, "OK")
            controller._plugins.append(Gate("file", False))  # a reload brought a new plugin
            async with http.get(f"http://127.0.0.1:{port}/ready") as r:
                assert (r.status, await r.text()) == (503, "file")
        await plugin.on_shutdown()  # withdrawn first at shutdown: nothing listens any more
        with pytest.raises(aiohttp.ClientConnectionError):
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/ready"):
                pass
    finally:
        await plugin.stop()


@pytest.fixture
def api() -> Iterator[ApiServer]:
    server = ApiServer(bookmark_interval=1.0)
    server.start()
    yield server
    server.stop()


def test_unsynced_kubernetes_is_not_ready_until_it_syncs(kdns: Kdns, api: ApiServer) -> None:
    rport = free_port()
    api.down()
    p = kdns(
        ".:{port} {\n"
        f"    ready 127.0.0.1:{rport}\n"
        "    kubernetes cluster.local {\n"
        f"        endpoint {api.url}\n"
        "        startup_timeout 1s\n"
        "    }\n"
        "    whoami\n"
        "}\n"
    )
    assert get(f"http://127.0.0.1:{rport}/ready") == (503, "kubernetes")
    assert '[INFO] plugin/ready: Plugins not ready: "kubernetes"' in until(
        lambda: "Plugins not ready" in p.logs() and p.logs(), "the not-ready log line"
    )
    api.up()
    until(lambda: get(f"http://127.0.0.1:{rport}/ready") == (200, "OK"), "/ready after the API came back", 60)


def test_ready_closes_first_at_shutdown(kdns: Kdns) -> None:
    hport, rport = free_port(), free_port()
    p = kdns(
        ".:{port} {\n"
        f"    health 127.0.0.1:{hport} {{\n        lameduck 5s\n    }}\n"
        f"    ready 127.0.0.1:{rport}\n"
        "    whoami\n"
        "}\n"
    )
    assert get(f"http://127.0.0.1:{rport}/ready") == (200, "OK")
    p.signal(signal.SIGTERM)
    until(lambda: "Going into lameduck mode" in p.logs(), "lameduck to begin")
    with pytest.raises(OSError):
        get(f"http://127.0.0.1:{rport}/ready", timeout=2)  # the Service stops sending traffic…
    assert get(f"http://127.0.0.1:{hport}/health") == (200, "OK")  # …while the pod still lives
    assert rcode(ask(p.port, "example.org.")) == "NOERROR"  # …and still answers stragglers
    assert p.wait(30) == 0


def _poll(p: KdnsProcess, rport: int, seconds: float) -> list[tuple[int | None, bool]]:
    """Ask /ready, then DNS, over and over from the start of `p`: (HTTP status or None when nothing
    listens, whether DNS answered right after)."""
    import socket
    import time

    import dns.message

    q = dns.message.make_query("whoami.example.", "A").to_wire()
    seen: list[tuple[int | None, bool]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            status: int | None = get(f"http://127.0.0.1:{rport}/ready", timeout=0.5)[0]
        except OSError:
            status = None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            s.sendto(q, ("127.0.0.1", p.port))
            try:
                answered = bool(s.recv(4096))
            except OSError:
                answered = False
        seen.append((status, answered))
        if status == 200 and answered:
            break
    return seen


@pytest.mark.parametrize("api_state", ["hanging", "slow"])
def test_ready_is_503_from_its_first_answer_until_dns_serves(
    kdns: Kdns, api: ApiServer, api_state: str
) -> None:
    """Regression: while the kubernetes plugin waited for the API at start-up, /ready said 200 and
    DNS was not answered at all, so kubelet would mark the Pod ready (and the rollout would delete
    the old CoreDNS) seconds before it served."""
    rport = free_port()
    if api_state == "hanging":
        api.hang_next(100)
    else:
        api.set_latency(1.5)
    p = kdns(
        ".:{port} {\n"
        f"    ready 127.0.0.1:{rport}\n"
        "    kubernetes cluster.local {\n"
        f"        endpoint {api.url}\n"
        "        startup_timeout 3s\n"
        "    }\n"
        "    whoami\n"
        "}\n",
        wait_tcp=False,
    )
    seen = _poll(p, rport, 10.0)
    assert (503, False) in seen  # /ready answered during the wait, and said not ready
    assert (200, False) not in seen  # never ready while DNS did not answer
    assert any(answered for _, answered in seen)
    if api_state == "hanging":  # started unsynced: DNS answers (SERVFAIL), /ready stays 503
        assert get(f"http://127.0.0.1:{rport}/ready") == (503, "kubernetes")
    else:
        assert seen[-1] == (200, True)


def test_ready_is_503_while_a_reload_rebuilds_the_kubernetes_plugin(kdns: Kdns, api: ApiServer) -> None:
    rport = free_port()
    text = (
        ".:{port} {\n"
        f"    ready 127.0.0.1:{rport}\n"
        "    kubernetes cluster.local {\n"
        f"        endpoint {api.url}\n"
        "        ttl %d\n"
        "        startup_timeout 10s\n"
        "    }\n"
        "    whoami\n"
        "}\n"
    )
    p = kdns(text % 5)
    until(lambda: get(f"http://127.0.0.1:{rport}/ready") == (200, "OK"), "ready after the first sync")
    api.hang_next(3, watch=False)  # the new kubernetes plugin's three lists will not finish
    p.corefile_path.write_text((text % 7).replace("{port}", str(p.port)))
    p.signal(signal.SIGUSR1)
    # at once, not only after startup_timeout, when the new configuration starts serving unsynced
    until(lambda: get(f"http://127.0.0.1:{rport}/ready") == (503, "kubernetes"), "503 during the reload", 3)
    assert rcode(ask(p.port, "whoami.example.")) == "NOERROR"  # the old configuration still serves
    api.release_hung()
    until(lambda: get(f"http://127.0.0.1:{rport}/ready") == (200, "OK"), "ready once the new one synced", 30)
