"""The kind swap, rehearsed: the built image, run as kubelet runs kubeadm's coredns container.

What `kind load` + `kubectl set image deployment/coredns coredns=kdns:TAG` leaves unchanged is what
this test keeps: kind's Corefile from the ConfigMap (deploy/coredns.yaml), mounted read-only through
the `..data` symlink layout; the Deployment's args and securityContext (uid 65532 from the image,
only NET_BIND_SERVICE, no_new_privs, read-only root, 170Mi); the service-account token and CA; the
API address from KUBERNETES_SERVICE_HOST/PORT; port 53 in the pod's own network namespace. The probes
and queries come from the node side, to the pod IP. See tests/rehearsal/pod.py for the layout.

The tests share one running pod and run in file order: the readiness check must see the API down
first, and the SIGTERM check ends the pod.
"""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import dns.exception
import dns.flags
import pytest

from tests.rehearsal.image import Image, resolve_in
from tests.rehearsal.pod import WAIT, KindPod, eventually, manifest_objects
from tests.rehearsal.runc import Container, Mount, kubelet_spec
from tests.rehearsal.volumes import AtomicVolume
from tests.support.dnsclient import answer_texts, rcode

pytestmark = pytest.mark.slow  # builds the image (about a minute) and waits for reload (up to 45s)

CAP_NET_BIND_SERVICE = 10
MAX_IMAGE_BYTES = 120 * 1000**2  # uncompressed, MB as `docker images` counts them; CoreDNS's is ~60 MB
VFS_CAP_FLAGS_EFFECTIVE = 0x000001
KUBERNETES_A = "kubernetes.default.svc.cluster.local."
HEALTH, READY, METRICS = 8080, 8181, 9153


def file_caps(path: Path) -> tuple[int, bool]:
    """(permitted capability mask, effective flag) from the security.capability xattr (vfs_cap_data)."""
    raw = os.getxattr(path, "security.capability")
    magic, permitted_lo, _inh_lo, permitted_hi, _inh_hi = struct.unpack("<5I", raw[:20])
    return permitted_lo | (permitted_hi << 32), bool(magic & VFS_CAP_FLAGS_EFFECTIVE)


def interpreter(image: Image) -> str:
    """The file the kernel really executes for the ENTRYPOINT: the console script's shebang, resolved."""
    script = resolve_in(image.rootfs, image.config["Entrypoint"][0])
    shebang = script.read_text().splitlines()[0]
    assert shebang.startswith("#!"), shebang
    return "/" + str(resolve_in(image.rootfs, shebang[2:].split()[0]).relative_to(image.rootfs))


def listening(pid: int, port: int) -> set[str]:
    """Which of udp/tcp (v4 or v6) have a socket bound to `port` in pid's network namespace."""
    found = set()
    for proto in ("udp", "udp6", "tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and (proto.startswith("udp") or fields[3] == "0A"):  # 0A = LISTEN
                found.add(proto.rstrip("6"))
    return found


# --- the image --------------------------------------------------------------------------------------


def test_image_config_is_what_the_deployment_expects(kdns_image: Image) -> None:
    cfg = kdns_image.config
    assert cfg["User"] == "65532:65532"
    assert cfg["Cmd"] == ["-conf", "/etc/coredns/Corefile"]
    assert cfg.get("WorkingDir") == "/"
    assert "PYTHONDONTWRITEBYTECODE=1" in cfg["Env"]
    assert set(cfg["ExposedPorts"]) == {"53/udp", "53/tcp", "9153/tcp", "8080/tcp", "8181/tcp"}
    interp = interpreter(kdns_image)
    permitted, effective = file_caps(kdns_image.rootfs / interp.lstrip("/"))
    assert (permitted, effective) == (1 << CAP_NET_BIND_SERVICE, True), f"{interp}: not +ep NET_BIND_SERVICE"


def test_image_is_small(kdns_image: Image) -> None:
    """The image holds what runs and no more (deploy/rootfs.py); deploy/README.md reports the size."""
    size, stored = kdns_image.size(), kdns_image.stored_size()
    print(f"\nkdns image: {size / 1000**2:.1f} MB uncompressed, {stored / 1000**2:.1f} MB as stored")
    assert size <= MAX_IMAGE_BYTES, f"{size / 1000**2:.1f} MB > {MAX_IMAGE_BYTES / 1000**2:.0f} MB"
    site_packages = next((kdns_image.rootfs / "opt" / "kdns" / "lib").glob("python3*/site-packages"))
    assert (site_packages / "kdns").is_dir() and (site_packages / "uvloop").is_dir()
    for left_out in ("kubernetes", "pip", "setuptools"):  # the kubeconfig extra, the installers
        assert not (site_packages / left_out).exists(), f"{left_out} is in the image"
    for tool in ("bin/sh", "usr/bin/apt-get", "usr/bin/gcc", "usr/bin/pip3"):
        assert not (kdns_image.rootfs / tool).exists(), f"/{tool} is in the image"


def test_kubeconfig_needs_the_extra_the_image_leaves_out(kdns_image: Image, tmp_path: Path) -> None:
    """The image has no `kubernetes` package: a Corefile's `kubeconfig` is an error naming the extra."""
    corefile = (
        ".:53 {\n    kubernetes cluster.local {\n        kubeconfig /etc/coredns/kubeconfig\n    }\n}\n"
    )
    c = _run(kdns_image, tmp_path, {"Corefile": corefile, "kubeconfig": "apiVersion: v1\nkind: Config\n"})
    try:
        assert c.wait(WAIT) == 1, c.logs()
        logs = c.logs()
        assert "/etc/coredns/Corefile:2 - Error during parsing: 'kubernetes': kubeconfig" in logs, logs
        assert "pip install 'kdns[kubeconfig]'" in logs and "Traceback" not in logs, logs
    finally:
        c.destroy()


def _run(
    image: Image, workdir: Path, config_files: dict[str, str], *, strip_capability: bool = False
) -> Container:
    """kdns from the image with these files in /etc/coredns, optionally on a cap-less interpreter."""
    config = AtomicVolume(workdir / "config-volume")
    config.write(config_files)
    (container,) = manifest_objects()["Deployment/coredns"]["spec"]["template"]["spec"]["containers"]
    mounts = [Mount("/etc/coredns", config.path)]
    if strip_capability:
        interp = interpreter(image)
        plain = workdir / "python-without-file-capability"
        plain.write_bytes((image.rootfs / interp.lstrip("/")).read_bytes())  # a copy has no xattrs
        plain.chmod(0o755)
        mounts.append(Mount(interp, plain))
    spec = kubelet_spec(
        image, container, env=image.config["Env"], mounts=mounts, hostname="bind-check", netns=None
    )
    cid = f"kdns-{workdir.name}-{os.getpid()}"
    return Container(cid, workdir / "bundle", workdir / "runc").start(spec)


@pytest.mark.parametrize("strip_capability", [False, True], ids=["file-capability", "no-file-capability"])
def test_port_53_binds_only_through_the_file_capability(
    kdns_image: Image, tmp_path: Path, strip_capability: bool
) -> None:
    """Same uid and bounding set: with cap_net_bind_service=+ep on the interpreter :53 binds, else EACCES."""
    c = _run(kdns_image, tmp_path, {"Corefile": ".:53 {\n    whoami\n}\n"}, strip_capability=strip_capability)
    try:
        if strip_capability:
            assert c.wait(WAIT) != 0
            assert "Permission denied" in c.logs() or "Errno 13" in c.logs(), c.logs()
        else:
            eventually(lambda: listening(c.pid(), 53) == {"udp", "tcp"} or None, WAIT, ":53 bound")
            assert c.proc_status()["Uid"].split() == ["65532"] * 4
    finally:
        c.destroy()


# --- the pod ----------------------------------------------------------------------------------------


def test_kdns_runs_under_kubelets_restrictions(kind_pod: KindPod, kdns_image: Image) -> None:
    kind_pod.until(lambda: listening(kind_pod.container.pid(), 53) == {"udp", "tcp"} or None, "kdns on :53")
    st = kind_pod.container.proc_status()
    assert st["Uid"].split() == ["65532"] * 4 and st["Gid"].split() == ["65532"] * 4
    only_bind = f"{1 << CAP_NET_BIND_SERVICE:016x}"
    assert (st["CapBnd"], st["CapEff"], st["CapPrm"]) == (only_bind,) * 3
    assert (st["CapInh"], st["CapAmb"]) == ("0" * 16,) * 2
    assert st["NoNewPrivs"] == "1"
    pid = kind_pod.container.pid()
    assert os.readlink(f"/proc/{pid}/exe") == interpreter(kdns_image)  # the setcap'd binary is what runs
    mountinfo = Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    mounts = {f[4]: f[5].split(",") for f in (line.split() for line in mountinfo)}
    assert "ro" in mounts["/"] and "ro" in mounts["/etc/coredns"]
    # the namespace keeps the kernel default, so only the capability lets :53 bind
    assert int(kind_pod.pod.sysctl("net.ipv4.ip_unprivileged_port_start")) == 1024
    assert (
        os.stat(f"/proc/{pid}/ns/net").st_ino
        == os.stat(kind_pod.pod.path).st_ino
        != os.stat("/proc/self/ns/net").st_ino
    ), "kdns runs in the pod's own network namespace"


def test_health_ok_and_ready_503_until_the_api_is_synced(kind_pod: KindPod) -> None:
    assert not kind_pod.api_started, "this check must run before anything starts the API server"
    body = kind_pod.until(lambda: kind_pod.http_ok(HEALTH, "/health"), "/health 200")
    assert body == "OK"
    status, body = kind_pod.http(READY, "/ready")
    assert status == 503 and "kubernetes" in body, (status, body)
    assert rcode(kind_pod.dns(KUBERNETES_A)) == "SERVFAIL"  # cluster names wait for the first sync
    kind_pod.start_api()
    body = kind_pod.until(lambda: kind_pod.http_ok(READY, "/ready"), "/ready 200 after the API came up")
    assert body == "OK"
    calls = kind_pod.api.requests()
    assert calls, "kdns never reached the API server"
    assert all(r.headers.get("Authorization") == f"Bearer {kind_pod.token}" for r in calls)


def _synced(kind_pod: KindPod) -> None:
    kind_pod.start_api()
    kind_pod.until(lambda: rcode(kind_pod.dns(KUBERNETES_A)) == "NOERROR" or None, f"{KUBERNETES_A} answered")


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_cluster_names_answer_on_53(kind_pod: KindPod, tcp: bool) -> None:
    _synced(kind_pod)
    reply = kind_pod.dns(KUBERNETES_A, tcp=tcp)
    assert answer_texts(reply, "A") == ["10.96.0.1"]
    assert reply.answer[0].ttl == 30 and reply.flags & dns.flags.AA
    kube_dns = kind_pod.dns("kube-dns.kube-system.svc.cluster.local.", tcp=tcp)
    assert answer_texts(kube_dns, "A") == ["10.96.0.10"]
    assert answer_texts(kind_pod.dns("10.0.96.10.in-addr.arpa.", "PTR", tcp=tcp)) == [
        "kube-dns.kube-system.svc.cluster.local."
    ]
    assert answer_texts(kind_pod.dns("10-244-0-7.default.pod.cluster.local.", tcp=tcp)) == ["10.244.0.7"]
    assert rcode(kind_pod.dns("missing.default.svc.cluster.local.", tcp=tcp)) == "NXDOMAIN"


def test_other_names_go_to_the_nodes_resolver_and_are_cached(kind_pod: KindPod) -> None:
    _synced(kind_pod)
    assert kind_pod.upstream is not None
    kind_pod.upstream.add("www.example.org.", "A", "192.0.2.80", ttl=300)
    first = kind_pod.dns("www.example.org.")
    assert answer_texts(first, "A") == ["192.0.2.80"]
    assert first.answer[0].ttl <= 30  # cache 30 caps TTLs
    assert answer_texts(kind_pod.dns("www.example.org."), "A") == ["192.0.2.80"]
    assert len(kind_pod.upstream.seen("www.example.org.")) == 1, "the second answer comes from the cache"
    # loop's startup probe (HINFO for a random name) went through forward and came back once: no loop
    assert any(q.qtype == "HINFO" for q in kind_pod.upstream.seen())
    assert kind_pod.container.running()


def test_metrics_are_coredns_metrics(kind_pod: KindPod) -> None:
    _synced(kind_pod)
    families, samples = kind_pod.scrape(METRICS)
    for name in (
        "coredns_build_info",
        "coredns_dns_requests_total",
        "coredns_dns_responses_total",
        "coredns_dns_request_duration_seconds",
        "coredns_dns_request_size_bytes",
        "coredns_dns_response_size_bytes",
        "coredns_plugin_enabled",
        "coredns_cache_entries",
        "coredns_health_request_duration_seconds",
        "coredns_reload_version_info",
    ):
        assert name in families, f"{name} missing from /metrics"
    by_name = [(name, dict(labels), v) for (name, labels), v in samples.items()]
    enabled = {labels["name"] for name, labels, v in by_name if name == "coredns_plugin_enabled" and v}
    assert {"kubernetes", "forward", "cache", "loop", "loadbalance", "errors"} <= enabled, enabled
    servers = {labels.get("server") for name, labels, _ in by_name if name == "coredns_dns_requests_total"}
    assert servers == {"dns://:53"}, servers


def test_configmap_edit_is_picked_up_by_reload(kind_pod: KindPod) -> None:
    """kubelet swaps ..data; reload's poll (30s ± 15s) sees the new content and applies it live."""
    _synced(kind_pod)
    assert kind_pod.dns(KUBERNETES_A).answer[0].ttl == 30
    old = kind_pod.config.data_dir()
    corefile = (kind_pod.config.path / "Corefile").read_text()
    assert corefile.count("ttl 30") == 1
    new = kind_pod.edit_corefile(corefile.replace("ttl 30", "ttl 10"))
    assert old is not None and not old.exists() and new.exists()
    start = time.monotonic()

    def ttl_now() -> int | None:
        try:  # every answer meanwhile must be a good one: the reload drops no queries
            reply = kind_pod.dns(KUBERNETES_A)
        except (OSError, dns.exception.DNSException) as e:
            raise AssertionError(f"query failed during the reload: {e!r}") from e
        assert rcode(reply) == "NOERROR" and answer_texts(reply, "A") == ["10.96.0.1"], reply
        return 10 if reply.answer[0].ttl == 10 else None

    kind_pod.until(ttl_now, "ttl 10 after the ConfigMap edit", interval=1.0)
    print(f"\nreload applied the edited Corefile {time.monotonic() - start:.0f}s after the ..data swap")


def test_sigterm_keeps_answering_through_lameduck_then_exits_0(kind_pod: KindPod) -> None:
    """health { lameduck 5s }: /ready closes first, DNS and /health keep answering, then exit 0."""
    _synced(kind_pod)
    kind_pod.container.kill("TERM")
    signalled = time.monotonic()
    answered_late = health_during = ready_closed = False
    while kind_pod.container.running() and time.monotonic() - signalled < 30:  # terminationGracePeriod
        try:
            reply = kind_pod.dns(KUBERNETES_A)
            if rcode(reply) == "NOERROR" and time.monotonic() - signalled >= 2:
                answered_late = True
        except (OSError, dns.exception.DNSException):
            pass  # the listeners close at the end of lameduck
        ready_closed = ready_closed or kind_pod.http(READY, "/ready")[0] != 200
        health_during = health_during or kind_pod.http(HEALTH, "/health") == (200, "OK")
        time.sleep(0.3)
    code = kind_pod.container.wait(10)
    logs = kind_pod.container.logs()
    assert code == 0, logs
    assert answered_late, "no DNS answer 2s or more into the 5s lameduck"
    assert ready_closed and health_during
    assert "Read-only file system" not in logs and "Traceback" not in logs, logs
