"""ClusterIndex: per-object updates, re-list reconciliation, PTR bookkeeping, slice hand-over."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kdns.k8s.index import HANDOVER_HOLD, ClusterIndex, ViewOptions
from kdns.k8s.models import Kind, parse_object
from kdns.k8s.records import packed_ip
from tests.support import objects as o


class FakeClock:
    """Collects call_later callbacks so a test decides when the hold expires."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.pending: list[tuple[float, Callable[[], None]]] = []

    def call_later(self, delay: float, cb: Callable[[], None]) -> None:
        self.pending.append((delay, cb))

    def run_pending(self) -> None:
        pending, self.pending = self.pending, []
        for _, cb in pending:
            cb()


def index_with(*objs: dict[str, Any], clock: FakeClock | None = None) -> ClusterIndex:
    idx = ClusterIndex(clock=(lambda: clock.now) if clock else __import__("time").time)
    if clock:
        idx.call_later = clock.call_later
    for kind in (Kind.NAMESPACE, Kind.SERVICE, Kind.ENDPOINTSLICE, Kind.POD):
        idx.replace(kind, [parse_object(kind, obj) for obj in objs if obj["kind"] == kind.kind_name])
    return idx


def slice_obj(name: str, svc: str, *ips: str, ready: bool = True) -> dict[str, Any]:
    return o.endpoint_slice(
        name, svc, endpoints=[o.endpoint(ip, ready=ready) for ip in ips], ports=[o.port("http", 80)]
    )


def put(idx: ClusterIndex, obj: dict[str, Any]) -> None:
    kind = next(k for k in Kind if k.kind_name == obj["kind"])
    idx.upsert(kind, parse_object(kind, obj))


def headless_ips(idx: ClusterIndex, name: str = "hl") -> tuple[str, ...]:
    view = idx.view("default", name)
    return view.addresses.v4 if view and view.exists else ()


def test_replace_reconciles_deletions_and_changes() -> None:
    idx = index_with(
        o.namespace("default"), o.service("a", ips=["10.96.0.1"]), o.service("b", ips=["10.96.0.2"])
    )
    idx.replace(Kind.SERVICE, [parse_object(Kind.SERVICE, o.service("b", ips=["10.96.0.3"]))])
    assert idx.view("default", "a") is None
    view = idx.view("default", "b")
    assert view is not None and view.addresses.v4 == ("10.96.0.3",)
    assert idx.ptr_targets(packed_ip("10.96.0.1") or b"") == []
    assert idx.ptr_targets(packed_ip("10.96.0.2") or b"") == []
    assert idx.ptr_targets(packed_ip("10.96.0.3") or b"") == [("default", "b.default.svc")]


def test_sync_requires_every_kind() -> None:
    idx = ClusterIndex(required=[Kind.SERVICE, Kind.NAMESPACE])
    idx.replace(Kind.SERVICE, [])
    assert not idx.synced
    idx.replace(Kind.NAMESPACE, [])
    assert idx.synced


def test_slice_changes_update_endpoints_and_ptrs() -> None:
    idx = index_with(
        o.namespace("default"), o.headless("hl"), slice_obj("hl-1", "hl", "10.0.0.1", "10.0.0.2")
    )
    assert headless_ips(idx) == ("10.0.0.1", "10.0.0.2")
    put(idx, slice_obj("hl-1", "hl", "10.0.0.2", "10.0.0.3"))
    assert headless_ips(idx) == ("10.0.0.2", "10.0.0.3")
    assert idx.ptr_targets(packed_ip("10.0.0.1") or b"") == []
    assert idx.ptr_targets(packed_ip("10.0.0.3") or b"") == [("default", "10-0-0-3.hl.default.svc")]


def test_ip_backing_two_headless_services_gets_a_ptr_each() -> None:
    idx = index_with(
        o.namespace("default"),
        o.headless("a"),
        o.headless("b"),
        slice_obj("a-1", "a", "10.0.0.9"),
        slice_obj("b-1", "b", "10.0.0.9"),
    )
    assert sorted(idx.ptr_targets(packed_ip("10.0.0.9") or b"")) == [
        ("default", "10-0-0-9.a.default.svc"),
        ("default", "10-0-0-9.b.default.svc"),
    ]


def test_readiness_flip_is_immediate_even_for_the_last_endpoint() -> None:
    clock = FakeClock()
    idx = index_with(
        o.namespace("default"), o.headless("hl"), slice_obj("hl-1", "hl", "10.0.0.1"), clock=clock
    )
    put(idx, slice_obj("hl-1", "hl", "10.0.0.1", ready=False))
    assert headless_ips(idx) == ()
    assert clock.pending == []


def test_slice_replacement_never_empties_a_headless_service() -> None:
    clock = FakeClock()
    idx = index_with(
        o.namespace("default"), o.headless("hl"), slice_obj("hl-old", "hl", "10.0.0.1"), clock=clock
    )
    idx.delete(Kind.ENDPOINTSLICE, ("default", "hl-old"))  # first half of the hand-over
    assert headless_ips(idx) == ("10.0.0.1",)
    put(idx, slice_obj("hl-new", "hl", "10.0.0.1"))  # second half
    assert headless_ips(idx) == ("10.0.0.1",)
    clock.run_pending()  # the hold's timer fires after the hand-over: nothing changes
    assert headless_ips(idx) == ("10.0.0.1",)


def test_endpoint_moving_between_slices_never_empties() -> None:
    clock = FakeClock()
    idx = index_with(
        o.namespace("default"),
        o.headless("hl"),
        slice_obj("hl-a", "hl", "10.0.0.1"),
        slice_obj("hl-b", "hl"),
        clock=clock,
    )
    put(idx, slice_obj("hl-a", "hl"))  # removed from a…
    assert headless_ips(idx) == ("10.0.0.1",)
    put(idx, slice_obj("hl-b", "hl", "10.0.0.1"))  # …added to b
    assert headless_ips(idx) == ("10.0.0.1",)


def test_a_removal_with_no_replacement_applies_when_the_hold_expires() -> None:
    clock = FakeClock()
    idx = index_with(
        o.namespace("default"), o.headless("hl"), slice_obj("hl-1", "hl", "10.0.0.1"), clock=clock
    )
    idx.delete(Kind.ENDPOINTSLICE, ("default", "hl-1"))
    assert headless_ips(idx) == ("10.0.0.1",)
    assert [d for d, _ in clock.pending] == [HANDOVER_HOLD]
    clock.run_pending()
    assert headless_ips(idx) == ()


def sts_slice(name: str, svc: str, *pods: tuple[str, str]) -> dict[str, Any]:
    """A slice of StatefulSet-style endpoints: (hostname, ip) pairs."""
    return o.endpoint_slice(
        name, svc, endpoints=[o.endpoint(ip, hostname=h) for h, ip in pods], ports=[o.port("http", 80)]
    )


def test_a_removed_pod_name_is_held_even_when_others_remain() -> None:
    clock = FakeClock()
    idx = index_with(
        o.namespace("default"),
        o.headless("hl"),
        sts_slice("hl-1", "hl", ("web-0", "10.0.0.1"), ("web-1", "10.0.0.2")),
        clock=clock,
    )
    put(idx, sts_slice("hl-1", "hl", ("web-1", "10.0.0.2")))  # web-0 removed outright, not flipped
    assert idx.endpoints_of(("default", "hl")).get("web-0") is not None
    clock.run_pending()  # no slice took it over: the removal applies when the hold ends
    assert idx.endpoints_of(("default", "hl")).get("web-0") is None
    assert headless_ips(idx) == ("10.0.0.2",)


def test_an_ip_swap_without_hostnames_applies_in_one_step() -> None:
    clock = FakeClock()
    idx = index_with(
        o.namespace("default"), o.headless("hl"), slice_obj("hl-1", "hl", "10.0.0.1", "10.0.0.2"), clock=clock
    )
    put(idx, slice_obj("hl-1", "hl", "10.0.0.2", "10.0.0.5"))
    assert sorted(headless_ips(idx)) == ["10.0.0.2", "10.0.0.5"]
    assert clock.pending == []


def test_moving_between_slices_of_a_big_service_keeps_the_name() -> None:
    clock = FakeClock()
    idx = index_with(
        o.namespace("default"),
        o.headless("hl"),
        sts_slice("hl-a", "hl", ("web-0", "10.0.0.1"), ("web-1", "10.0.0.2")),
        sts_slice("hl-b", "hl", ("web-2", "10.0.0.3")),
        clock=clock,
    )
    put(idx, sts_slice("hl-a", "hl", ("web-0", "10.0.0.1")))
    assert sorted(headless_ips(idx)) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    put(idx, sts_slice("hl-b", "hl", ("web-2", "10.0.0.3"), ("web-1", "10.0.0.2")))  # hand-over completes
    assert sorted(headless_ips(idx)) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    put(idx, sts_slice("hl-b", "hl", ("web-2", "10.0.0.3")))  # now really gone…
    clock.run_pending()
    assert sorted(headless_ips(idx)) == ["10.0.0.1", "10.0.0.3"]  # …once the new hold ends


def test_dual_stack_slice_replacement_keeps_the_family() -> None:
    clock = FakeClock()
    v6 = o.endpoint_slice("hl-v6", "hl", address_type="IPv6", endpoints=[o.endpoint("fd00::1")])
    idx = index_with(
        o.namespace("default"), o.headless("hl"), slice_obj("hl-v4", "hl", "10.0.0.1"), v6, clock=clock
    )
    idx.delete(Kind.ENDPOINTSLICE, ("default", "hl-v4"))
    assert headless_ips(idx) == ("10.0.0.1",)  # A keeps answering while only AAAA remains in slices
    put(idx, slice_obj("hl-v4b", "hl", "10.0.0.1"))
    assert headless_ips(idx) == ("10.0.0.1",)


def test_the_new_slice_decides_readiness_after_a_hand_over() -> None:
    clock = FakeClock()
    idx = index_with(
        o.namespace("default"), o.headless("hl"), slice_obj("hl-a", "hl", "10.0.0.1", "10.0.0.2"), clock=clock
    )
    put(idx, sts_slice("hl-a", "hl", ("web-1", "10.0.0.2")))
    put(
        idx, o.endpoint_slice("hl-b", "hl", endpoints=[o.endpoint("10.0.0.1", hostname="web-0", ready=False)])
    )
    assert headless_ips(idx) == ("10.0.0.2",)  # moved, and not ready any more: the new slice decides


def versions(idx: ClusterIndex) -> tuple[object, ...]:
    """Every version object of the index, for identity comparisons."""
    return (
        dict(idx.namespace_versions),
        dict(idx.service_versions),
        dict(idx.endpoint_versions),
        idx.everything[""],
    )


def test_serial_and_versions_follow_dns_changes_only() -> None:
    clock = FakeClock()
    idx = index_with(o.namespace("default"), o.service("a", ips=["10.96.0.1"]), clock=clock)
    serial, before = idx.serial, versions(idx)
    clock.now += 100
    put(idx, o.service("a", ips=["10.96.0.1"]))  # no DNS-visible change
    assert idx.serial == serial and _same(versions(idx), before)
    put(idx, o.namespace("other"))  # namespaces never bump the serial (docs/dns-contract.md §15)
    assert idx.serial == serial and "other" in idx.namespace_versions
    assert idx.namespace_versions["default"] is before[0]["default"]  # type: ignore[index]
    service_a = idx.service_versions[("default", "a")]
    put(idx, o.service("a", ips=["10.96.0.9"]))
    assert idx.serial == int(clock.now)
    assert idx.service_versions[("default", "a")] is not service_a


def _same(a: tuple[object, ...], b: tuple[object, ...]) -> bool:
    """The same version objects (not merely equal ones)."""
    return all(
        (x.keys() == y.keys() and all(x[k] is y[k] for k in x)) if isinstance(x, dict) else x is y  # type: ignore[attr-defined]
        for x, y in zip(a, b, strict=True)
    )


def test_a_clusterip_slice_update_replaces_endpoint_versions_only() -> None:
    """A rescheduled Pod behind a ClusterIP Service: its A/AAAA/SRV answers stay (same service
    version), its endpoint names do not; a new or deleted Service replaces the version of its name."""
    idx = index_with(o.namespace("default"), o.service("web", ips=["10.96.0.1"]),
                     o.endpoint_slice("web-1", "web", endpoints=[o.endpoint("10.0.0.1")]))  # fmt: skip
    key = ("default", "web")
    service, endpoints = idx.service_versions[key], idx.endpoint_versions[key]
    put(idx, o.endpoint_slice("web-1", "web", endpoints=[o.endpoint("10.0.0.2")]))
    assert idx.service_versions[key] is service and idx.endpoint_versions[key] is not endpoints
    assert ("default", "new") not in idx.service_versions
    put(idx, o.service("new", ips=["10.96.0.2"]))
    assert ("default", "new") in idx.service_versions
    idx.delete(Kind.SERVICE, ("default", "new"))
    assert ("default", "new") not in idx.service_versions


def test_a_headless_change_replaces_its_service_version() -> None:
    first = o.endpoint_slice("db-1", "db", endpoints=[o.endpoint("10.0.0.1", hostname="db-0")])
    idx = index_with(o.namespace("default"), o.headless("db"), first)
    key = ("default", "db")
    service = idx.service_versions[key]
    put(idx, o.endpoint_slice("db-1", "db", endpoints=[o.endpoint("10.0.0.2", hostname="db-0")]))
    assert idx.service_versions[key] is not service


def test_service_delete_drops_view_ptrs_and_ghosts() -> None:
    clock = FakeClock()
    idx = index_with(
        o.namespace("default"), o.headless("hl"), slice_obj("hl-1", "hl", "10.0.0.1"), clock=clock
    )
    idx.delete(Kind.ENDPOINTSLICE, ("default", "hl-1"))
    idx.delete(Kind.SERVICE, ("default", "hl"))
    assert idx.view("default", "hl") is None
    assert idx.ptr_targets(packed_ip("10.0.0.1") or b"") == []
    clock.run_pending()
    assert idx.view("default", "hl") is None


def test_a_renamed_endpoint_of_a_clusterip_service_changes_its_version() -> None:
    """ClusterIP views keep no endpoint names; a name change alone must still invalidate answers."""
    idx = ClusterIndex(ViewOptions(endpoint_pod_names=True))
    for kind, objs in ((Kind.NAMESPACE, [o.namespace("default")]), (Kind.SERVICE, [o.service("web")])):
        idx.replace(kind, [parse_object(kind, obj) for obj in objs])
    put(idx, o.endpoint_slice("web-1", "web", endpoints=[o.endpoint("10.0.0.1", pod="web-old")]))
    before = idx.endpoint_versions[("default", "web")]
    put(idx, o.endpoint_slice("web-1", "web", endpoints=[o.endpoint("10.0.0.1", pod="web-new")]))  # IP reused
    assert idx.endpoint_versions[("default", "web")] is not before
    assert set(idx.endpoints_of(("default", "web"))) == {"web-new"}
