"""autopath: what it saves a Pod resolving an external name, and what its Pod-address map costs.

    python -m bench.autopath [--lookups 300] [--pods 100000] [--workdir /tmp/kdns-autopath]

Run as root: the script re-executes itself in new mount and network namespaces (`unshare -mn`), so
that a real stub resolver — glibc's getaddrinfo, in this process — reads a Pod's resolv.conf
(kind's: `search default.svc.cluster.local svc.cluster.local cluster.local`, `options ndots:5`,
bind-mounted over /etc/resolv.conf) and asks kdns on 127.0.0.1:53 of a loopback nobody else uses.
The Pod's address is 127.0.0.1, declared in `default` to kdns (`kubernetes { manifests …; pods
verified }`), so kdns sees the resolver as that Pod. A fake upstream (tests/support/upstream.py)
answers `www.example.com`.

For kind's Corefile with and without `autopath @kubernetes` it reports, per lookup of
`www.example.com` (AF_INET: A only; AF_UNSPEC: A and AAAA, as most programs ask) and of the
Service `web` (a cluster name found at the first search element): the queries that reached kdns
(coredns_dns_requests_total), those that reached the upstream, and the lookup's latency (median, p90).
Then, outside the namespaces, the memory of the Pod-address map for `--pods` Pods (tracemalloc),
next to what the index already holds for `pods verified`.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from pathlib import Path

from bench.servers import ROOT, start_kdns
from kdns.k8s.index import ClusterIndex
from kdns.k8s.models import Kind, Pod
from kdns.k8s.podips import PodAddresses
from tests.support.upstream import FakeUpstream

NAMESPACE_ENV = "KDNS_BENCH_AUTOPATH_NS"
POD_RESOLV_CONF = "nameserver 127.0.0.1\nsearch default.svc.cluster.local svc.cluster.local cluster.local\n" \
                  "options ndots:5\n"  # fmt: skip
MANIFESTS = """\
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: default}}
- apiVersion: v1
  kind: Service
  metadata: {name: web, namespace: default}
  spec: {clusterIP: 10.96.0.20, clusterIPs: [10.96.0.20], ports: [{name: http, port: 80}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: client, namespace: default}
  status: {phase: Running, podIP: 127.0.0.1, podIPs: [{ip: 127.0.0.1}]}
"""
METRICS_PORT = 9153
UPSTREAM_PORT = 5300


def corefile(autopath: bool, manifests: Path) -> str:
    """kind's Corefile (tests/support/kind.py) with `pods verified`, manifests, a loopback upstream."""
    return f""".:53 {{
    errors
    {"autopath @kubernetes" if autopath else ""}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
       pods verified
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
       manifests {manifests}
    }}
    prometheus 127.0.0.1:{METRICS_PORT}
    forward . 127.0.0.1:{UPSTREAM_PORT} {{
       max_concurrent 1000
    }}
    cache 30 {{
       disable success cluster.local
       disable denial cluster.local
    }}
    loadbalance
}}
"""


def requests_total() -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5) as r:
        body = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith("coredns_dns_requests_total{"))  # fmt: skip


def measure(name: str, family: int, lookups: int, upstream: FakeUpstream) -> dict[str, float]:
    for _ in range(3):  # warm: the forward connection, the cache of the bare name
        socket.getaddrinfo(name, 80, family, socket.SOCK_STREAM)
    queries, sent = requests_total(), len(upstream.seen())
    times = []
    for _ in range(lookups):
        start = time.perf_counter()
        socket.getaddrinfo(name, 80, family, socket.SOCK_STREAM)
        times.append(time.perf_counter() - start)
    times.sort()
    return {
        "queries": (requests_total() - queries) / lookups,
        "upstream": (len(upstream.seen()) - sent) / lookups,
        "p50_ms": statistics.median(times) * 1000,
        "p90_ms": times[int(len(times) * 0.9)] * 1000,
    }


def inside(lookups: int, workdir: Path) -> None:
    """In the namespaces: the resolver runs, kdns answers."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    resolv = workdir / "pod-resolv.conf"
    resolv.write_text(POD_RESOLV_CONF)
    subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)
    manifests = workdir / "cluster.yaml"
    manifests.write_text(MANIFESTS)
    rows = []
    with FakeUpstream(port=UPSTREAM_PORT) as upstream:
        upstream.add("www.example.com.", "A", "192.0.2.80", ttl=300)
        for autopath in (False, True):
            kdns = start_kdns(workdir, corefile(autopath, manifests), None, f"kdns-autopath-{autopath}")
            try:
                _wait_listening(kdns.check_alive)
                for name, family, label in (("www.example.com", socket.AF_INET, "AF_INET"),
                                            ("www.example.com", socket.AF_UNSPEC, "AF_UNSPEC"),
                                            ("web", socket.AF_INET, "AF_INET")):  # fmt: skip
                    rows.append((autopath, name, label, measure(name, family, lookups, upstream)))
            finally:
                kdns.stop()
    print(f"{'autopath':9} {'name':16} {'family':10} {'queries':>8} {'upstream':>9} "
          f"{'p50 ms':>8} {'p90 ms':>8}")  # fmt: skip
    for autopath, name, label, m in rows:
        print(f"{'with' if autopath else 'without':9} {name:16} {label:10} {m['queries']:8.2f} "
              f"{m['upstream']:9.2f} {m['p50_ms']:8.3f} {m['p90_ms']:8.3f}")  # fmt: skip


def _wait_listening(check_alive: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check_alive()  # type: ignore[operator]
        try:
            requests_total()
            with socket.create_connection(("127.0.0.1", 53), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("kdns did not start")


def pods_memory(count: int, namespaces: int = 500) -> None:
    """tracemalloc of the Pod-address map for `count` Pods, and of the index's own Pod data."""
    names = [sys.intern(f"ns-{i}") for i in range(namespaces)]
    pods = [Pod(names[i % namespaces], f"pod-{i}", f"10.{244 + i // 65536}.{i // 256 % 256}.{i % 256}", False)
            for i in range(count)]  # fmt: skip
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    addresses = PodAddresses()
    addresses.replace(pods)
    mapped = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(base, "filename"))
    base = tracemalloc.take_snapshot()
    index = ClusterIndex(required=[Kind.POD])
    index.replace(Kind.POD, pods)
    held = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(base, "filename"))
    tracemalloc.stop()
    print(f"\nPod-address map, {count} Pods in {namespaces} namespaces: {mapped / 2**20:.1f} MiB "
          f"({mapped / count:.0f} B/Pod, {len(addresses)} addresses); the index's Pod data for "
          f"`pods verified` (Pod models kept by key and the (namespace, IP) map, the models themselves "
          f"not counted): {held / 2**20:.1f} MiB")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lookups", type=int, default=300)
    parser.add_argument("--pods", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/kdns-autopath"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    if os.environ.get(NAMESPACE_ENV):
        inside(args.lookups, args.workdir)
        return
    if os.geteuid() != 0:
        sys.exit("run as root: the resolver runs in its own mount and network namespaces")
    env = {**os.environ, NAMESPACE_ENV: "1", "PYTHONPATH": str(ROOT)}
    argv = ["unshare", "--mount", "--net", "--fork", sys.executable, "-m", "bench.autopath",
            "--lookups", str(args.lookups), "--workdir", str(args.workdir)]  # fmt: skip
    subprocess.run(argv, check=True, env=env, cwd=ROOT)
    pods_memory(args.pods)


if __name__ == "__main__":
    main()
