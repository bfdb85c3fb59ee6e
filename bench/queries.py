"""A dnsperf query file shaped like Pod traffic against the generated cluster (issue #4's mix).

90% of questions name something that exists (NOERROR): A 70%, AAAA 10%, SRV 10%. AAAA goes to
the same names as A, as a stub resolver sends both, so in this mostly single-stack cluster most
AAAA answers are NODATA. 10% are NXDOMAIN, and they are what a Pod's resolver really sends that
fails: search-path expansions (kubelet writes `search <ns>.svc.cluster.local svc.cluster.local
cluster.local` with `ndots:5`, so `web.default.svc` is first tried as
`web.default.svc.<ns>.svc.cluster.local`), A or AAAA in the same 7:1 proportion.

Names are drawn uniformly (no popular few), the hard case for any cache.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from bench.gen import EXTERNAL_DOMAINS, ZONE, Cluster, Svc

MIX = (("A", 70), ("AAAA", 10), ("SRV", 10), ("NXDOMAIN", 10))
ENDPOINT_SHARE = 0.10  # of A/AAAA hits, the share asking for a StatefulSet pod (`web-0.web.ns.svc…`)


def query_lines(cluster: Cluster, count: int, seed: int) -> Iterator[tuple[str, str]]:
    """`count` (name, qtype) pairs in dnsperf's order; the same seed gives the same file."""
    rng = random.Random(seed ^ 0x5EED)
    services = cluster.services
    pods = [f"{p.hostname}.{s.fqdn}" for s in services for p in s.pods if p.hostname and p.ready]
    ports = [f"_{p.name}._{p.protocol.lower()}.{s.fqdn}" for s in services for p in s.ports if p.name]
    misses = _miss_shapes(cluster)

    def address_name() -> str:
        if pods and rng.random() < ENDPOINT_SHARE:
            return rng.choice(pods)
        return rng.choice(services).fqdn

    kinds = rng.choices([k for k, _ in MIX], [w for _, w in MIX], k=count)
    for kind in kinds:
        if kind in ("A", "AAAA"):
            yield address_name(), kind
        elif kind == "SRV":
            yield rng.choice(ports), "SRV"
        else:
            yield rng.choice(misses)(rng), "A" if rng.random() < 7 / 8 else "AAAA"


def _miss_shapes(cluster: Cluster) -> list[Callable[[random.Random], str]]:
    """Search-path expansions that are NXDOMAIN by construction: the asking Pod's namespace differs
    from the Service's, and no Service is named like a namespace or `svc`/`local`."""
    services = list(cluster.services)
    namespaces = cluster.namespaces

    def pick(rng: random.Random) -> tuple[Svc, str]:
        svc = rng.choice(services)
        others = [n for n in namespaces if n != svc.namespace] or ["nowhere"]
        return svc, rng.choice(others)

    def short(rng: random.Random) -> str:  # `web` typed in the wrong namespace
        svc, ns = pick(rng)
        return f"{svc.name}.{ns}.svc.{ZONE}"

    def dotted(rng: random.Random) -> str:  # `web.default` → first search domain
        svc, ns = pick(rng)
        return f"{svc.name}.{svc.namespace}.{ns}.svc.{ZONE}"

    def with_svc(rng: random.Random) -> str:  # `web.default.svc` → first search domain
        svc, ns = pick(rng)
        return f"{svc.name}.{svc.namespace}.svc.{ns}.svc.{ZONE}"

    def full(rng: random.Random) -> str:  # the full name has 4 dots < ndots:5: all 3 search domains first
        svc, ns = pick(rng)
        return rng.choice((f"{svc.fqdn}.{ns}.svc.{ZONE}", f"{svc.fqdn}.svc.{ZONE}", f"{svc.fqdn}.{ZONE}"))

    def external(rng: random.Random) -> str:  # `www.example.com` from a Pod, first search domain
        _, ns = pick(rng)
        return f"www.{rng.choice(EXTERNAL_DOMAINS)}.{ns}.svc.{ZONE}"

    return [short, dotted, with_svc, full, external]
