"""The API connection's health is visible in /metrics: sync, outage, re-lists (issue #3)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.plugins.kubernetes import cluster
from tests.support import objects as o
from tests.support.apiserver import ApiServer
from tests.support.http import scrape, until, value
from tests.support.ports import free_port
from tests.support.process import KdnsProcess

COREFILE = """\
cluster.local:{port} {
    bind 127.0.0.1
    prometheus 127.0.0.1:%(m)d
    kubernetes cluster.local {
        endpoint %(api)s
    }
}
"""


@pytest.fixture
def api() -> Iterator[ApiServer]:
    server = ApiServer(bookmark_interval=0.5)
    server.start()
    for obj in [*cluster.NAMESPACES, *cluster.SERVICES, *cluster.SLICES]:
        server.add(obj)
    yield server
    server.stop()


def test_sync_outage_and_relists_are_visible(kdns: Callable[..., KdnsProcess], api: ApiServer) -> None:
    m = free_port()
    kdns(COREFILE % {"m": m, "api": api.url}, env={"KDNS_INFORMER_TIMING": "backoff_max=0.5"})
    url = f"http://127.0.0.1:{m}/metrics"

    def metric(name: str, kind: str = "services") -> float:
        samples = scrape(url)[1]
        assert any(key[0] == f"kdns_kubernetes_{name}" for key in samples), f"kdns_kubernetes_{name} missing"
        return value(samples, f"kdns_kubernetes_{name}", kind=kind)

    assert {metric("synced", k) for k in ("services", "endpointslices", "namespaces")} == {1.0}
    until(lambda: metric("connected") == 1.0, "services watch open")
    assert metric("relists_total") == 0
    api.down()  # an outage: connected drops, the age of the last event grows
    until(lambda: metric("connected") == 0.0, "outage seen")
    age = metric("last_event_age_seconds")
    until(lambda: metric("last_event_age_seconds") > age + 1, "event age growing during the outage")
    assert metric("errors_total") >= 1
    api.add(o.service("late", ips=["10.96.0.99"]))  # written while kdns cannot see it…
    api.compact()  # …and its history dropped: the next resume is 410 Gone, so a re-list
    api.up()
    until(
        lambda: metric("connected") == 1.0 and metric("relists_total") >= 1, "re-listed after the outage", 30
    )
    assert metric("synced") == 1.0
