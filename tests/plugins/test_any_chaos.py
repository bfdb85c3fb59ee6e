"""any (RFC 8482 HINFO for ANY) and chaos (CH TXT version/hostname/authors), their syntax, and a real
kdns process answering them over UDP and TCP: CH queries reach the chain only when chaos (or
forward) is configured, as CoreDNS opens non-IN classes."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from kdns import __version__
from kdns.corefile import CorefileError
from kdns.plugins import any as any_plugin
from kdns.plugins import chaos
from tests.support.dnsclient import answer_texts, ask, has_flag, rcode
from tests.support.process import KdnsProcess
from tests.support.units import context, directive


@pytest.mark.parametrize(
    ("module", "text", "message"),
    [
        (any_plugin, "any now", "wrong argument count"),
        (any_plugin, "any {\n x\n}", "unknown property 'x'"),
        (chaos, "chaos v1 {\n x\n}", "unknown property 'x'"),
    ],
)
def test_bad_syntax(module: object, text: str, message: str) -> None:
    with pytest.raises(CorefileError, match=re.escape(message)):
        module.setup(directive(text), context(text))  # type: ignore[attr-defined]


def test_chaos_arguments() -> None:
    plugin = chaos.setup(directive("chaos"), context("chaos"))
    assert isinstance(plugin, chaos.Chaos)
    assert plugin.version == f"kdns-{__version__}".encode() and plugin.authors == ()
    plugin = chaos.setup(directive("chaos v9 bob alice bob " + "x" * 300), context("chaos"))
    assert isinstance(plugin, chaos.Chaos)
    assert plugin.version == b"v9" and plugin.authors == (b"alice", b"bob", b"x" * 255)


@pytest.mark.parametrize("tcp", [False, True])
def test_any_gets_one_hinfo(kdns: Callable[..., KdnsProcess], tcp: bool) -> None:
    p = kdns(".:{port} {\n  bind 127.0.0.1\n  any\n  whoami\n}\n")
    r = ask(p.port, "Some.Example.", "ANY", tcp=tcp)
    assert rcode(r) == "NOERROR" and not has_flag(r, "AA")
    (rrset,) = r.answer
    assert rrset.name.to_text() == "Some.Example." and rrset.ttl == 8482
    assert [rd.to_text() for rd in rrset] == ['"ANY obsoleted" "See RFC 8482"']
    assert rcode(ask(p.port, "some.example.", "A", tcp=tcp)) == "NOERROR"  # others: whoami
    assert ask(p.port, "some.example.", "A", tcp=tcp).additional  # whoami's address record


@pytest.mark.parametrize("tcp", [False, True])
def test_chaos_answers_ch_txt(kdns: Callable[..., KdnsProcess], tcp: bool) -> None:
    p = kdns(".:{port} {\n  bind 127.0.0.1\n  chaos kdns-test alice bob\n  whoami\n}\n")
    r = ask(p.port, "Version.Bind.", "TXT", rdclass="CH", tcp=tcp)
    assert rcode(r) == "NOERROR"
    (rrset,) = r.answer
    assert rrset.name.to_text() == "Version.Bind." and rrset.ttl == 0 and rrset.rdclass == 3
    assert [rd.to_text() for rd in rrset] == ['"kdns-test"']
    assert answer_texts(ask(p.port, "version.server.", "TXT", rdclass="CH", tcp=tcp)) == ['"kdns-test"']
    assert answer_texts(ask(p.port, "authors.bind.", "TXT", rdclass="CH", tcp=tcp)) == ['"alice"', '"bob"']
    hostname = f'"{socket.gethostname()}"'
    assert answer_texts(ask(p.port, "hostname.bind.", "TXT", rdclass="CH", tcp=tcp)) == [hostname]
    assert answer_texts(ask(p.port, "id.server.", "TXT", rdclass="CH", tcp=tcp)) == [hostname]
    # Other CH names go on to the next plugin (whoami answers anything); IN TXT is not chaos's.
    other = ask(p.port, "other.bind.", "TXT", rdclass="CH", tcp=tcp)
    assert rcode(other) == "NOERROR" and not other.answer and other.additional
    assert not ask(p.port, "version.bind.", "TXT", tcp=tcp).answer


def test_without_chaos_or_forward_other_classes_are_refused(kdns: Callable[..., KdnsProcess]) -> None:
    p = kdns(".:{port} {\n  bind 127.0.0.1\n  any\n  whoami\n}\n")
    assert rcode(ask(p.port, "version.bind.", "TXT", rdclass="CH")) == "REFUSED"


@pytest.mark.parametrize("tcp", [False, True])
def test_their_questions_never_reach_a_later_plugin(kdns: Callable[..., KdnsProcess], tcp: bool) -> None:
    """The server prepares replies without awaiting (Plugin.serve_now) before it runs the chain:
    any and chaos must answer there too, or the kubernetes plugin behind them (which answers at
    once, here for the zone `bind` as well) answers their questions, and the fast path replays it."""
    demo = Path(__file__).resolve().parents[2] / "demo" / "cluster.yaml"
    block = f"  any\n  chaos kdns-test\n  kubernetes cluster.local bind {{\n    manifests {demo}\n  }}\n"
    p = kdns(".:{port} {\n  bind 127.0.0.1\n" + block + "}\n")
    for _ in range(2):  # a second ask is answered from a template, if one was made
        r = ask(p.port, "web.default.svc.cluster.local.", "ANY", tcp=tcp)
        assert [rd.to_text() for rrset in r.answer for rd in rrset] == ['"ANY obsoleted" "See RFC 8482"']
        assert answer_texts(ask(p.port, "version.bind.", "TXT", rdclass="CH", tcp=tcp)) == ['"kdns-test"']
