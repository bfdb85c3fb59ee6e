"""Seeded cluster data for the benchmark: one set of Services, written twice.

(a) as Kubernetes objects (JSON `kind: List` files) that kdns serves through the kubernetes plugin's
`manifests PATH…` option, or that the test API server preloads; (b) as an RFC 1035 zone of the same
records for knotd, so both servers answer the same questions from the same data.

The zone is derived here from the generated model, independently of kdns's own record code, by the
rules of docs/dns-contract.md §3–§5 and §14 (SRV weights): tests/bench/test_gen.py
checks both sides describe the same records, and bench/run.py checks live answers agree.

Default size is the memory target of issue #4: 10k Services and 100k endpoints.

    python -m bench.gen --preset full --seed 1 --out /tmp/kdns-bench
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdns.k8s.records import dashed_ip

ZONE = "cluster.local"
TTL = 30  # kind's Corefile sets `ttl 30`; the SOA minimum and the RR TTLs use it alike
DNS_VERSION_TTL = 28800  # docs/dns-contract.md §6: dns-version.<zone> TXT always has TTL 28800
SOA_SERIAL, SOA_REFRESH, SOA_RETRY, SOA_EXPIRE = 1, 7200, 1800, 86400  # CoreDNS's SOA timers (§15)
SLICE_MAX = 100  # the EndpointSlice controller's default --max-endpoints-per-slice
SRV_WEIGHT_TOTAL = 100  # CoreDNS weighs SRV records out of 100 (§14)

CLUSTER_NET4 = ipaddress.IPv4Address("10.96.0.10")
CLUSTER_NET6 = ipaddress.IPv6Address("fd00:10:96::a")
POD_NET4 = ipaddress.IPv4Address("10.244.0.2")
POD_NET6 = ipaddress.IPv6Address("fd00:10:244::2")

WORDS = (
    "api",
    "web",
    "db",
    "cache",
    "auth",
    "search",
    "queue",
    "billing",
    "cart",
    "users",
    "orders",
    "media",
    "report",
    "gateway",
    "notify",
    "ledger",
    "stream",
    "ingest",
    "etl",
    "admin",
)
# (name, protocol, port, targetPort): port numbers distinct, so no two SRVs of a Service collapse.
PORTS = (
    ("http", "TCP", 80, 8080),
    ("https", "TCP", 443, 8443),
    ("grpc", "TCP", 9090, 9090),
    ("metrics", "TCP", 9100, 9100),
    ("dns", "UDP", 53, 5353),
    ("redis", "TCP", 6379, 6379),
    ("postgres", "TCP", 5432, 5432),
)
EXTERNAL_DOMAINS = ("example.com", "example.net", "example.org")


@dataclass(frozen=True)
class Preset:
    services: int
    endpoints: int
    namespaces: int
    queries: int
    headless: int = 20  # percent of Services that are headless


PRESETS = {
    "full": Preset(10_000, 100_000, 100, 200_000),  # issue #4's memory target
    "issue12": Preset(10_000, 23_000, 10, 200_000, headless=10),  # issue #12's cluster (bench/churn.py)
    "small": Preset(1_000, 10_000, 20, 50_000),  # quick runs
    "tiny": Preset(40, 200, 4, 400),  # unit tests
}


@dataclass(frozen=True)
class Port:
    name: str  # "" for the single unnamed port a Service may have
    protocol: str  # TCP | UDP
    port: int
    target_port: int


@dataclass(frozen=True)
class Pod:
    name: str
    ip4: str | None
    ip6: str | None
    hostname: str | None
    ready: bool


@dataclass(frozen=True)
class Svc:
    namespace: str
    name: str
    type: str  # ClusterIP | NodePort | ExternalName; headless is ClusterIP with no cluster IPs
    headless: bool
    cluster_ips: tuple[str, ...]
    external_name: str
    ports: tuple[Port, ...]
    pods: tuple[Pod, ...]

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{self.namespace}.svc.{ZONE}"

    @property
    def families(self) -> tuple[str, ...]:
        """Address families of the Service's pods (IPv4, and IPv6 when dual-stack)."""
        if not self.pods:
            return ("IPv4",)
        return tuple(f for f, present in (("IPv4", self.pods[0].ip4), ("IPv6", self.pods[0].ip6)) if present)


@dataclass(frozen=True)
class Cluster:
    namespaces: tuple[str, ...]
    services: tuple[Svc, ...]


# --- the model ------------------------------------------------------------------------------------


def generate(services: int, endpoints: int, namespaces: int, seed: int, headless: int = 20) -> Cluster:
    """`services` Services over `namespaces` namespaces holding `endpoints` endpoint entries in all.

    Mix: 72% ClusterIP, 3% NodePort, 20% headless (StatefulSet-like: 1–6 pods, 60% with hostnames),
    5% ExternalName (half pointing into the cluster zone); `headless` (percent) moves share between
    headless and ClusterIP (the default keeps the mix above, and so every existing seed's data).
    10% of the IP Services are dual-stack (each pod then counts twice, once per slice). 3% of
    endpoints are not ready (never the first pod of a headless Service, so every headless name
    exists). ClusterIP Services share the endpoints left after headless ones by a heavy-tailed
    (Pareto) weight, as real clusters do.
    """
    rng = random.Random(seed)
    ns_names = tuple(["default"] + [f"ns-{i:03d}" for i in range(1, namespaces)])
    mix = (92 - headless, 3, headless, 5)
    kinds = rng.choices(("ClusterIP", "NodePort", "Headless", "ExternalName"), mix, k=services)
    for i in range(min(services, len(ns_names))):  # every namespace holds an IP Service (its name exists)
        kinds[i] = "ClusterIP"
    dual = [k != "ExternalName" and rng.random() < 0.10 for k in kinds]
    headless_pods = [rng.randint(1, 6) if k == "Headless" else 0 for k in kinds]
    families = [2 if d else 1 for d in dual]
    budget = max(0, endpoints - sum(n * f for n, f in zip(headless_pods, families, strict=True)))
    clusterip = [i for i, k in enumerate(kinds) if k in ("ClusterIP", "NodePort")]
    weights = [min(rng.paretovariate(1.5), 50.0) / families[i] for i in clusterip]
    pods_per = list(headless_pods)
    for i, n in zip(clusterip, _share(budget, weights, rng, [families[i] for i in clusterip]), strict=True):
        pods_per[i] = n

    ip4 = _addresses(POD_NET4)
    ip6 = _addresses(POD_NET6)
    cip4 = _addresses(CLUSTER_NET4)
    cip6 = _addresses(CLUSTER_NET6)
    out: list[Svc] = []
    for i, kind in enumerate(kinds):
        ns = ns_names[i % len(ns_names)]
        name = f"{rng.choice(WORDS)}-{i}"
        if kind == "ExternalName":
            out.append(Svc(ns, name, "ExternalName", False, (), "", (), ()))
            continue
        headless = kind == "Headless"
        ports = _ports(rng, 2 if headless else 3)
        with_hostnames = headless and rng.random() < 0.6
        pods = tuple(
            Pod(
                name=f"{name}-{j}" if with_hostnames else f"{name}-{rng.getrandbits(40):010x}",
                ip4=next(ip4),
                ip6=next(ip6) if dual[i] else None,
                hostname=f"{name}-{j}" if with_hostnames else None,
                ready=(headless and j == 0) or rng.random() >= 0.03,
            )
            for j in range(pods_per[i])
        )
        cluster_ips = () if headless else (next(cip4), *((next(cip6),) if dual[i] else ()))
        out.append(Svc(ns, name, "ClusterIP" if headless else kind, headless, cluster_ips, "", ports, pods))
    targets = [s for s in out if s.cluster_ips]
    for i, svc in enumerate(out):
        if svc.type == "ExternalName":
            if targets and rng.random() < 0.5:
                target = rng.choice(targets).fqdn
            else:
                target = f"{svc.name}.{rng.choice(EXTERNAL_DOMAINS)}"
            out[i] = Svc(svc.namespace, svc.name, svc.type, False, (), target, (), ())
    return Cluster(ns_names, tuple(out))


def _share(total: int, weights: list[float], rng: random.Random, units: list[int]) -> list[int]:
    """Split `total` endpoint entries by weight; a service of `units` families takes `units` per pod."""
    if not weights:
        return []
    scale = total / sum(w * u for w, u in zip(weights, units, strict=True))
    counts = [int(w * scale) for w in weights]
    left = total - sum(c * u for c, u in zip(counts, units, strict=True))
    while left > 0:
        i = rng.randrange(len(counts))
        if units[i] <= left:
            counts[i] += 1
            left -= units[i]
        elif min(units) > left:
            break
    return counts


def _addresses(first: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Iterator[str]:
    n = 0
    while True:
        yield str(first + n)
        n += 1


def _ports(rng: random.Random, most: int) -> tuple[Port, ...]:
    count = rng.choices(range(1, most + 1), (60, 30, 10)[:most])[0]
    picked = rng.sample(PORTS, count)
    if count == 1 and rng.random() < 0.25:  # Kubernetes allows one unnamed port
        picked = [("", *picked[0][1:])]
    return tuple(Port(n, proto, port, target) for n, proto, port, target in picked)


# --- (a) Kubernetes objects -----------------------------------------------------------------------


def objects(cluster: Cluster) -> dict[str, list[dict[str, Any]]]:
    """API objects by kind: what `kubectl get -o json` would show (fields DNS reads, and a few more)."""
    services: list[dict[str, Any]] = []
    slices: list[dict[str, Any]] = []
    for svc in cluster.services:
        services.append(_service_object(svc))
        slices.extend(_slice_objects(svc))
    namespaces = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in cluster.namespaces
    ]
    return {"Namespace": namespaces, "Service": services, "EndpointSlice": slices}


def _service_object(svc: Svc) -> dict[str, Any]:
    meta = {"name": svc.name, "namespace": svc.namespace}
    if svc.type == "ExternalName":
        spec: dict[str, Any] = {"type": "ExternalName", "externalName": svc.external_name}
        return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}
    ips = list(svc.cluster_ips) or ["None"]
    spec = {
        "type": svc.type,
        "clusterIP": ips[0],
        "clusterIPs": ips,
        "ipFamilies": list(svc.families),
        "ipFamilyPolicy": "PreferDualStack" if len(svc.families) > 1 else "SingleStack",
        "selector": {"app": svc.name},
        "ports": [
            {
                **({"name": p.name} if p.name else {}),
                "protocol": p.protocol,
                "port": p.port,
                "targetPort": p.target_port,
            }
            for p in svc.ports
        ],
    }
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


def _slice_objects(svc: Svc) -> Iterator[dict[str, Any]]:
    """One slice per family per SLICE_MAX pods, named as the controller names them (<svc>-<5 chars>)."""
    if svc.type == "ExternalName" or not svc.pods:
        return
    ports = [{"name": p.name, "protocol": p.protocol, "port": p.target_port} for p in svc.ports]
    for family in svc.families:
        for start in range(0, len(svc.pods), SLICE_MAX):
            chunk = svc.pods[start : start + SLICE_MAX]
            endpoints = []
            for pod in chunk:
                ep: dict[str, Any] = {
                    "addresses": [pod.ip4 if family == "IPv4" else pod.ip6],
                    "conditions": {"ready": pod.ready, "serving": pod.ready, "terminating": False},
                    "targetRef": {"kind": "Pod", "name": pod.name, "namespace": svc.namespace},
                }
                if pod.hostname:
                    ep["hostname"] = pod.hostname
                endpoints.append(ep)
            yield {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{svc.name}-{family[-2:].lower()}{start // SLICE_MAX:03d}",
                    "namespace": svc.namespace,
                    "labels": {
                        "kubernetes.io/service-name": svc.name,
                        "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                    },
                },
                "addressType": family,
                "ports": ports,
                "endpoints": endpoints,
            }


# --- (b) the zone ---------------------------------------------------------------------------------

Record = tuple[str, int, str, str]  # (absolute owner with trailing dot, ttl, type, rdata text)


def records(cluster: Cluster) -> Iterator[Record]:
    """Every record kdns serves for `cluster` under ZONE, by the spec's rules (not kdns's code)."""
    apex = f"{ZONE}."
    soa = f"ns.dns.{apex} hostmaster.{apex} {SOA_SERIAL} {SOA_REFRESH} {SOA_RETRY} {SOA_EXPIRE} {TTL}"
    yield (apex, TTL, "SOA", soa)
    yield (apex, TTL, "NS", f"ns.dns.{apex}")
    yield (f"dns-version.{apex}", DNS_VERSION_TTL, "TXT", '"1.1.0"')
    for svc in cluster.services:
        yield from _service_records(svc)


def _service_records(svc: Svc) -> Iterator[Record]:
    owner = f"{svc.fqdn}."
    if svc.type == "ExternalName":  # §5: a CNAME, nothing below it
        yield (owner, TTL, "CNAME", f"{svc.external_name}.")
        return
    ready = [p for p in svc.pods if p.ready]
    labelled: dict[str, list[str]] = {}  # endpoint label → addresses (§1: hostname, else dashed IP)
    for pod in ready:
        for ip in (pod.ip4, pod.ip6):
            if ip:
                labelled.setdefault(pod.hostname or dashed_ip(ip), []).append(ip)
    for label, ips in labelled.items():
        yield from _address_records(f"{label}.{owner}", ips)
    if svc.headless:  # §4: the endpoints' addresses; SRV to each endpoint on the slice (target) ports
        yield from _address_records(owner, [ip for pod in ready for ip in (pod.ip4, pod.ip6) if ip])
        labels = [pod.hostname or dashed_ip(ip) for pod in ready for ip in (pod.ip4, pod.ip6) if ip]
        candidates = [(p, p.target_port, f"{label}.{owner}") for p in svc.ports for label in labels]
    else:  # §3: the cluster IPs; SRV to the Service name on the Service ports, one per IP family
        yield from _address_records(owner, list(svc.cluster_ips))
        candidates = [(p, p.port, owner) for p in svc.ports for _ in svc.cluster_ips]
    yield from _srv_records(owner, [(n, t) for _, n, t in candidates])  # at the bare name (§13)
    for p in svc.ports:
        if p.name:
            named = [(n, t) for q, n, t in candidates if q == p]
            yield from _srv_records(f"_{p.name}._{p.protocol.lower()}.{owner}", named)


def _address_records(owner: str, ips: list[str]) -> Iterator[Record]:
    for ip in dict.fromkeys(ips):
        yield (owner, TTL, "AAAA" if ":" in ip else "A", ip)


def _srv_records(owner: str, candidates: list[tuple[int, str]]) -> Iterator[Record]:
    """§14: weight floor(100/candidates), at least 1, counted before duplicates are dropped."""
    if not candidates:
        return
    weight = max(1, SRV_WEIGHT_TOTAL // len(candidates))
    for port, target in dict.fromkeys(candidates):
        yield (owner, TTL, "SRV", f"0 {weight} {port} {target}")


def zone_text(cluster: Cluster) -> str:
    lines = [
        f"; generated by bench/gen.py: {len(cluster.services)} Services",
        f"$ORIGIN {ZONE}.",
        f"$TTL {TTL}",
    ]
    lines.extend(f"{owner} {ttl} IN {rtype} {rdata}" for owner, ttl, rtype, rdata in records(cluster))
    return "\n".join(lines) + "\n"


# --- forwarded names (the warm-cache figure) -----------------------------------------------------

FORWARD_ZONE = "fwd.test"  # RFC 6761 §6.2: .test is never delegated, so nothing leaves the machine
FORWARD_TTL = 3600


def forward_zone_text(names: int) -> str:
    """An upstream zone of `names` A records (no AAAA: those questions are cached NODATA)."""
    apex = f"{FORWARD_ZONE}."
    lines = [
        f"$ORIGIN {apex}",
        f"$TTL {FORWARD_TTL}",
        f"@ SOA ns.{apex} hostmaster.{apex} 1 7200 1800 86400 {FORWARD_TTL}",
        f"@ NS ns.{apex}",
        "ns A 127.0.0.1",
    ]
    lines.extend(f"host-{i} A 10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}" for i in range(names))
    return "\n".join(lines) + "\n"


def forward_questions(names: int) -> list[tuple[str, str]]:
    """Each forwarded name once as A and once as AAAA, as a stub resolver asks."""
    return [(f"host-{i}.{FORWARD_ZONE}", qtype) for i in range(names) for qtype in ("A", "AAAA")]


# --- files ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Written:
    manifests: Path  # a directory of JSON List files, one per kind
    zone: Path
    queries: Path
    forward_zone: Path
    forward_queries: Path


FORWARD_NAMES = 2000  # well under the cache's default capacity (CoreDNS: 9984 per kind of entry)


def write(cluster: Cluster, out: Path, queries: int, seed: int) -> Written:
    """Write manifests/, cluster.local.zone and queries.txt (plus the forward zone and its
    questions) under `out`."""
    from bench.queries import query_lines  # the query mix lives in its own module

    manifests = out / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    for kind, items in objects(cluster).items():
        doc = {"apiVersion": "v1", "kind": "List", "items": items}
        (manifests / f"{kind.lower()}s.json").write_text(json.dumps(doc, separators=(",", ":")))
    zone = out / f"{ZONE}.zone"
    zone.write_text(zone_text(cluster))
    qfile = out / "queries.txt"
    qfile.write_text("".join(f"{name} {qtype}\n" for name, qtype in query_lines(cluster, queries, seed)))
    fzone = out / f"{FORWARD_ZONE}.zone"
    fzone.write_text(forward_zone_text(FORWARD_NAMES))
    fqueries = out / "forward-queries.txt"
    fqueries.write_text("".join(f"{name} {qtype}\n" for name, qtype in forward_questions(FORWARD_NAMES)))
    return Written(manifests, zone, qfile, fzone, fqueries)


def cluster_for(preset: str, seed: int) -> Cluster:
    p = PRESETS[preset]
    return generate(p.services, p.endpoints, p.namespaces, seed, p.headless)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gen", description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="full")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    cluster = cluster_for(args.preset, args.seed)
    w = write(cluster, args.out, PRESETS[args.preset].queries, args.seed)
    print(f"wrote {w.manifests}/, {w.zone}, {w.queries}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
