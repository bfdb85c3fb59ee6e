"""Randomized soak: random API writes and faults, then every answer must equal the oracle's.

A seeded driver writes random creates, updates and deletes of Namespaces, Services (ClusterIP
v4/v6/dual-stack, headless, ExternalName in and out of the zone) and EndpointSlices (ready flips,
hostnames, both families, endpoints moving between slices, slices replaced) to the test API server,
while it also cuts watches, tears events in half, compacts history (410 on resume), takes the API
down and up, restarts it in a new resourceVersion epoch, sends garbage, delays, hangs and fails
requests. Throughout, a prober asks names the driver never touches: they must answer right all
along. After the writes stop, the test waits for quiescence (a sentinel written last in every kind
is visible, then the slice hand-over hold has passed and answers have stopped changing) and compares
kdns's UDP answers for every name any object ever gave rise to with the oracle's answers for the
API server's final state.

Reproduce a failure with the printed seed: KDNS_SOAK_SEED=<seed> (KDNS_SOAK_SECONDS sets the length).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kdns.k8s.informer import TIMING_ENV
from tests.plugins.kubernetes import oracle
from tests.plugins.kubernetes.harness import KINDS, Prober, start
from tests.support import objects as o
from tests.support.apiserver import ApiServer
from tests.support.process import KdnsProcess

# The run is counted in writes, not seconds, so a seed replays the same API history on any machine
# (~80 writes/s here); faults and their undoing are scheduled in writes too.
WRITES = int(float(os.environ.get("KDNS_SOAK_SECONDS", "20")) * 80)
NAMESPACES = ("ns-a", "ns-b", "ns-c")
SERVICES = ("s0", "s1", "s2", "s3", "s4", "s5")
PORT_SETS: tuple[list[dict[str, Any]], ...] = (
    [o.port("http", 80)],
    [o.port("dns", 53, "UDP"), o.port("dns", 53, "TCP"), o.port("metrics", 9153)],
    [o.port("grpc", 9090), o.port("", 8080)],
    [],
)
HANDOVER_HOLD = 2.0  # kdns.k8s.index.HANDOVER_HOLD: a removed slice may linger this long
QUIESCENCE_TIMEOUT = 40.0


class Driver:
    """Random writes to the API server; remembers every object written (for the questions)."""

    def __init__(self, api: ApiServer, rng: random.Random) -> None:
        self.api, self.rng = api, rng
        self.written: list[dict[str, Any]] = []
        self._ips = 0
        self.ops: dict[str, int] = {}

    # -- state ---------------------------------------------------------------------------------

    def _get(self, kind: str, name: str, ns: str | None) -> dict[str, Any] | None:
        return self.api.get(kind, name, ns)

    def _names(self, kind: str, ns: str | None = None) -> list[tuple[str, str]]:
        return [
            (x["metadata"].get("namespace", ""), x["metadata"]["name"])
            for x in self.api.objects(kind)
            if ns is None or x["metadata"].get("namespace") == ns
        ]

    def _write(self, obj: dict[str, Any]) -> None:
        self.written.append(obj)
        self.api.apply(obj)

    def _delete(self, kind: str, ns: str, name: str) -> None:
        self.api.delete(kind, name, ns or None)

    def _cluster_ip(self, family: int) -> str:
        self._ips += 1
        n = self._ips
        return f"10.96.{n // 250}.{n % 250 + 1}" if family == 4 else f"fd00:96::{n:x}"

    # -- random objects ------------------------------------------------------------------------

    def _service(self, ns: str, name: str) -> dict[str, Any]:
        r = self.rng
        kind = r.choices(["v4", "v6", "dual", "headless", "external"], [4, 1, 2, 4, 2])[0]
        ports = r.choice(PORT_SETS)
        if kind == "external":
            target = r.choice(
                [
                    f"t{r.randrange(5)}.example.org",
                    f"{r.choice(SERVICES)}.{r.choice(NAMESPACES)}.svc.cluster.local",
                    "192.0.2.7",  # an IP: not served (docs/dns-contract.md §5)
                ]
            )
            return o.external(name, target, ns)
        if kind == "headless":
            return o.headless(name, ns, ports=ports)
        ips = {"v4": [self._cluster_ip(4)], "v6": [self._cluster_ip(6)]}.get(kind)
        return o.service(name, ns, ips=ips or [self._cluster_ip(4), self._cluster_ip(6)], ports=ports)

    def _endpoint(self, ns: str, family: str) -> dict[str, Any]:
        r = self.rng
        i = r.randrange(1, 13)
        nsi = NAMESPACES.index(ns) if ns in NAMESPACES else 9
        ip = f"10.244.{nsi}.{i}" if family == "IPv4" else f"fd00:244::{nsi}:{i}"
        ready = r.choices([True, False, None], [6, 2, 1])[0]
        hostname = r.choice([None, None, f"h{i % 6}"])
        return o.endpoint(ip, ready=ready, hostname=hostname)

    def _slice(self, ns: str, svc: str, name: str, family: str | None = None) -> dict[str, Any]:
        r = self.rng
        family = family or r.choice(["IPv4", "IPv4", "IPv6"])
        existing = self._get("Service", svc, ns)
        ports = (existing or {}).get("spec", {}).get("ports") if r.random() < 0.8 else r.choice(PORT_SETS)
        eps = [self._endpoint(ns, family) for _ in range(r.randrange(0, 5))]
        return o.endpoint_slice(name, svc, ns, endpoints=eps, ports=ports or [], address_type=family)

    # -- operations ----------------------------------------------------------------------------

    def step(self) -> None:
        r = self.rng
        op = r.choices(
            ["ns", "ns-delete", "svc", "svc-delete", "slice", "slice-delete", "flip", "move", "replace"],
            [1, 0.3, 4, 1.5, 6, 1.5, 4, 2, 2],
        )[0]
        self.ops[op] = self.ops.get(op, 0) + 1
        ns, svc = r.choice(NAMESPACES), r.choice(SERVICES)
        slices = self._names("EndpointSlice", ns)
        if op == "ns":
            if self._get("Namespace", ns, None) is None:
                self._write(o.namespace(ns))
        elif op == "ns-delete":
            if self._get("Namespace", ns, None) is not None:
                self._delete("Namespace", "", ns)
                if r.random() < 0.5:  # a cascade, as the namespace controller does; else orphans stay
                    for kind in ("Service", "EndpointSlice"):
                        for _, name in self._names(kind, ns):
                            self._delete(kind, ns, name)
        elif op == "svc":
            self._write(self._service(ns, svc))
        elif op == "svc-delete":
            if self._get("Service", svc, ns) is not None:
                self._delete("Service", ns, svc)
        elif op == "slice":
            self._write(self._slice(ns, svc, f"{svc}-{r.randrange(3)}"))
        elif op == "slice-delete" and slices:
            self._delete("EndpointSlice", *r.choice(slices))
        elif op == "flip" and slices:
            sl = self._get("EndpointSlice", r.choice(slices)[1], ns)
            if sl and sl["endpoints"]:
                ep = r.choice(sl["endpoints"])
                ep["conditions"] = {"ready": not ep.get("conditions", {}).get("ready", True)}
                self._write(sl)
        elif op == "move" and slices:
            self._move(ns, r.choice(slices)[1])
        elif op == "replace" and slices:  # the controller's delete-then-add under a new name
            sl = self._get("EndpointSlice", r.choice(slices)[1], ns)
            if sl:
                self._delete("EndpointSlice", ns, sl["metadata"]["name"])
                sl["metadata"] = {**sl["metadata"], "name": f"{sl['metadata']['name']}-r{r.randrange(99)}"}
                sl["metadata"].pop("resourceVersion", None)
                sl["metadata"].pop("uid", None)
                self._write(sl)

    def _move(self, ns: str, name: str) -> None:
        """An endpoint leaves one slice, then joins a sibling of the same Service and family."""
        src = self._get("EndpointSlice", name, ns)
        if not src or not src["endpoints"]:
            return
        svc = src["metadata"]["labels"]["kubernetes.io/service-name"]
        siblings = [
            x
            for x in self.api.objects("EndpointSlice")
            if x["metadata"].get("namespace") == ns
            and x["metadata"]["labels"].get("kubernetes.io/service-name") == svc
            and x["addressType"] == src["addressType"]
            and x["metadata"]["name"] != name
        ]
        dst = self.rng.choice(siblings) if siblings else self._slice(ns, svc, f"{svc}-m", src["addressType"])
        ep = src["endpoints"].pop(self.rng.randrange(len(src["endpoints"])))
        self._write(src)
        dst["endpoints"] = [*dst.get("endpoints", []), ep]
        self._write(dst)


class Faults:
    """Random API faults, each undone in time so the API is whole again when the run ends."""

    def __init__(self, api: ApiServer, rng: random.Random) -> None:
        self.api, self.rng = api, rng
        self.down_until: int | None = None
        self.compact_on_up = False
        self.undo: list[tuple[int, Callable[[], None]]] = []
        self.done: dict[str, int] = {}

    def due(self, now: int) -> None:
        """Undo what is due at write number `now` (latency back to 0, hung requests released, API up)."""
        for at, fn in [u for u in self.undo if u[0] <= now]:
            self.undo.remove((at, fn))
            fn()
        if self.down_until is not None and now >= self.down_until:
            self._up()

    def step(self, now: int) -> None:
        """One random fault at write number `now` (none while the API is down)."""
        if self.down_until is not None:
            return
        r, api = self.rng, self.api
        fault = r.choice(
            ["cut", "tear", "compact", "down", "down-410", "restart", "garbage", "fail", "slow", "hang"]
        )
        self.done[fault] = self.done.get(fault, 0) + 1
        if fault == "cut":
            api.cut_watches()
        elif fault == "tear":
            api.cut_next_event()
        elif fault == "compact":
            api.compact()
            api.cut_watches()
        elif fault in ("down", "down-410"):
            api.down()
            self.down_until, self.compact_on_up = now + r.randrange(15, 100), fault == "down-410"
        elif fault == "restart":
            api.restart()
        elif fault == "garbage":
            api.send_garbage()
        elif fault == "fail":
            api.fail_next(r.randrange(1, 4), r.choice([429, 500, 503]), retry_after=r.choice([None, 0.3]))
            api.cut_watches()
        elif fault == "slow":
            api.set_latency(r.uniform(0.05, 0.3))
            self.undo.append((now + r.randrange(40, 120), lambda: api.set_latency(0)))
        elif fault == "hang":
            api.hang_next(1, watch=r.choice([True, False, None]))
            api.cut_watches()
            self.undo.append((now + r.randrange(25, 120), api.release_hung))

    def _up(self) -> None:
        if self.compact_on_up:
            self.api.compact()
        self.api.up()
        self.down_until = None

    def heal(self) -> None:
        if self.down_until is not None:
            self._up()
        for _, fn in self.undo:
            fn()
        self.undo.clear()
        self.api.set_latency(0)
        self.api.release_hung()


# Names the driver never touches: they must answer right through every fault.
FIXED = [
    o.namespace("kube-system"),
    o.service("kube-dns", "kube-system", ips=["10.96.0.10"], ports=[o.port("dns", 53, "UDP")]),
    o.headless("fixed", "kube-system", ports=[o.port("http", 80)]),
    o.endpoint_slice(
        "fixed-1",
        "fixed",
        "kube-system",
        endpoints=[o.endpoint("10.244.99.1", hostname="f-0"), o.endpoint("10.244.99.2")],
        ports=[o.port("http", 80)],
    ),
]
SENTINEL_NS = "zz-sentinel"
SENTINEL_IP = "10.255.0.1"


@pytest.fixture
def api() -> Iterator[ApiServer]:
    server = ApiServer(bookmark_interval=1.0)
    server.start()
    for obj in FIXED:
        server.add(obj)
    yield server
    server.stop()


def _quiesce(port: int, qs: list[oracle.Question]) -> dict[oracle.Question, oracle.Answer]:
    """Answers once they have stopped changing: the sentinel (written last, one object per kind)
    resolves, so every watch has delivered everything before it; then the slice hand-over hold
    passes; then two observations a moment apart agree."""
    sentinel = (f"sentinel.{SENTINEL_NS}.svc.cluster.local.", "A")
    want = oracle.Answer("NOERROR", frozenset({("A", SENTINEL_IP)}))
    deadline = time.monotonic() + QUIESCENCE_TIMEOUT
    while oracle.observe(port, [sentinel])[sentinel] != want:
        assert time.monotonic() < deadline, "the sentinel never resolved: kdns stopped following the API"
        time.sleep(0.05)
    time.sleep(HANDOVER_HOLD + 0.5)
    last = oracle.observe(port, qs)
    while True:
        time.sleep(0.5)
        now = oracle.observe(port, qs)
        if now == last:
            return now
        assert time.monotonic() < deadline, "answers never stopped changing"
        last = now


def test_soak(kdns: Callable[..., KdnsProcess], api: ApiServer) -> None:
    seed = int(os.environ.get("KDNS_SOAK_SEED") or random.randrange(1 << 32))
    print(f"soak seed {seed} (KDNS_SOAK_SEED={seed} reproduces the run)")
    rng = random.Random(seed)
    # A stray hang is given up after 3 s and backoff stays short, so the run ends on time.
    h = start(kdns, api, env={TIMING_ENV: "read_timeout=3,backoff_max=2"})
    h.wait(h.state(), "initial sync")
    fixed = {q: {a} for q, a in h.want(FIXED).items() if a.records}
    driver, faults = Driver(api, rng), Faults(api, rng)
    next_fault = rng.randrange(25, 120)
    with Prober(h.port, fixed) as prober:
        for now in range(WRITES):
            driver.step()
            faults.due(now)
            if now >= next_fault:
                faults.step(now)
                next_fault = now + rng.randrange(25, 120)
            time.sleep(rng.uniform(0.002, 0.015))
        faults.heal()
        for _ in range(WRITES // 8):  # a calm tail: the final state arrives as events, not in a re-list
            driver.step()
            time.sleep(rng.uniform(0.002, 0.015))
        for obj in (
            o.namespace(SENTINEL_NS),
            o.headless("sentinel", SENTINEL_NS),
            o.endpoint_slice("sentinel-1", "sentinel", SENTINEL_NS, endpoints=[o.endpoint(SENTINEL_IP)]),
        ):
            api.apply(obj)
            driver.written.append(obj)
        final = [x for kind in KINDS for x in api.objects(kind)]
        qs = oracle.questions([*FIXED, *driver.written, *final])
        got = _quiesce(h.port, qs)
    print(f"ops {sum(driver.ops.values())} {driver.ops}")
    print(f"faults {sum(faults.done.values())} {faults.done}; prober rounds {prober.rounds}")
    print(f"objects at the end: {len(final)}; questions: {len(qs)}")
    diffs = oracle.differences(got, oracle.expected(final, qs))
    assert not diffs, f"seed {seed}: {len(diffs)} answers differ from the API's final state:\n" + "\n".join(
        diffs[:40]
    )
    prober.assert_clean()
