"""kdns as kubelet would run the `coredns` container of deploy/coredns.yaml, and the node around it.

Layout (all made by the test, removed after it):

    node netns                                   pod netns (runc joins it)
      169.254.53.1 veth-pod  <--- veth --->  eth0 169.254.53.2
      fake upstream resolver :53                  kdns :53 udp/tcp, :8080, :8181, :9153
      test client (probes, queries)               test API server 127.0.0.1:6443 (TLS, token)

kdns reads /etc/resolv.conf (`nameserver 169.254.53.1`, the node's resolver, as dnsPolicy Default
gives it) and the API from KUBERNETES_SERVICE_HOST/PORT with the service-account token and CA mounted
at /var/run/secrets/kubernetes.io/serviceaccount. The API server sits on the pod's loopback because
the test API server's certificate names 127.0.0.1; for kdns the path is the same as through a
Service IP: an address from the environment, TLS verified against the mounted CA, a bearer token.
Port 53 is bound inside the pod netns, whose net.ipv4.ip_unprivileged_port_start stays 1024, so the
bind works only through the NET_BIND_SERVICE file capability.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import dns.exception
import dns.message
import yaml

from tests.rehearsal.image import Image
from tests.rehearsal.netns import NetNs, veth
from tests.rehearsal.runc import Container, Mount, kubelet_spec
from tests.rehearsal.volumes import AtomicVolume
from tests.support import apiserver as api
from tests.support import http
from tests.support import objects as o
from tests.support.dnsclient import ask
from tests.support.upstream import FakeUpstream

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy" / "coredns.yaml"
NODE_IP, POD_IP = "169.254.53.1", "169.254.53.2"  # link-local, only inside the two namespaces
API_PORT = 6443
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
POD_NAME = "coredns-5d78c9869d-rh3sl"
WAIT = 60.0  # generous: the machine is shared; CoreDNS's own startup wait for the API is 5s


def manifest_objects() -> dict[str, dict[str, Any]]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in yaml.safe_load_all(MANIFEST.read_text())}


def kind_corefile() -> str:
    """kind's default Corefile, exactly as the ConfigMap in deploy/coredns.yaml carries it."""
    return str(manifest_objects()["ConfigMap/coredns"]["data"]["Corefile"])


def eventually(fn: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    """Poll fn until it returns something other than None; a refused or timed-out query counts as not yet."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            value = fn()
        except (OSError, dns.exception.DNSException) as e:
            value, last = None, e
        if value is not None:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not seen within {timeout:.0f}s (last error: {last!r})")


def cluster_objects() -> list[dict[str, Any]]:
    """What a fresh kind cluster's API holds for DNS: the kubernetes and kube-dns Services, kdns's Pod."""
    kube_dns = manifest_objects()["Service/kube-dns"]
    dns_ports = [o.port(p["name"], p["port"], p["protocol"]) for p in kube_dns["spec"]["ports"]]
    return [
        o.namespace("default"),
        o.namespace("kube-system"),
        o.service("kubernetes", "default", ips=("10.96.0.1",), ports=[o.port("https", 443)]),
        o.endpoint_slice(
            "kubernetes",
            "kubernetes",
            "default",
            endpoints=[o.endpoint(NODE_IP)],
            ports=[o.port("https", API_PORT)],
        ),
        kube_dns,
        o.endpoint_slice(
            "kube-dns-rh3sl",
            "kube-dns",
            "kube-system",
            endpoints=[o.endpoint(POD_IP, pod=POD_NAME)],
            ports=dns_ports,
        ),
        o.pod(POD_NAME, POD_IP, "kube-system", labels={"k8s-app": "kube-dns"}),
    ]


class KindPod:
    """See the module docstring. start() brings everything up except the API server (start_api())."""

    def __init__(self, image: Image, workdir: Path, corefile: str | None = None) -> None:
        self.image = image
        self.workdir = workdir
        tag = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.node, self.pod = NetNs(f"kdns-node-{tag}"), NetNs(f"kdns-pod-{tag}")
        self.token = secrets.token_urlsafe(24)
        self.upstream: FakeUpstream | None = None
        (workdir / "apiserver").mkdir(parents=True, exist_ok=True)
        self.api = api.ApiServer(
            host="127.0.0.1", port=API_PORT, tls=True, tokens=[self.token], workdir=workdir / "apiserver"
        )
        self.api_started = False
        self.config = AtomicVolume(workdir / "volumes" / "config-volume")
        self.config.write({"Corefile": corefile if corefile is not None else kind_corefile()})
        self.container = Container(f"kdns-rehearsal-{tag}", workdir / "container", workdir / "runc")

    # --- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> KindPod:
        self.node.create()
        self.pod.create()
        veth(self.node, self.pod, NODE_IP, POD_IP)
        self.upstream = self.node.call(lambda: FakeUpstream(host=NODE_IP, port=53).start())
        self.container.start(self._spec())
        return self

    def _spec(self) -> dict[str, Any]:
        d = self.workdir
        assert self.api.ca_path is not None
        sa = AtomicVolume(d / "volumes" / "kube-api-access")
        sa.write({"token": self.token, "ca.crt": self.api.ca_path.read_bytes(), "namespace": "kube-system"})
        etc = d / "etc"
        etc.mkdir(exist_ok=True)
        (etc / "resolv.conf").write_text(f"nameserver {NODE_IP}\n")
        (etc / "hosts").write_text(f"127.0.0.1\tlocalhost\n::1\tlocalhost\n{POD_IP}\t{POD_NAME}\n")
        (etc / "hostname").write_text(f"{POD_NAME}\n")
        (etc / "termination-log").write_text("")
        for f in etc.iterdir():
            f.chmod(0o644)
        deployment = manifest_objects()["Deployment/coredns"]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        (config_mount,) = container["volumeMounts"]
        mounts = [
            Mount(config_mount["mountPath"], self.config.path, readonly=config_mount["readOnly"]),
            Mount(SA_DIR, sa.path),
            Mount("/etc/hosts", etc / "hosts"),
            Mount("/etc/hostname", etc / "hostname"),
            Mount("/etc/resolv.conf", etc / "resolv.conf"),
            Mount("/dev/termination-log", etc / "termination-log", readonly=False),
        ]
        env = [
            *self.image.config.get("Env", []),
            f"HOSTNAME={POD_NAME}",
            "KUBERNETES_SERVICE_HOST=127.0.0.1",
            f"KUBERNETES_SERVICE_PORT={API_PORT}",
            f"KUBERNETES_SERVICE_PORT_HTTPS={API_PORT}",
            f"KUBERNETES_PORT=tcp://127.0.0.1:{API_PORT}",
        ]
        return kubelet_spec(
            self.image, container, env=env, mounts=mounts, hostname=POD_NAME, netns=self.pod.path
        )

    def start_api(self) -> None:
        """The API server comes up (in the pod netns, see the module doc) with a kind cluster's objects."""
        if self.api_started:
            return
        self.pod.call(self.api.start)
        self.api_started = True
        for obj in cluster_objects():
            self.api.apply(obj)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.container.destroy()
        if self.api_started:
            with contextlib.suppress(Exception):
                self.api.stop()
        if self.upstream is not None:
            with contextlib.suppress(Exception):
                self.upstream.shutdown()
        self.pod.delete()
        self.node.delete()

    def until(self, fn: Callable[[], T | None], what: str, timeout: float = WAIT, interval: float = 0.5) -> T:
        """`eventually`, failing at once if kdns has exited; either failure shows kdns's log."""

        def check() -> T | None:
            if not self.container.running():
                code = self.container.proc.returncode if self.container.proc else None
                raise AssertionError(f"kdns exited ({code}) before {what}:\n{self.container.logs()}")
            return fn()

        try:
            return eventually(check, timeout, what, interval)
        except TimeoutError as e:
            raise AssertionError(f"{e}\n--- kdns log ---\n{self.container.logs()}") from None

    # --- what the node sees -------------------------------------------------------------------------

    def dns(self, name: str, rdtype: str = "A", *, tcp: bool = False) -> dns.message.Message:
        """One query to the pod IP :53 from the node."""
        return self.node.call(ask, 53, name, rdtype, tcp=tcp, host=POD_IP, timeout=5.0)

    def http(self, port: int, path: str) -> tuple[int | None, str]:
        """GET http://POD_IP:port/path from the node, as kubelet's probes do; status None if refused."""
        try:
            return self.node.call(http.get, f"http://{POD_IP}:{port}{path}")
        except OSError as e:
            return None, str(e)

    def scrape(self, port: int) -> tuple[dict[str, str], http.Samples]:
        """/metrics from the node: family name → type, and the samples."""
        return self.node.call(http.scrape, f"http://{POD_IP}:{port}/metrics")

    def http_ok(self, port: int, path: str) -> str | None:
        """The body when the GET answers 200, else None (for `eventually`)."""
        status, body = self.http(port, path)
        return body if status == 200 else None

    def edit_corefile(self, corefile: str) -> Path:
        """`kubectl edit cm coredns` as kubelet applies it: a new ..data directory, swapped atomically."""
        return self.config.write({"Corefile": corefile})
