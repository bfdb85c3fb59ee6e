"""API faults against a real kdns process: the exact DNS answers before, during and after each one.

Every test runs the test API server (tests/support/apiserver.py) and a kdns synced from it, breaks
the API in one way, and compares kdns's replies for every name the objects give rise to with the
answers the oracle (oracle.py) computes from the API server's objects: the last-known-good state
while the API is broken, the new state once it recovers. Where a fault leaves a window in which
either state is right, a second thread keeps asking and every reply must be one of the two: a name
that exists in both never vanishes. Timings are printed, never asserted, except where a wait is
the behaviour under test (Retry-After is a lower bound the client must honour).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dns.message
import pytest

from kdns.k8s.informer import TIMING_ENV
from tests.plugins.kubernetes import cluster, oracle
from tests.plugins.kubernetes.harness import (
    CL,
    KINDS,
    PATHS,
    SYNC_TIMEOUT,
    Harness,
    Prober,
    either,
    lists_since,
    requests_since,
    stable,
    start,
)
from tests.plugins.kubernetes.oracle import Answer, Question
from tests.support import objects as o
from tests.support.apiserver import ApiServer
from tests.support.dnsclient import answer_texts, ask, has_flag, rcode
from tests.support.process import KdnsProcess


@pytest.fixture
def api() -> Iterator[ApiServer]:
    server = ApiServer(bookmark_interval=1.0)
    server.start()
    for obj in [*cluster.NAMESPACES, *cluster.SERVICES, *cluster.SLICES]:
        server.add(obj)
    yield server
    server.stop()


@pytest.fixture
def h(kdns: Callable[..., KdnsProcess], api: ApiServer) -> Harness:
    harness = start(kdns, api)
    harness.wait(harness.state(), "initial sync")
    return harness


def change_some(api: ApiServer) -> None:
    """One change of each kind a cluster sees, touching disjoint names: a Service moves to a new
    ClusterIP, one is deleted, one is created with its slice, a headless Service gains an endpoint
    and loses one, an ExternalName is retargeted, a namespace appears."""
    api.update(o.service("web", ips=["10.96.0.21"], ports=[o.port("http", 80), o.port("", 8443)]))
    api.delete("Service", "api", "other")
    api.add(o.namespace("fresh"))
    api.add(o.headless("new", "fresh", ports=[o.port("grpc", 9090)]))
    api.add(
        o.endpoint_slice(
            "new-1",
            "new",
            "fresh",
            endpoints=[o.endpoint("10.244.8.1", hostname="n-0")],
            ports=[o.port("grpc", 9090)],
        )
    )
    api.update(
        o.endpoint_slice(
            "db-v4",
            "db",
            endpoints=[
                o.endpoint("10.244.2.1", hostname="db-0"),
                o.endpoint("10.244.2.5", hostname="db-5"),
                o.endpoint("10.244.2.3", ready=False, hostname="db-2"),
            ],
            ports=[o.port("mysql", 3306)],
        )
    )
    api.update(o.external("ext", "elsewhere.example.org"))


# -- start-up ---------------------------------------------------------------------------------------


def test_api_down_at_start_servfails_then_answers_exactly(
    kdns: Callable[..., KdnsProcess], api: ApiServer
) -> None:
    api.down()
    h = start(kdns, api, extra="startup_timeout 1s")
    s0 = h.state()
    # Before the first sync every cluster name is unknown: SERVFAIL with the SOA, never NXDOMAIN.
    unsynced = {q: Answer("SERVFAIL", soa=True) for q in h.questions()}
    diffs = oracle.differences(oracle.observe(h.port, unsynced), unsynced)
    assert not diffs, "\n".join(diffs[:20])
    assert h.ready() == 503
    assert rcode(ask(h.port, "svc.cluster.local.")) == "NOERROR"  # an empty non-terminal is known
    api.up()
    h.wait(s0, "first sync after the API came up")
    assert h.ready() == 200
    change_some(api)
    h.wait(h.state(), "changes after a late first sync")


# -- watch stream faults -----------------------------------------------------------------------------


def test_watch_cut_mid_event_resumes_without_losing_it(h: Harness, api: ApiServer) -> None:
    s0 = h.state()
    t_cut = time.monotonic()
    api.cut_next_event()  # every watch writes half of its next event line, then closes
    change_some(api)
    s1 = h.state()
    with Prober(h.port, either(h, s0, s1)) as prober:
        h.wait(s1, "changes cut mid-event")
    prober.assert_clean()
    # A torn line is a broken connection, not a reason to re-list: the watches resume from their RV.
    watches = requests_since(api, t_cut, watch=True)
    assert {r.path for r in watches} >= {PATHS["Service"], PATHS["EndpointSlice"], PATHS["Namespace"]}
    assert all(r.query.get("resourceVersion") not in ("", "0", None) for r in watches)
    assert not lists_since(api, t_cut)


@pytest.mark.parametrize(
    "line",
    [
        b'{"type": "MODIFIED", "object": {"metadata": [}\n',  # not JSON
        b'{"type": "ADDED", "object": ["not", "an", "object"]}\n',
        b'{"kind": "Status"}\n',  # JSON, but not an event
    ],
    ids=["not-json", "object-not-a-map", "not-an-event"],
)
def test_garbage_on_the_watch_stream(h: Harness, api: ApiServer, line: bytes) -> None:
    s0 = h.state()
    t0 = time.monotonic()
    assert api.send_garbage(line) == 3
    # Nothing changed in the API, so nothing may change in DNS through the re-lists the garbage causes.
    with Prober(h.port, stable(h, s0, s0)) as prober:
        deadline = time.monotonic() + 10
        while lists_since(api, t0) != set(PATHS.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        h.check(s0, "after garbage, before any change")
    prober.assert_clean()
    change_some(api)
    s1 = h.state()
    with Prober(h.port, either(h, s0, s1)) as prober:
        h.wait(s1, "changes after garbage")
    prober.assert_clean()
    assert lists_since(api, t0) == set(PATHS.values()), "garbage on a watch should lead to a re-list"
    assert h.dns.proc is not None and h.dns.proc.poll() is None


# -- 410 and new epochs --------------------------------------------------------------------------------


def test_410_on_resume_reconciles_changes_made_while_disconnected(h: Harness, api: ApiServer) -> None:
    s0 = h.state()
    api.down()
    change_some(api)
    # A headless Service whose slice was replaced while kdns was away: its name must hold throughout.
    api.delete("EndpointSlice", "db-v6")
    api.add(
        o.endpoint_slice(
            "db-v6-x",
            "db",
            address_type="IPv6",
            endpoints=[o.endpoint("fd00::1", hostname="db-0")],
            ports=[o.port("mysql", 3306)],
        )
    )
    api.delete("Namespace", "other")
    s1 = h.state()
    h.check(s0, "API down: last-known-good")
    api.compact()  # history gone: resuming from kdns's resourceVersion now gets 410 Expired
    t_up = time.monotonic()
    with Prober(h.port, either(h, s0, s1)) as prober, Prober(h.port, stable(h, s0, s1)) as strict:
        api.up()
        h.wait(s1, "re-list after 410")
    prober.assert_clean()
    strict.assert_clean()
    assert lists_since(api, t_up) == set(PATHS.values())
    assert rcode(ask(h.port, "api.other." + CL)) == "NXDOMAIN"
    assert answer_texts(ask(h.port, "web.default." + CL)) == ["10.96.0.21"]


def test_api_restart_with_a_new_resource_version_epoch(h: Harness, api: ApiServer) -> None:
    s0 = h.state()
    api.down()
    change_some(api)
    s1 = h.state()
    h.check(s0, "API down: last-known-good")
    t_restart = time.monotonic()
    with Prober(h.port, either(h, s0, s1)) as prober:
        api.restart()  # every resourceVersion kdns holds is now from an old epoch
        h.wait(s1, "after restart")
    prober.assert_clean()
    assert lists_since(api, t_restart) == set(PATHS.values())
    epoch = api.resource_version
    assert epoch > 1_000_000
    # The watches now run in the new epoch: later events arrive as usual.
    api.update(o.service("dual", ips=["10.96.0.31", "fd00:10:96::31"], ports=[o.port("http", 80)]))
    h.wait(h.state(), "an event in the new epoch")
    later = requests_since(api, t_restart, watch=True)
    assert int(later[-1].query["resourceVersion"]) >= epoch - 1


# -- slow, hung and failing requests ---------------------------------------------------------------------


def test_slow_api_responses(kdns: Callable[..., KdnsProcess], api: ApiServer) -> None:
    api.set_latency(1.0)  # every list and watch answers a second late, from the very first list
    h = start(kdns, api)
    s0 = h.state()
    h.wait(s0, "initial sync through a slow API")
    api.cut_watches()
    change_some(api)
    s1 = h.state()
    with Prober(h.port, either(h, s0, s1)) as prober:
        h.wait(s1, "changes through a slow API")
    prober.assert_clean()


def _wait_hung(api: ApiServer, t0: float, count: int, *, watch: bool, path: str | None = None) -> None:
    deadline = time.monotonic() + 20
    while len([r for r in requests_since(api, t0, watch=watch) if path in (None, r.path)]) < count:
        assert time.monotonic() < deadline, "kdns never sent the requests that should hang"
        time.sleep(0.02)


def test_hung_watch_serves_last_known_good_then_recovers(h: Harness, api: ApiServer) -> None:
    s0 = h.state()
    t0 = time.monotonic()
    api.hang_next(1, watch=True, match=lambda r: r.path == PATHS["Service"])
    api.cut_watches()
    _wait_hung(api, t0, 1, watch=True, path=PATHS["Service"])
    api.wait_for_watchers("EndpointSlice")
    api.wait_for_watchers("Namespace")
    # A Service change cannot reach kdns through the hung stream; a slice change can.
    api.update(o.service("web", ips=["10.96.0.21"], ports=[o.port("http", 80), o.port("", 8443)]))
    slice_change = o.endpoint_slice("noports-1", "noports", endpoints=[o.endpoint("10.244.4.2")], ports=None)
    api.update(slice_change)
    mid = [*s0]
    mid[[(x["kind"], x["metadata"]["name"]) for x in mid].index(("EndpointSlice", "noports-1"))] = (
        slice_change
    )
    h.history.append(slice_change)
    h.wait(mid, "slice change while the Service watch hangs")
    h.check(mid, "still hung: the Service keeps its last-known-good answer")
    s1 = h.state()
    with Prober(h.port, either(h, mid, s1)) as prober:
        api.release_hung()  # the hung connection is reset
        h.wait(s1, "after the hang")
    prober.assert_clean()


def test_hung_watch_is_noticed_by_the_read_timeout(kdns: Callable[..., KdnsProcess], api: ApiServer) -> None:
    """No one releases the hang: kdns's own read timeout must notice the silent stream (bookmarks
    arrive every second on healthy watches, so 3 s of silence is a dead connection)."""
    h = start(kdns, api, env={TIMING_ENV: "read_timeout=3"})
    s0 = h.state()
    h.wait(s0, "initial sync")
    t0 = time.monotonic()
    api.hang_next(1, watch=True, match=lambda r: r.path == PATHS["Service"])
    api.cut_watches()
    _wait_hung(api, t0, 1, watch=True, path=PATHS["Service"])
    api.update(o.service("web", ips=["10.96.0.21"], ports=[o.port("http", 80), o.port("", 8443)]))
    s1 = h.state()
    with Prober(h.port, either(h, s0, s1)) as prober:
        h.wait(s1, "after the read timeout gave up on the hung watch")
    prober.assert_clean()
    service_watches = [r for r in requests_since(api, t0, watch=True) if r.path == PATHS["Service"]]
    assert len(service_watches) >= 2, "the change came through without a new watch"
    api.release_hung()


def test_hung_first_list_is_noticed_by_the_read_timeout(
    kdns: Callable[..., KdnsProcess], api: ApiServer
) -> None:
    api.hang_next(1, watch=False, match=lambda r: r.path == PATHS["Service"])
    h = start(kdns, api, extra="startup_timeout 1s", env={TIMING_ENV: "read_timeout=2"})
    h.wait(h.state(), "first sync after a hung list")
    assert len(api.requests(PATHS["Service"], watch=False)) >= 2
    api.release_hung()


def test_hung_relist_serves_last_known_good_then_recovers(h: Harness, api: ApiServer) -> None:
    s0 = h.state()
    t0 = time.monotonic()
    api.hang_next(3, watch=False)  # the three re-lists the 410s below cause
    api.down()
    change_some(api)
    s1 = h.state()
    api.compact()  # kdns's resourceVersion predates the changes, so resuming gets 410
    api.up()
    _wait_hung(api, t0, 3, watch=False)
    h.check(s0, "re-lists hung: last-known-good")
    time.sleep(1.0)
    h.check(s0, "re-lists still hung: last-known-good")
    with Prober(h.port, either(h, s0, s1)) as prober:
        api.release_hung()
        h.wait(s1, "after the hung re-lists")
    prober.assert_clean()


@pytest.mark.parametrize(
    ("status", "watch"), [(429, True), (503, False), (500, True)], ids=["429-watch", "503-list", "500-watch"]
)
def test_retry_after_is_honoured(h: Harness, api: ApiServer, status: int, watch: bool) -> None:
    retry_after = 1.5  # far above the informer's first backoff step (0.1–0.2 s)
    s0 = h.state()
    t0 = time.monotonic()
    api.fail_next(2, status, retry_after=retry_after, watch=watch)
    if watch:
        api.cut_watches()
        change_some(api)
    else:  # changes kdns missed, then compaction: the resumed watches get 410, the re-lists fail
        api.down()
        change_some(api)
        api.compact()
        api.up()
    s1 = h.state()
    with Prober(h.port, either(h, s0, s1)) as prober:
        h.wait(s1, f"after {status} with Retry-After")
    prober.assert_clean()
    failed = sorted(requests_since(api, t0, watch=watch), key=lambda r: r.time)[:2]
    assert len(failed) == 2
    for bad in failed:
        retry = next(r for r in requests_since(api, bad.time) if r.path == bad.path and r is not bad)
        gap = retry.time - bad.time
        print(f"{status} on {bad.path}: retried after {gap:.2f}s")
        assert gap >= retry_after - 0.05, (
            f"{bad.path} retried {gap:.2f}s after a {status}, before Retry-After"
        )


def test_long_api_loss_serves_last_known_good_and_stays_ready(h: Harness, api: ApiServer) -> None:
    s0 = h.state()
    assert h.ready() == 200
    api.down()
    change_some(api)
    s1 = h.state()
    until = time.monotonic() + 6  # long enough for several failed reconnects with backoff
    while time.monotonic() < until:
        h.check(s0, "API lost: last-known-good")
        assert h.ready() == 200, "readiness must not drop after the first sync"
        time.sleep(0.3)
    assert "plugin/kubernetes" in h.dns.logs() and "WARNING" in h.dns.logs(), "the outage must be logged"
    with Prober(h.port, either(h, s0, s1)) as prober:
        api.up()
        h.wait(s1, "after a long API loss")
    prober.assert_clean()
    assert "restored" in h.dns.logs()


# -- credentials ---------------------------------------------------------------------------------------


def _write_token(sa_dir: Path, token: str) -> None:
    """Replace the token file as the kubelet does for projected tokens: a new file renamed over it."""
    tmp = sa_dir / ".token.new"
    tmp.write_text(token)
    os.replace(tmp, sa_dir / "token")


def _bearers_since(api: ApiServer, t: float) -> list[str]:
    return [r.headers.get("Authorization", "") for r in requests_since(api, t)]


@pytest.fixture
def tls_api() -> Iterator[ApiServer]:
    server = ApiServer(tls=True, tokens=["token-A"], bookmark_interval=1.0)
    server.start()
    for obj in [*cluster.NAMESPACES, *cluster.SERVICES, *cluster.SLICES]:
        server.add(obj)
    yield server
    server.stop()


def test_rotated_token_in_cluster(
    kdns: Callable[..., KdnsProcess], tls_api: ApiServer, tmp_path: Path
) -> None:
    api, sa = tls_api, tmp_path / "serviceaccount"
    h = start(kdns, api, source="", env=api.in_cluster_env(sa, "token-A"))
    s0 = h.state()
    h.wait(s0, "in-cluster sync over TLS")
    t0 = time.monotonic()
    api.rotate_token("token-B")  # the old token now gets 401
    api.cut_watches()
    change_some(api)
    s1 = h.state()
    deadline = time.monotonic() + 20
    while "Bearer token-A" not in _bearers_since(api, t0):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    h.check(s0, "token rejected: last-known-good")
    with Prober(h.port, either(h, s0, s1)) as prober:
        _write_token(sa, "token-B")
        h.wait(s1, "after the token file was rotated")
    prober.assert_clean()
    assert _bearers_since(api, t0)[-1] == "Bearer token-B"
    assert h.dns.proc is not None and h.dns.proc.poll() is None


def test_401_rereads_a_token_that_changed_unseen(
    kdns: Callable[..., KdnsProcess], tls_api: ApiServer, tmp_path: Path
) -> None:
    """The token file changes without any sign in its stat (same inode, size and mtime): only the
    401 can tell kdns to re-read it, and the retry must then succeed."""
    api, sa = tls_api, tmp_path / "serviceaccount"
    h = start(kdns, api, source="", env=api.in_cluster_env(sa, "token-A"))
    s0 = h.state()
    h.wait(s0, "in-cluster sync over TLS")
    token = sa / "token"
    st = os.stat(token)
    with open(token, "r+") as f:
        f.write("token-B")
    os.utime(token, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (os.stat(token).st_ino, os.stat(token).st_size, os.stat(token).st_mtime_ns) == (
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
    )
    t0 = time.monotonic()
    api.rotate_token("token-B")
    api.cut_watches()
    change_some(api)
    s1 = h.state()
    with Prober(h.port, either(h, s0, s1)) as prober:
        h.wait(s1, "after a 401 and a re-read")
    prober.assert_clean()
    bearers = _bearers_since(api, t0)
    assert "Bearer token-A" in bearers and bearers[-1] == "Bearer token-B"


# -- a very large object --------------------------------------------------------------------------------


BIG = 10_000


def _big_ip(i: int) -> str:
    return f"10.128.{i // 250}.{i % 250 + 1}"


def _tcp_pipeline(port: int, queries: list[tuple[str, str]], batch: int = 500) -> list[dns.message.Message]:
    """Ask many questions on one TCP connection, `batch` in flight at a time (RFC 7766 pipelining)."""
    out: list[dns.message.Message] = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s, s.makefile("rb") as rf:
        for start_at in range(0, len(queries), batch):
            chunk = queries[start_at : start_at + batch]
            msgs = [dns.message.make_query(n, t) for n, t in chunk]
            for i, m in enumerate(msgs):
                m.id = i
            s.sendall(b"".join(struct.pack("!H", len(w)) + w for w in (m.to_wire() for m in msgs)))
            replies: dict[int, dns.message.Message] = {}
            for _ in msgs:
                (length,) = struct.unpack("!H", rf.read(2))
                reply = dns.message.from_wire(rf.read(length))
                replies[reply.id] = reply
            out.extend(replies[i] for i in range(len(msgs)))
    return out


def _big_slice(ready: Callable[[int], bool | None], present: Callable[[int], bool]) -> dict[str, Any]:
    eps = [o.endpoint(_big_ip(i), hostname=f"pod-{i}", ready=ready(i)) for i in range(BIG) if present(i)]
    return o.endpoint_slice("big-1", "big", endpoints=eps, ports=[o.port("http", 8080)])


def test_an_object_with_10k_endpoints(h: Harness, api: ApiServer) -> None:
    api.add(o.headless("big", ports=[o.port("http", 8080)]))
    api.add(_big_slice(lambda i: True, lambda i: True))
    name = "big.default." + CL
    deadline = time.monotonic() + SYNC_TIMEOUT
    while rcode(ask(h.port, f"pod-{BIG - 1}.{name}", timeout=10)) != "NOERROR":
        assert time.monotonic() < deadline, h.dns.logs()[-3000:]
        time.sleep(0.1)
    # The whole RRset does not fit any DNS message: UDP truncates at the EDNS size, TCP at 64 KiB,
    # and what is there is right.
    udp = ask(h.port, name, payload=1232, timeout=10)
    assert has_flag(udp, "TC") and len(udp.to_wire()) <= 1232
    assert set(answer_texts(udp)) <= {_big_ip(i) for i in range(BIG)}
    tcp = ask(h.port, name, tcp=True, timeout=30)
    assert len(tcp.to_wire()) <= 65535 and has_flag(tcp, "TC")
    assert len(answer_texts(tcp)) > 3000 and set(answer_texts(tcp)) <= {_big_ip(i) for i in range(BIG)}
    # Every endpoint's own name, over TCP.
    replies = _tcp_pipeline(h.port, [(f"pod-{i}.{name}", "A") for i in range(BIG)])
    wrong = [i for i, r in enumerate(replies) if rcode(r) != "NOERROR" or answer_texts(r) != [_big_ip(i)]]
    assert not wrong, f"{len(wrong)} endpoints answered wrong, e.g. pod-{wrong[0]}"
    # One update of the big object: a thousand endpoints go unready, a thousand are removed.
    api.update(_big_slice(lambda i: i % 10 != 1, lambda i: i % 10 != 2))
    deadline = time.monotonic() + SYNC_TIMEOUT
    while rcode(ask(h.port, f"pod-{BIG - 8}.{name}", timeout=10)) != "NXDOMAIN":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    replies = _tcp_pipeline(h.port, [(f"pod-{i}.{name}", "A") for i in range(BIG)])
    for i, r in enumerate(replies):
        if i % 10 in (1, 2):
            assert rcode(r) == "NXDOMAIN", f"pod-{i}"
        else:
            assert answer_texts(r) == [_big_ip(i)], f"pod-{i}"
    ptr = ask(h.port, "5.4.128.10.in-addr.arpa.", "PTR")  # 10.128.4.5 = endpoint 1004
    assert answer_texts(ptr) == [f"pod-1004.{name}"]
    srv = ask(h.port, "_http._tcp." + name, "SRV", tcp=True, timeout=30)
    assert all(rd.port == 8080 for rrset in srv.answer for rd in rrset)
    # The rest of the cluster is untouched (the big names are left out of the oracle's questions).
    rest = [x for kind in KINDS for x in api.objects(kind) if not x["metadata"]["name"].startswith("big")]
    h.check(rest, "every other name after the big object")


# -- slice hand-over -----------------------------------------------------------------------------------


HL = "hl.default." + CL


@contextlib.contextmanager
def headless_prober(h: Harness, names: dict[Question, set[Answer]]) -> Iterator[Prober]:
    """A prober on the given names, checked clean on exit."""
    with Prober(h.port, names) as prober:
        while prober.rounds < 2:
            time.sleep(0.01)
        yield prober
    prober.assert_clean()


def _ans(*ips: str, rtype: str = "A") -> Answer:
    return Answer("NOERROR", frozenset((rtype, ip) for ip in ips))


def _hl_setup(h: Harness, api: ApiServer, slices: list[dict[str, Any]]) -> None:
    api.add(o.headless("hl", ports=[o.port("http", 80)]))
    for sl in slices:
        api.add(sl)
    h.wait(h.state(), "headless service set up")


def _eps(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [o.endpoint(ip, hostname=host) for host, ip in pairs]


def test_slice_replaced_delete_then_add_keeps_the_headless_name(h: Harness, api: ApiServer) -> None:
    pods = (("h0", "10.244.7.1"), ("h1", "10.244.7.2"))
    _hl_setup(h, api, [o.endpoint_slice("hl-a", "hl", endpoints=_eps(*pods), ports=[o.port("http", 80)])])
    watched = {
        (HL, "A"): {_ans("10.244.7.1", "10.244.7.2")},
        ("h0." + HL, "A"): {_ans("10.244.7.1")},
        ("h1." + HL, "A"): {_ans("10.244.7.2")},
    }
    with headless_prober(h, watched):
        for new_name, pause in (("hl-b", 0.0), ("hl-c", 0.5), ("hl-d", 1.2)):  # the add may come late
            old = next(x for x in api.objects("EndpointSlice") if x["metadata"]["name"].startswith("hl-"))
            api.delete(old)
            time.sleep(pause)
            api.add(o.endpoint_slice(new_name, "hl", endpoints=_eps(*pods), ports=[o.port("http", 80)]))
            time.sleep(0.3)
    h.check(h.state(), "after the hand-overs")


def test_last_slice_deleted_for_good_goes_after_the_hold(h: Harness, api: ApiServer) -> None:
    """The hold must not keep a really removed Service's endpoints: old answer, then NXDOMAIN."""
    _hl_setup(
        h,
        api,
        [o.endpoint_slice("hl-a", "hl", endpoints=_eps(("h0", "10.244.7.1")), ports=[o.port("http", 80)])],
    )
    nx = Answer("NXDOMAIN", soa=True)
    watched = {(HL, "A"): {_ans("10.244.7.1"), nx}, ("h0." + HL, "A"): {_ans("10.244.7.1"), nx}}
    with headless_prober(h, watched):
        api.delete("EndpointSlice", "hl-a")
        h.wait(h.state(), "the removal, once the hand-over hold expired")


def test_endpoint_moves_between_slices_of_a_single_slice_service(h: Harness, api: ApiServer) -> None:
    """The only slice loses the endpoint, then a new slice gets it: the Service is briefly empty in
    the API, never in DNS."""
    pods = (("h0", "10.244.7.1"),)
    port80 = [o.port("http", 80)]
    _hl_setup(h, api, [o.endpoint_slice("hl-a", "hl", endpoints=_eps(*pods), ports=port80)])
    watched = {(HL, "A"): {_ans("10.244.7.1")}, ("h0." + HL, "A"): {_ans("10.244.7.1")}}
    with headless_prober(h, watched):
        api.update(o.endpoint_slice("hl-a", "hl", endpoints=[], ports=port80))
        time.sleep(0.2)
        api.add(o.endpoint_slice("hl-b", "hl", endpoints=_eps(*pods), ports=port80))
        time.sleep(0.3)
    h.check(h.state(), "after the move")


def test_endpoint_moves_between_two_slices(h: Harness, api: ApiServer) -> None:
    """Two slices; endpoint h1 moves from the first to the second (remove, then add): h1's name and
    the Service's full address set must hold throughout."""
    port80 = [o.port("http", 80)]
    _hl_setup(
        h,
        api,
        [
            o.endpoint_slice(
                "hl-a", "hl", endpoints=_eps(("h0", "10.244.7.1"), ("h1", "10.244.7.2")), ports=port80
            ),
            o.endpoint_slice("hl-b", "hl", endpoints=_eps(("h2", "10.244.7.3")), ports=port80),
        ],
    )
    watched = {
        (HL, "A"): {_ans("10.244.7.1", "10.244.7.2", "10.244.7.3")},
        ("h1." + HL, "A"): {_ans("10.244.7.2")},
    }
    with headless_prober(h, watched):
        api.update(o.endpoint_slice("hl-a", "hl", endpoints=_eps(("h0", "10.244.7.1")), ports=port80))
        time.sleep(0.3)
        api.update(
            o.endpoint_slice(
                "hl-b", "hl", endpoints=_eps(("h2", "10.244.7.3"), ("h1", "10.244.7.2")), ports=port80
            )
        )
        time.sleep(0.3)
    h.check(h.state(), "after the move")


def test_dual_stack_slice_replaced_keeps_the_a_records(h: Harness, api: ApiServer) -> None:
    """The IPv4 slice of a dual-stack headless Service is replaced (delete, then add) while the IPv6
    slice stays: the A answer must never be empty."""
    port80 = [o.port("http", 80)]
    v4 = _eps(("h0", "10.244.7.1"))
    _hl_setup(
        h,
        api,
        [
            o.endpoint_slice("hl-v4", "hl", endpoints=v4, ports=port80),
            o.endpoint_slice(
                "hl-v6", "hl", address_type="IPv6", endpoints=_eps(("h0", "fd00::7:1")), ports=port80
            ),
        ],
    )
    watched = {
        (HL, "A"): {_ans("10.244.7.1")},
        ("h0." + HL, "A"): {_ans("10.244.7.1")},
        (HL, "AAAA"): {_ans("fd00::7:1", rtype="AAAA")},
    }
    with headless_prober(h, watched):
        api.delete("EndpointSlice", "hl-v4")
        time.sleep(0.3)
        api.add(o.endpoint_slice("hl-v4-x", "hl", endpoints=v4, ports=port80))
        time.sleep(0.3)
    h.check(h.state(), "after the replacement")
