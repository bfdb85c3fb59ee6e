"""The API side of bench/churn.py: the test API server preloaded with the generated objects, and a
writer in the same process that moves pods at a fixed rate through the server's real watch streams.

Each event is one EndpointSlice update, as the EndpointSlice controller writes when a pod is
rescheduled: one endpoint of the slice gets a new address (its hostname, readiness and the other
endpoints stay). On a ClusterIP Service that changes none of the answers the question file asks
for (the Service name answers with its cluster IPs, SRV targets the Service name; only the
endpoint's dashed-IP name moves); on a headless Service the Service's A/AAAA set, the pod's
hostname record and the SRV targets change.

The child process talks to bench/churn.py over a pipe (the way bench/propagation.py runs its
writer): ("churn", kind, rate) starts writing, "halt" ends a churn and gets a `Written` back,
"stop" ends the process. The writer lives beside the server, not in the parent, so each event is
a direct `ApiServer.update` (the server's loop thread turns it into MODIFIED events on every watch)
and the parent's pipe stays quiet while dnsperf runs.

The selection of slices, the new addresses and the answers a final state implies are pure
functions, unit-tested in tests/bench/test_churn.py.
"""

from __future__ import annotations

import copy
import gc
import ipaddress
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdns.k8s.records import dashed_ip

if TYPE_CHECKING:
    from tests.support.apiserver import ApiServer

JSONDict = dict[str, Any]
SliceKey = tuple[str, str]  # (namespace, slice name)
SERVICE_LABEL = "kubernetes.io/service-name"
KINDS = ("clusterip", "headless")

# Event n's address: outside the generator's pod (10.244.0.0/15 upwards) and Service ranges.
EVENT_NET4 = ipaddress.IPv4Address("10.200.0.0")
EVENT_NET6 = ipaddress.IPv6Address("fd00:10:200::")


def event_address(family: str, n: int) -> str:
    """The address event `n` gives its endpoint: unique per event, in the slice's family."""
    return str((EVENT_NET6 if family == "IPv6" else EVENT_NET4) + n)


def slice_key(obj: JSONDict) -> SliceKey:
    meta = obj["metadata"]
    return meta.get("namespace", "default"), meta["name"]


def service_of(obj: JSONDict) -> tuple[str, str]:
    """(namespace, Service name) an EndpointSlice belongs to (its kubernetes.io/service-name label)."""
    meta = obj["metadata"]
    return meta.get("namespace", "default"), meta.get("labels", {})[SERVICE_LABEL]


def is_ready(endpoint: JSONDict) -> bool:
    """EndpointSlice `conditions.ready`: absent means ready (discovery.k8s.io/v1 API docs)."""
    return endpoint.get("conditions", {}).get("ready") is not False


def pools(objects: Iterable[JSONDict]) -> dict[str, list[JSONDict]]:
    """The slices each kind of churn moves pods in: those of ClusterIP (and NodePort) Services, and
    those of headless ones (clusterIP "None"), in the objects' order; slices without endpoints
    have no pod to move."""
    objs = list(objects)
    headless = {
        (o["metadata"].get("namespace", "default"), o["metadata"]["name"]): o["spec"].get("clusterIP")
        == "None"
        for o in objs
        if o["kind"] == "Service" and o["spec"].get("type", "ClusterIP") != "ExternalName"
    }
    out: dict[str, list[JSONDict]] = {kind: [] for kind in KINDS}
    for o in objs:
        if o["kind"] != "EndpointSlice" or not o.get("endpoints"):
            continue
        svc = service_of(o)
        if svc in headless:
            out["headless" if headless[svc] else "clusterip"].append(o)
    return out


class Churn:
    """Successive updates of one pool of slices: each slice in a seeded random order, round after
    round, one ready endpoint (any, if none is ready) of it given the next event's address.
    `numbers` is shared between pools so that no two events give the same address."""

    def __init__(self, slices: Sequence[JSONDict], seed: int, numbers: Iterator[int]) -> None:
        if not slices:
            raise ValueError("no slice to churn")
        self._rng = random.Random(seed)
        self._current = {slice_key(s): s for s in slices}
        self._order = list(self._current)
        self._rng.shuffle(self._order)
        self._numbers = numbers
        self._count = 0
        self.touched: dict[SliceKey, JSONDict] = {}  # the last object written per slice

    def next(self) -> JSONDict:
        key = self._order[self._count % len(self._order)]
        self._count += 1
        obj = copy.deepcopy(self._current[key])
        endpoints = obj["endpoints"]
        ready = [i for i, ep in enumerate(endpoints) if is_ready(ep)] or list(range(len(endpoints)))
        endpoint = endpoints[self._rng.choice(ready)]
        endpoint["addresses"] = [event_address(obj["addressType"], next(self._numbers))]
        obj["metadata"].pop("resourceVersion", None)
        self._current[key] = self.touched[key] = obj
        return obj


# -- what a state answers -----------------------------------------------------------------------------

Question = tuple[str, str]  # (name, qtype) as dnsperf writes them


def headless_answers(
    service: tuple[str, str], slices: Iterable[JSONDict], zone: str
) -> dict[Question, set[str]]:
    """The A/AAAA answers of a headless Service and of its endpoints' names, from its slices
    (docs/dns-contract.md §4: every ready endpoint's address at the Service name; §1: an endpoint
    is named by its hostname, else by its dashed address). NODATA questions are left out."""
    ns, name = service
    fqdn = f"{name}.{ns}.svc.{zone}"
    out: dict[Question, set[str]] = {}
    for s in slices:
        qtype = "AAAA" if s["addressType"] == "IPv6" else "A"
        for ep in s["endpoints"]:
            if not is_ready(ep):
                continue
            for ip in ep["addresses"]:
                out.setdefault((fqdn, qtype), set()).add(ip)
                out.setdefault((f"{ep.get('hostname') or dashed_ip(ip)}.{fqdn}", qtype), set()).add(ip)
    return out


def final_answers(
    initial: Iterable[JSONDict], touched: dict[SliceKey, JSONDict], zone: str
) -> dict[Question, set[str]]:
    """What the Services whose slices were touched must answer once the API's final state is in;
    names that existed before and no longer do (a moved endpoint's dashed name) must answer
    nothing (the empty set)."""
    by_service: dict[tuple[str, str], dict[SliceKey, JSONDict]] = {}
    for s in initial:
        by_service.setdefault(service_of(s), {})[slice_key(s)] = s
    changed = {service_of(s) for s in touched.values()}
    out: dict[Question, set[str]] = {}
    for svc in sorted(changed):
        before = by_service.get(svc, {})
        after = {**before, **{k: v for k, v in touched.items() if service_of(v) == svc}}
        now = headless_answers(svc, after.values(), zone)
        gone = {q: set[str]() for q in headless_answers(svc, before.values(), zone) if q not in now}
        out.update({**gone, **now})
    return out


# -- the child process --------------------------------------------------------------------------------


@dataclass
class Written:
    """What one churn did: events written, over how long, how late the writer fell behind its
    schedule at worst, and the last object written per slice."""

    kind: str
    events: int
    seconds: float
    max_lag: float
    touched: dict[SliceKey, JSONDict] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)  # watches / other requests kdns made meanwhile

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def api_main(conn: Connection, port: int, manifests: list[str], seed: int) -> None:
    """Serve the API on `port` with the objects of `manifests`; then churn on request (module doc)."""
    from kdns.k8s.manifests import read_objects
    from tests.support.apiserver import BY_KIND, ApiServer

    api = ApiServer(port=port)
    api.start()
    objs = [o for o in read_objects(manifests) if o["kind"] in BY_KIND]
    for obj in objs:
        api.add(obj)
    numbers = iter(range(1 << 30))
    churns = {kind: Churn(slices, seed + i, numbers) for i, (kind, slices) in enumerate(pools(objs).items())}
    del objs
    gc.collect()
    gc.freeze()  # the preloaded objects never die: keep them out of the collector's way
    conn.send("ready")
    while (msg := conn.recv()) != "stop":
        _, kind, rate = msg
        conn.send(_churn(api, conn, churns[kind], kind, rate))
    api.stop()


def _churn(api: ApiServer, conn: Connection, churn: Churn, kind: str, rate: float) -> Written:
    """Write one event every 1/rate s until the parent says "halt" (waiting on the pipe is the
    sleep, so the halt is seen at once)."""
    start = time.monotonic()
    events, max_lag = 0, 0.0
    churn.touched = {}
    requests_before = _requests(api)
    while True:
        due = start + events / rate
        if conn.poll(max(0.0, due - time.monotonic())):
            if conn.recv() != "halt":
                raise RuntimeError("churn writer: expected halt")
            break
        max_lag = max(max_lag, time.monotonic() - due)
        api.update(churn.next())
        events += 1
    seconds = time.monotonic() - start
    made = {k: n - requests_before[k] for k, n in _requests(api).items()}
    return Written(kind, events, seconds, max_lag, churn.touched, made)


def _requests(api: ApiServer) -> dict[str, int]:
    """Requests so far: a watch opened or a list made during a churn means kdns lost its stream."""
    return {"watches": len(api.requests(watch=True)), "other": len(api.requests(watch=False))}


def read_slices(manifests: Path) -> list[JSONDict]:
    """The EndpointSlices bench/gen.py wrote (the state before any churn)."""
    from kdns.k8s.manifests import read_objects

    return [o for o in read_objects([manifests]) if o["kind"] == "EndpointSlice"]
