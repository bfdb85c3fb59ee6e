"""Names are labels: a label holding a dot is never confused with two labels.

Regression for the poisoning found by a hostile-Pod probe: `p10\\.poison.example` (one label
`p10.poison`) was keyed as the text `p10.poison.example`, so asking it once made every client get its
NXDOMAIN for the real `p10.poison.example` from the cache. Each test asks the escaped name first and
the real one after, over UDP and TCP, through the cache and through the server's fast path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import dns.message
import dns.name
import pytest

from tests.plugins.kubernetes import cluster
from tests.support.apiserver import ApiServer
from tests.support.dnsclient import answer_texts, ask, rcode
from tests.support.process import KdnsProcess
from tests.support.upstream import FakeUpstream, running_upstreams

Kdns = Callable[..., KdnsProcess]
POISON = dns.name.Name([b"p10.poison", b"example", b""])  # two labels and the root
REAL = "p10.poison.example."


@pytest.fixture
def upstreams() -> Iterator[Callable[..., FakeUpstream]]:
    with running_upstreams() as make:
        yield make


def test_escaped_dot_does_not_poison_the_cache(kdns: Kdns, upstreams: Callable[..., FakeUpstream]) -> None:
    up = upstreams()
    up.add(REAL, "A", "192.0.2.10")
    k = kdns(f".:{{port}} {{\n bind 127.0.0.1\n cache 30\n forward . {up.address}\n}}\n")
    for tcp in (False, True):
        poisoned = ask(k.port, POISON.to_text(), tcp=tcp)
        assert rcode(poisoned) == "NXDOMAIN"
        assert poisoned.question[0].name == POISON  # echoed as the same two labels
        for _ in range(2):  # the second time from the cache (and its fast-path replay)
            assert answer_texts(ask(k.port, REAL, tcp=tcp)) == ["192.0.2.10"]
    # Each name asked upstream once (then cached), each under its own labels.
    asked = sorted(dns.message.from_wire(q.wire).question[0].name.to_text() for q in up.seen())
    assert asked == sorted([POISON.to_text(), REAL])


def test_escaped_dot_is_not_a_cluster_name(kdns: Kdns) -> None:
    """`web\\.default.svc.cluster.local` has four labels: no Service owns it, and asking it first
    does not change what the real five-label name gets."""
    api = ApiServer(bookmark_interval=1.0)
    api.start()
    try:
        for obj in [*cluster.NAMESPACES, *cluster.SERVICES, *cluster.SLICES]:
            api.add(obj)
        corefile = ".:{port} {\n bind 127.0.0.1\n kubernetes cluster.local {\n  endpoint API\n }\n}\n"
        k = kdns(corefile.replace("API", api.url))
        escaped = dns.name.Name([b"web.default", b"svc", b"cluster", b"local", b""])
        for tcp in (False, True):
            for _ in range(2):  # the second ask is replayed by the fast path
                r = ask(k.port, escaped.to_text(), tcp=tcp)
                assert rcode(r) == "NXDOMAIN" and not r.answer
                assert r.question[0].name == escaped
                assert answer_texts(ask(k.port, "web.default.svc.cluster.local", tcp=tcp)) == ["10.96.0.20"]
    finally:
        api.stop()


def test_escaped_dot_does_not_match_a_zone(kdns: Kdns) -> None:
    """`p\\.cluster.local.` is {p.cluster, local}: not in the zone cluster.local, so REFUSED."""
    k = kdns("cluster.local:{port} {\n bind 127.0.0.1\n whoami\n}\n")
    name = dns.name.Name([b"p.cluster", b"local", b""])
    assert rcode(ask(k.port, name.to_text())) == "REFUSED"
    assert rcode(ask(k.port, "p.cluster.local.")) == "NOERROR"
