"""The test API server holding the small cluster (tests/plugins/kubernetes/cluster.py), Pods
included; modules that need other objects or timings define their own `api`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.plugins.kubernetes import cluster
from tests.support.apiserver import ApiServer


@pytest.fixture
def api() -> Iterator[ApiServer]:
    server = ApiServer(bookmark_interval=1.0)
    server.start()
    for obj in [*cluster.NAMESPACES, *cluster.SERVICES, *cluster.SLICES, *cluster.PODS]:
        server.add(obj)
    yield server
    server.stop()
