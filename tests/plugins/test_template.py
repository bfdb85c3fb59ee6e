"""template: syntax and its errors (FILE:LINE), matching (zones, class, type, regexes, fallthrough),
and a real kdns process answering with the templates CoreDNS's README and OpenShift/musl users
write, over UDP and TCP."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import dns.edns
import pytest

from kdns.corefile import CorefileError
from kdns.plugins import template
from kdns.plugins.template.plugin import MATCHES, TemplatePlugin
from kdns.request import Reply, Request
from tests.support.dnsclient import answer_texts, ask, has_flag, rcode, section_rrsets
from tests.support.process import KdnsProcess
from tests.support.units import context, directive, request
from tests.support.upstream import FakeUpstream, running_upstreams


def plugin(body: str, key: str = ".") -> TemplatePlugin:
    p = template.setup(directive(body), context(body, key))
    assert isinstance(p, TemplatePlugin)
    return p


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("template IN", 2, "wrong argument count: want at least 2, got 1"),
        ("template in A", 2, "invalid query class in"),  # exact spelling, as CoreDNS
        ("template IN FOO", 2, "invalid RR class FOO"),
        ("template IN A {\n match (a\n}", 3, "invalid regex '(a'"),
        ("template IN A {\n match\n}", 3, "wrong argument count"),
        ("template IN A {\n answer \"{{ if .Name }}x{{ end }}\"\n}", 3,
         "could not compile template: {{ if .Name }}x{{ end }}, template: answer: {{if}} is not supported"),
        ("template IN A {\n authority \"{{ .Nope }}\"\n}", 3, "can't evaluate field Nope"),
        ("template IN A {\n rcode NOPE\n}", 3, "unknown rcode NOPE"),
        ("template IN A {\n rcode nxdomain\n}", 3, "unknown rcode nxdomain"),
        ("template IN A {\n ederror x\n}", 3, "extended DNS error code 'x' is not a whole number"),
        ("template IN A {\n var ip group('ip')\n}", 3, "'var' (expr-lang expressions) is not supported"),
        ("template IN A {\n expr true\n}", 3, "'expr' (expr-lang expressions) is not supported"),
        ("template IN A {\n frob\n}", 3, "unknown property 'frob'"),
    ],
)  # fmt: skip
def test_bad_syntax(text: str, line: int, message: str) -> None:
    with pytest.raises(CorefileError, match=re.escape(message)) as e:
        plugin(text)
    assert e.value.line == line and str(e.value).startswith(f"Corefile:{line} - Error during parsing: ")


def test_every_template_line_is_one_plugin_in_order() -> None:
    p = plugin(
        "template IN A a.example {\n rcode NXDOMAIN\n}\ntemplate ANY ANY\ntemplate CH TXT b.example",
        "example",
    )
    assert [(r.qclass, r.qtype, r.zones) for r in p.rules] == [
        (1, 1, ("a.example.",)), (255, 255, ("example.",)), (3, 16, ("b.example.",))
    ]  # fmt: skip
    assert p.zones == ("a.example.", "example.", "b.example.")
    assert [r.pattern for r in p.rules[1].regexes] == [".*"]  # no match: everything


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with running_upstreams() as make:
        up = make()
        up.add("google.example.", "A", "192.0.2.100")
        up.add("www.corp.example.", "A", "192.0.2.7")
        yield up


CORE = """.:{port} {
    bind 127.0.0.1
    template IN A example {
        match (^|[.])ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
        answer "{{ .Name }} 60 IN A {{ .Group.a }}.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
        fallthrough
    }
    template IN A example {
        match "^ip0a(?P<b>[a-f0-9]{2})(?P<c>[a-f0-9]{2})(?P<d>[a-f0-9]{2})[.]example[.]$"
        answer "{{.Name}} 60 IN A 10.{{parseInt .Group.b 16 8}}.{{parseInt .Group.c 16 8}}.HEX_D"
        fallthrough
    }
    template IN PTR in-addr.arpa {
        match ^(?P<d>[0-9]*)[.](?P<c>[0-9]*)[.](?P<b>[0-9]*)[.](?P<a>[0-9]*)[.]in-addr[.]arpa[.]$
        answer "{{ .Name }} 60 IN PTR ip-{{ .Group.a }}-{{ .Group.b }}-{{ .Group.c }}-{{ .Group.d }}.example."
    }
    template ANY ANY invalid {
        rcode NXDOMAIN
        authority "invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)"
        ederror 21 "Blocked according to RFC2606"
    }
    template IN ANY foogle.example {
        match "^foogle\\.example\\.$"
        answer "foogle.example 60 IN CNAME google.example"
    }
    template ANY AAAA corp.example {
        rcode NOERROR
    }
    template IN MX strict.example {
        match ^mail[.]
    }
    forward . 127.0.0.1:UPSTREAM
}
"""


@pytest.fixture
def server(kdns: Callable[..., KdnsProcess], upstream: FakeUpstream) -> KdnsProcess:
    return kdns(CORE.replace("UPSTREAM", str(upstream.port)).replace("HEX_D", "{{parseInt .Group.d 16 8}}"))


@pytest.mark.parametrize("tcp", [False, True])
def test_regex_groups_make_a_and_ptr(server: KdnsProcess, tcp: bool) -> None:
    r = ask(server.port, "Foo.IP-10-1-2-3.example.", tcp=tcp)
    assert rcode(r) == "NOERROR" and has_flag(r, "AA")
    assert section_rrsets(r.answer) == [("foo.ip-10-1-2-3.example.", "A", 60, ["10.1.2.3"])]  # .Name: lower
    # The first template falls through to the second, whose regex matches; parseInt decodes the hex.
    r = ask(server.port, "ip0a7b7b7b.example.", tcp=tcp)
    assert section_rrsets(r.answer) == [("ip0a7b7b7b.example.", "A", 60, ["10.123.123.123"])]
    r = ask(server.port, "4.3.2.1.in-addr.arpa.", "PTR", tcp=tcp)
    assert section_rrsets(r.answer) == [("4.3.2.1.in-addr.arpa.", "PTR", 60, ["ip-1-2-3-4.example."])]


@pytest.mark.parametrize("tcp", [False, True])
def test_fallthrough_and_its_absence(server: KdnsProcess, upstream: FakeUpstream, tcp: bool) -> None:
    # In `example` but no regex matches: fallthrough, so forward answers (NXDOMAIN upstream).
    assert rcode(ask(server.port, "www.example.", tcp=tcp)) == "NXDOMAIN"
    assert upstream.seen("www.example.")
    # In in-addr.arpa without fallthrough: SERVFAIL, written by template (AA=0).
    r = ask(server.port, "x.in-addr.arpa.", "PTR", tcp=tcp)
    assert rcode(r) == "SERVFAIL" and not has_flag(r, "AA")
    # The wrong type for a template's zone is not its business: forward.
    assert rcode(ask(server.port, "ip-1-2-3-4.example.", "TXT", tcp=tcp)) == "NXDOMAIN"
    # A template with a regex and no answer or fallthrough: a match is an empty NOERROR, no match fails.
    assert rcode(ask(server.port, "mail.strict.example.", "MX", tcp=tcp)) == "NOERROR"
    assert rcode(ask(server.port, "www.strict.example.", "MX", tcp=tcp)) == "SERVFAIL"


@pytest.mark.parametrize("tcp", [False, True])
def test_nxdomain_with_soa_and_extended_error(server: KdnsProcess, tcp: bool) -> None:
    r = ask(server.port, "anything.invalid.", "AAAA", tcp=tcp)
    assert rcode(r) == "NXDOMAIN" and not r.answer
    assert section_rrsets(r.authority) == [
        ("invalid.", "SOA", 60, ["ns.invalid. hostmaster.invalid. 1 60 60 60 60"])
    ]
    (ede,) = [o for o in r.options if o.otype == dns.edns.EDE]
    assert ede.code == 21 and ede.text == "Blocked according to RFC2606"
    plain = ask(server.port, "anything.invalid.", tcp=tcp, edns=False)
    assert rcode(plain) == "NXDOMAIN" and plain.edns == -1  # no OPT, so no EDE, for a plain client


@pytest.mark.parametrize("tcp", [False, True])
def test_aaaa_suppression_and_a_fabricated_cname(server: KdnsProcess, tcp: bool) -> None:
    r = ask(server.port, "www.corp.example.", "AAAA", tcp=tcp)
    assert rcode(r) == "NOERROR" and not r.answer and has_flag(r, "AA")
    assert answer_texts(ask(server.port, "www.corp.example.", tcp=tcp)) == ["192.0.2.7"]  # A: forwarded
    r = ask(server.port, "foogle.example.", tcp=tcp)
    assert [(n, t, d) for n, t, _, d in section_rrsets(r.answer)] == [
        ("foogle.example.", "CNAME", ["google.example."]),
        ("google.example.", "A", ["192.0.2.100"]),  # looked up through the whole server
    ]


def test_a_bad_rr_is_servfail(kdns: Callable[..., KdnsProcess]) -> None:
    bad = '  template IN A {\n    answer "{{ .Name }} 60 IN A not-an-ip"\n  }\n'
    p = kdns(".:{port} {\n  bind 127.0.0.1\n" + bad + "}\n")
    assert rcode(ask(p.port, "x.test.")) == "SERVFAIL"


async def test_matches_are_counted() -> None:
    counter = MATCHES.labels("dns://:53", "example.", "", "IN", "A")
    before = counter._value.get()
    p = plugin('template IN A example {\n answer "{{ .Name }} 5 IN A 192.0.2.1"\n}', "example")

    async def nxt(_: Request) -> Reply:
        raise AssertionError("template answers")

    reply = await p.serve(request("a.example."), nxt)
    assert [str(rr.rdata) for rr in reply.message.rr] == ["192.0.2.1"]
    assert counter._value.get() == before + 1
