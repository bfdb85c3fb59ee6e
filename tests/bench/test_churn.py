"""The pure parts of bench/churn.py and bench/churn_api.py: which slices each churn moves pods in,
what one event writes, what a final state must answer, and the issue's verdicts. No timings.

The expected answers are checked against bench/gen.py's zone (derived from its own model, by the
spec's rules): the churn's notion of "right" is the same as the static comparison's.
"""

from __future__ import annotations

import copy
import ipaddress
import itertools
from typing import Any

import pytest

from bench import gen
from bench.churn_api import (
    Churn,
    event_address,
    final_answers,
    headless_answers,
    is_ready,
    pools,
    service_of,
    slice_key,
)
from bench.churn_figures import RUN_NAMES, Check, KdnsRound, Reference, Run, summarise_cold, targets

SEED = 5  # tests/bench/test_gen.py's: its 40 Services hold every kind the generator makes
TINY = gen.PRESETS["tiny"]


@pytest.fixture(scope="module")
def objects() -> list[dict[str, Any]]:
    cluster = gen.generate(TINY.services, TINY.endpoints, TINY.namespaces, SEED)
    return [o for items in gen.objects(cluster).values() for o in items]


@pytest.fixture(scope="module")
def zone_addresses(objects: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    cluster = gen.generate(TINY.services, TINY.endpoints, TINY.namespaces, SEED)
    out: dict[tuple[str, str], set[str]] = {}
    for owner, _, rtype, rdata in gen.records(cluster):
        if rtype in ("A", "AAAA"):
            out.setdefault((owner.rstrip("."), rtype), set()).add(rdata)
    return out


def _slices(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == "EndpointSlice"]


def _headless(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {
        (o["metadata"]["namespace"], o["metadata"]["name"])
        for o in objects
        if o["kind"] == "Service" and o["spec"].get("clusterIP") == "None"
    }


def test_event_addresses_are_unique_in_the_slices_family_and_outside_the_generated_ranges() -> None:
    v4 = [ipaddress.ip_address(event_address("IPv4", n)) for n in range(70_000)]
    v6 = [ipaddress.ip_address(event_address("IPv6", n)) for n in range(70_000)]
    assert len(set(v4)) == len(v4) and all(a.version == 4 for a in v4)
    assert len(set(v6)) == len(v6) and all(a.version == 6 for a in v6)
    pods4 = ipaddress.ip_network("10.244.0.0/15")  # gen.POD_NET4 upwards, room for 100k pods
    services4 = ipaddress.ip_network("10.96.0.0/16")
    assert not any(a in pods4 or a in services4 for a in v4)
    assert not any(a in ipaddress.ip_network("fd00:10:244::/48") for a in v6)


def test_pools_split_slices_by_their_services_kind(objects: list[dict[str, Any]]) -> None:
    split = pools(objects)
    headless = _headless(objects)
    assert split["headless"] and split["clusterip"]
    assert all(service_of(s) in headless for s in split["headless"])
    assert not any(service_of(s) in headless for s in split["clusterip"])
    assert all(s["endpoints"] for s in split["headless"] + split["clusterip"])
    with_endpoints = [s for s in _slices(objects) if s["endpoints"]]
    assert len(split["headless"]) + len(split["clusterip"]) == len(with_endpoints)


def _moved(old: dict[str, Any], new: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one endpoint an event changed: (before, after)."""
    changed = [(a, b) for a, b in zip(old["endpoints"], new["endpoints"], strict=True) if a != b]
    assert len(changed) == 1, changed
    assert {k: v for k, v in old.items() if k != "endpoints"} == {
        k: v for k, v in new.items() if k != "endpoints"
    }
    return changed[0]


def test_an_event_moves_one_ready_endpoint_and_keeps_the_rest(objects: list[dict[str, Any]]) -> None:
    slices = pools(objects)["headless"]
    given = copy.deepcopy(slices)
    current = {slice_key(s): s for s in given}
    churn = Churn(slices, seed=1, numbers=itertools.count())
    for _ in range(3 * len(slices)):
        new = churn.next()
        before, after = _moved(current[slice_key(new)], new)
        assert {k: v for k, v in before.items() if k != "addresses"} == {
            k: v for k, v in after.items() if k != "addresses"
        }, "hostname, readiness and targetRef stay: the same pod, rescheduled"
        assert before["addresses"] != after["addresses"]
        assert is_ready(after) or not any(is_ready(ep) for ep in new["endpoints"])
        current[slice_key(new)] = new
    assert slices == given, "the objects given are not modified"


def test_each_slice_is_moved_once_before_any_twice(objects: list[dict[str, Any]]) -> None:
    slices = pools(objects)["clusterip"]
    churn = Churn(slices, seed=3, numbers=itertools.count())
    first_round = [slice_key(churn.next()) for _ in slices]
    assert sorted(first_round) == sorted(slice_key(s) for s in slices)
    assert set(churn.touched) == set(first_round)


def test_pools_sharing_numbers_never_give_the_same_address(objects: list[dict[str, Any]]) -> None:
    numbers = itertools.count()
    split = pools(objects)
    churns = [Churn(split[kind], seed=i, numbers=numbers) for i, kind in enumerate(split)]
    current = {slice_key(s): s for pool in split.values() for s in pool}
    new_addresses = []
    for i in range(200):
        new = churns[i % 2].next()
        new_addresses += _moved(current[slice_key(new)], new)[1]["addresses"]
        current[slice_key(new)] = new
    assert len(new_addresses) == len(set(new_addresses)) == 200


def test_final_answers_of_an_untouched_state_are_the_zones(
    objects: list[dict[str, Any]], zone_addresses: dict[tuple[str, str], set[str]]
) -> None:
    headless_slices = pools(objects)["headless"]
    expected = final_answers(_slices(objects), {slice_key(s): s for s in headless_slices}, gen.ZONE)
    assert expected
    for question, addresses in expected.items():
        assert zone_addresses[question] == addresses, question
    names = {f"{name}.{ns}.svc.{gen.ZONE}" for ns, name in _headless(objects)}
    zone_headless = {q for q in zone_addresses if any(q[0].endswith(n) for n in names)}
    assert set(expected) == zone_headless


def test_final_answers_follow_the_last_write(objects: list[dict[str, Any]]) -> None:
    slices = pools(objects)["headless"]
    churn = Churn(slices, seed=2, numbers=itertools.count())
    for _ in range(len(slices) + 3):  # every headless slice at least once, a few twice
        churn.next()
    expected = final_answers(_slices(objects), churn.touched, gen.ZONE)
    answered = set().union(*expected.values())

    def ready_addresses(items: Any) -> set[str]:
        return {ip for s in items for ep in s["endpoints"] if is_ready(ep) for ip in ep["addresses"]}

    final, initial = ready_addresses(churn.touched.values()), ready_addresses(slices)
    assert answered == final
    assert initial - final and not (initial - final) & answered, "moved-away addresses are gone"
    gone = {q for q, addresses in expected.items() if not addresses}
    assert gone, "a moved endpoint's dashed name answers nothing"
    assert all(q[0].split(".")[0].startswith(("10-244-", "fd00-10-244-")) for q in gone)


def _round(static: float, first: float, cip: float, cip_lost: int, hl: float, p99: float) -> KdnsRound:
    def run(name: str, qps: float, lost: int = 0, p: float | None = None) -> Run:
        return Run(
            RUN_NAMES[name], "kdns", qps, 1000, 1000 - lost, lost, 0.001, p, p, 10.0, 5.0, "0.5 0.5 0.5"
        )

    k = KdnsRound("kdns", "/x")
    k.runs = [
        run("first", first),
        run("static", static),
        run("lat", 2000, p=0.0001),
        run("clusterip", cip, cip_lost),
        run("lat-churn", 2000, p=p99),
        run("headless", hl),
    ]
    k.headless_right = Check(10, 0, 1.0)
    return k


def test_targets_are_the_issues_ratios() -> None:
    knot = Reference(static=140_000, first=120_000)
    good = targets(_round(150_000, 80_000, 140_000, 0, 71_000, 0.0004), knot)
    assert all(ok for _, _, ok in good), good
    bad = dict(
        (name, ok) for name, _, ok in targets(_round(150_000, 77_000, 134_000, 1, 69_000, 0.0006), knot)
    )
    assert bad == {
        "ClusterIP churn ≥ 90% of own static qps": False,  # 134k < 135k
        "ClusterIP churn ≥ 0.65 × knotd static": True,
        "ClusterIP churn: 0 lost": False,
        "headless churn ≥ 0.5 × knotd static": False,  # 69k < 70k
        "headless: every changed answer right once churn stops": True,
        "first pass ≥ 0.65 × knotd's pass": False,  # 77k < 78k
        "p99 ≤ 0.5 ms at 2k qps, idle, 0 lost": True,
        "p99 ≤ 0.5 ms at 2k qps, during ClusterIP churn, 0 lost": False,
    }


def test_cold_ask_summary_is_percentiles_in_microseconds() -> None:
    raw = {
        "questions": 100,
        "start_seconds": 1.0,
        "cold": {"cpu_ns": [i * 1000 for i in range(100, 0, -1)], "rcodes": {"0": 100}},
        "warm": {"cpu_ns": [2000] * 100, "rcodes": {"0": 100}},
    }
    s = summarise_cold(raw)
    assert (s["cold_p50_us"], s["cold_p99_us"], s["warm_p50_us"]) == (50.0, 99.0, 2.0)


def test_not_ready_endpoints_answer_nothing() -> None:
    def endpoint(ip: str, ready: bool | None, hostname: str | None = None) -> dict[str, Any]:
        ep: dict[str, Any] = {"addresses": [ip]}
        if ready is not None:
            ep["conditions"] = {"ready": ready}
        if hostname:
            ep["hostname"] = hostname
        return ep

    s = {
        "addressType": "IPv4",
        "endpoints": [
            endpoint("10.0.0.1", True, "db-0"),
            endpoint("10.0.0.2", False, "db-1"),
            endpoint("10.0.0.3", None),
        ],
    }
    fqdn = f"db.ns.svc.{gen.ZONE}"
    assert headless_answers(("ns", "db"), [s], gen.ZONE) == {
        (fqdn, "A"): {"10.0.0.1", "10.0.0.3"},  # ready absent counts as ready
        (f"db-0.{fqdn}", "A"): {"10.0.0.1"},
        (f"10-0-0-3.{fqdn}", "A"): {"10.0.0.3"},
    }
