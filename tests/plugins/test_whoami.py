"""whoami through a real kdns: the client's address and port, under names built from the question's
labels (regression: the root name crashed the plugin, SERVFAIL; a label holding a dot was answered
under two labels — both found by fuzz/targets/packet.py)."""

from __future__ import annotations

from collections.abc import Callable

import dns.name
import dns.rdatatype
import pytest

from tests.support.dnsclient import ask as dns_ask
from tests.support.dnsclient import rcode
from tests.support.process import KdnsProcess

Kdns = Callable[..., KdnsProcess]
WHOAMI = ".:{port} {\n  bind 127.0.0.1\n  whoami\n}\n"


@pytest.mark.parametrize(
    "labels", [(), (b"a.b", b"test"), (b"\xff\x00weird", b"test")], ids=["root", "dotted-label", "octets"]
)
def test_owners_are_the_question_s_labels(kdns: Kdns, labels: tuple[bytes, ...]) -> None:
    k = kdns(WHOAMI)
    name = dns.name.Name([*labels, b""])
    for tcp, proto in ((False, b"_udp"), (True, b"_tcp")):
        reply = dns_ask(k.port, name.to_text(), tcp=tcp)
        assert rcode(reply) == "NOERROR"
        owners = {(rr.name, dns.rdatatype.to_text(rr.rdtype)) for rr in reply.additional}
        assert owners == {(name, "A"), (dns.name.Name([proto, *labels, b""]), "SRV")}
        (srv,) = [rr for rr in reply.additional if rr.rdtype == dns.rdatatype.SRV]
        assert srv[0].target == name


def test_a_name_too_long_for_the_srv_owner_is_answered_without_it(kdns: Kdns) -> None:
    """`_udp.<qname>` over 255 octets is not a name: the SRV is left out. Regression (found by
    fuzz/targets/packet.py): rewrite, which packs the reply to copy it, failed on it (SERVFAIL)."""
    k = kdns(".:{port} {\n  bind 127.0.0.1\n  rewrite name suffix .alias.test. .default.svc.cluster.local.\n"
             "  whoami\n}\n")  # fmt: skip
    labels = [b"x" * 63] * 3 + [b"y" * 33]  # 226 octets; rewritten, the name has 253
    name = dns.name.Name([*labels, b"alias", b"test", b""])
    for tcp in (False, True):
        reply = dns_ask(k.port, name.to_text(), tcp=tcp)
        assert rcode(reply) == "NOERROR"
        assert [dns.rdatatype.to_text(rr.rdtype) for rr in reply.additional] == ["A"]
