"""Why a cluster name has no answer, in the reply (RFC 8914 Extended DNS Errors), through a real kdns
process synced from the test API server: every reason over UDP and TCP, with EDNS (the EDE) and
without (nothing added), the first ask (prepared) and the replay (fast path), and the awaited chain
(a `log` in front keeps the fast path off); positive answers carry no option at all."""

from __future__ import annotations

from collections.abc import Callable

import dns.message
import dns.rcode
import pytest

from tests.support.apiserver import ApiServer
from tests.support.dnsclient import ask, ede, rcode
from tests.support.process import KdnsProcess

Kdns = Callable[..., KdnsProcess]
CL = "svc.cluster.local."
COREFILE = """\
.:{port} {
    bind 127.0.0.1
    %(front)s
    kubernetes cluster.local {
        endpoint API
        %(extra)s
    }
    forward . 127.0.0.1:9
}
"""
OTHER = 0  # RFC 8914 §4.1 Other Error: the text says what
CASES = [
    ("empty.default." + CL, "A", "NXDOMAIN",
     "service default/empty has no ready endpoints (1 not ready, publishNotReadyAddresses=false)"),
    ("web.shop." + CL, "A", "NXDOMAIN", "namespace shop does not exist"),
    ("nope.default." + CL, "A", "NXDOMAIN", "no service nope in namespace default"),
    ("10-244-1-5.default.pod.cluster.local.", "A", "NXDOMAIN", "pods disabled"),
    ("web.default." + CL, "AAAA", "NOERROR", "service default/web has no IPv6 address"),
    ("ext-in.default." + CL, "AAAA", "NOERROR",
     "externalName target web.default.svc.cluster.local has no AAAA "
     "(service default/web has no IPv6 address)"),
    ("_nope._tcp.web.default." + CL, "SRV", "NXDOMAIN",
     "service default/web has no port named nope over tcp"),
]  # fmt: skip


def start(kdns: Kdns, api: ApiServer, front: str = "", extra: str = "") -> KdnsProcess:
    return kdns((COREFILE % {"front": front, "extra": extra}).replace("API", api.url))


@pytest.mark.parametrize("front", ["", "log"], ids=["prepared-then-replayed", "awaited-chain"])
def test_every_negative_answer_says_why(kdns: Kdns, api: ApiServer, front: str) -> None:
    k = start(kdns, api, front)
    for name, qtype, code, text in CASES:
        for tcp in (False, True):
            for _ in range(2):  # the second ask is replayed when the fast path may
                r = ask(k.port, name, qtype, tcp=tcp, edns=0)
                assert rcode(r) == code, (name, qtype)
                assert ede(r) == [(OTHER, text)], (name, qtype, tcp)
                plain = ask(k.port, name, qtype, tcp=tcp, edns=False)
                assert rcode(plain) == code and plain.edns < 0 and not plain.options  # no OPT, no EDE


def test_a_namespace_the_namespaces_option_hides(kdns: Kdns, api: ApiServer) -> None:
    k = start(kdns, api, extra="namespaces default")
    r = ask(k.port, "api.other." + CL, "A", edns=0)
    assert rcode(r) == "NXDOMAIN" and ede(r) == [(OTHER, "namespace other is not served (namespaces option)")]


def test_not_synced_is_servfail_not_ready(kdns: Kdns, api: ApiServer) -> None:
    api.down()
    k = start(kdns, api, extra="startup_timeout 1s")
    for tcp in (False, True):
        r = ask(k.port, "web.default." + CL, "A", tcp=tcp, edns=0)
        assert rcode(r) == "SERVFAIL"
        assert ede(r) == [(14, "not synced with the Kubernetes API yet")]  # RFC 8914 §4.15 Not Ready
        assert not ask(k.port, "web.default." + CL, "A", tcp=tcp, edns=False).options


def test_positive_answers_carry_no_option(kdns: Kdns, api: ApiServer) -> None:
    """Byte for byte what they were before EDE: the EDNS reply is the plain one plus an empty OPT."""
    k = start(kdns, api)
    for name, qtype in (
        ("web.default." + CL, "A"),
        ("db.default." + CL, "SRV"),
        ("ext-in.default." + CL, "A"),
    ):
        for tcp in (False, True):
            with_edns = ask(k.port, name, qtype, tcp=tcp, edns=0)
            plain = ask(k.port, name, qtype, tcp=tcp, edns=False)
            assert with_edns.rcode() == dns.rcode.NOERROR and with_edns.answer
            assert not with_edns.options and with_edns.answer == plain.answer
            assert with_edns.additional == plain.additional
            # the wire form: the plain reply, then an 11-byte OPT with no options
            assert len(with_edns.to_wire()) == len(plain.to_wire()) + 11
            assert dns.message.from_wire(plain.to_wire()).answer == plain.answer
