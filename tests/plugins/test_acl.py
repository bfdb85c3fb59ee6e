"""acl: policy syntax and its errors, the first-match rules, and a real kdns process queried from
different loopback source addresses (127.0.0.0/8 is all local on Linux) over UDP and TCP: allowed,
blocked (REFUSED + EDE 15), filtered (NOERROR + EDE 17) and dropped (no reply)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

import dns.edns
import dns.exception
import pytest

from kdns.corefile import CorefileError
from kdns.plugins import acl
from tests.support.dnsclient import ask, ede, rcode
from tests.support.process import KdnsProcess
from tests.support.units import context, directive


def parse(body: str, key: str = ".") -> acl.Acl:
    plugin = acl.setup(directive(body), context(body, key))
    assert isinstance(plugin, acl.Acl)
    return plugin


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("acl {\n permit net 10.0.0.0/8\n}", "unexpected token 'permit'; expect 'allow', 'block'"),
        ("acl {\n block from 10.0.0.0/8\n}", "unexpected token 'from'; expect 'type | net'"),
        ("acl {\n block net\n}", "no token specified in 'net' section"),
        ("acl {\n block type\n}", "no token specified in 'type' section"),
        ("acl {\n block type BOGUS\n}", "unexpected token 'BOGUS'; expect legal QTYPE"),
        ("acl {\n block type a\n}", "unexpected token 'a'"),  # case-sensitive, as miekg/dns's table
        ("acl {\n block net 10.0.0.0/33\n}", "illegal CIDR notation '10.0.0.0/33'"),
        ("acl {\n block net example.com\n}", "illegal CIDR notation"),
    ],
)
def test_bad_syntax(text: str, message: str) -> None:
    with pytest.raises(CorefileError, match=re.escape(message)) as e:
        parse(text)
    assert e.value.line == 3  # the policy's own line


def test_policies_and_defaults() -> None:
    plugin = parse(
        "acl example.org {\n allow net 192.168.1.5/24 ::1\n block type A AAAA type MX\n filter type *\n}"
    )
    (rule,) = plugin.rules
    assert rule.zones == ("example.org.",)
    allow, block, filt = rule.policies
    assert allow.action is acl.Action.ALLOW and allow.qtypes is None
    assert allow.nets == (ipaddress.ip_network("192.168.1.0/24"), ipaddress.ip_network("::1/128"))
    assert block.qtypes == frozenset({1, 28, 15}) and block.nets is None  # sections add up
    assert filt.qtypes is None and filt.nets is None


def test_every_acl_line_of_a_block_is_one_rule_in_order() -> None:
    body = "acl a.example {\n block\n}\nacl {\n allow net 10.0.0.0/8\n}"
    plugin = parse(body, key="example")
    assert [r.zones for r in plugin.rules] == [("a.example.",), ("example.",)]


CORE = """.:{port} {
    bind 127.0.0.1
    acl example.org {
        allow net 127.0.0.1
        drop net 127.0.0.4
        block type A net 127.0.0.2/32
        filter net 127.0.0.3
    }
    acl {
        block net 127.0.0.1 127.0.0.5
    }
    whoami
}
"""


@pytest.mark.parametrize("tcp", [False, True])
def test_actions_from_real_sources(kdns: Callable[..., KdnsProcess], tcp: bool) -> None:
    p = kdns(CORE)
    assert rcode(ask(p.port, "www.example.org.", tcp=tcp, source="127.0.0.1")) == "NOERROR"
    blocked = ask(p.port, "www.example.org.", tcp=tcp, source="127.0.0.2")
    assert rcode(blocked) == "REFUSED" and not blocked.answer
    assert ede(blocked) == [(15, "blocked by the server's acl")]
    # block is for type A only: the next policy (filter) does not match 127.0.0.2, so it is allowed
    assert rcode(ask(p.port, "www.example.org.", "AAAA", tcp=tcp, source="127.0.0.2")) == "NOERROR"
    filtered = ask(p.port, "www.example.org.", "TXT", tcp=tcp, source="127.0.0.3")
    assert rcode(filtered) == "NOERROR" and ede(filtered) == [(17, "filtered by the server's acl")]
    assert not filtered.answer and not filtered.additional  # whoami's records would be here
    plain = ask(p.port, "www.example.org.", tcp=tcp, source="127.0.0.3", edns=False)
    assert rcode(plain) == "NOERROR" and plain.edns == -1  # no OPT for a client that sent none
    with pytest.raises((dns.exception.Timeout, EOFError, ConnectionError)):
        ask(p.port, "www.example.org.", tcp=tcp, source="127.0.0.4", timeout=1)
    # Outside example.org only the second rule applies.
    assert rcode(ask(p.port, "other.test.", tcp=tcp, source="127.0.0.2")) == "NOERROR"
    assert rcode(ask(p.port, "other.test.", tcp=tcp, source="127.0.0.1")) == "REFUSED"
    # A rule with no matching policy hands the query to the next rule...
    assert rcode(ask(p.port, "www.example.org.", tcp=tcp, source="127.0.0.5")) == "REFUSED"
    # ...but an allow ends the checks: 127.0.0.1 was allowed above, the second rule's block unread.


def test_acl_sees_the_rewritten_name(kdns: Callable[..., KdnsProcess]) -> None:
    """CoreDNS ≥ 1.14.2's order, which kdns runs: rewrite before acl, so a rewrite cannot be used to
    reach a name the ACL protects (in v1.11–v1.12 acl ran first and checked the name as asked)."""
    p = kdns(
        ".:{port} {\n  bind 127.0.0.1\n  acl secret.example {\n    block\n  }\n"
        "  rewrite name exact open.example. secret.example.\n  whoami\n}\n"
    )
    assert rcode(ask(p.port, "secret.example.")) == "REFUSED"
    assert rcode(ask(p.port, "open.example.")) == "REFUSED"
    assert rcode(ask(p.port, "other.example.")) == "NOERROR"
