"""The slim models keep the facts `kdns explain` reports: endpoint conditions beyond `ready` and a
Service's selector and publishNotReadyAddresses, with the API's meaning of an absent field."""

from __future__ import annotations

from kdns.k8s.models import Endpoint, EndpointSlice, Service
from tests.support import objects as o


def _endpoints(*eps: o.Obj) -> tuple[Endpoint, ...]:
    return EndpointSlice.from_json(o.endpoint_slice("web-1", "web", endpoints=eps)).endpoints


def test_endpoint_conditions() -> None:
    absent, ready, draining, starting = _endpoints(
        o.endpoint("10.0.0.1", ready=None),
        o.endpoint("10.0.0.2", ready=True, serving=True, terminating=False),
        o.endpoint("10.0.0.3", ready=False, serving=True, terminating=True),
        o.endpoint("10.0.0.4", ready=False, serving=False),
    )
    # discovery.k8s.io/v1 EndpointConditions: nil ready and serving mean true, nil terminating false.
    assert (absent.ready, absent.serving, absent.terminating) == (True, True, False)
    assert (ready.ready, ready.serving, ready.terminating) == (True, True, False)
    assert (draining.ready, draining.serving, draining.terminating) == (False, True, True)
    assert (starting.ready, starting.serving, starting.terminating) == (False, False, False)
    assert absent.flags == ready.flags == 0  # the common endpoint shares the cached small int


def test_service_selector_and_publish_not_ready() -> None:
    plain = Service.from_json(o.service("web"))
    selected = Service.from_json(o.service("web", selector={"app": "web"}, publish_not_ready=True))
    empty = Service.from_json(o.service("web", selector={}))
    assert (plain.has_selector, plain.publish_not_ready) == (False, False)
    assert (selected.has_selector, selected.publish_not_ready) == (True, True)
    assert not empty.has_selector  # an empty selector selects nothing: the API treats it as none
