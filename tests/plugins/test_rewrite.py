"""rewrite: every rule type's syntax and errors (CoreDNS's wording), what each rule does to the
question and to the reply (unit, with a recording next plugin), and a real kdns process with the
rule shapes AKS's and k3s's coredns-custom documentation use, over UDP and TCP, in front of hosts
and of a fake upstream that shows what it was asked."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dnslib import CNAME, MX, QTYPE, RCODE, RR, SRV, A, DNSRecord

from kdns.corefile import CorefileError
from kdns.plugin import PluginError
from kdns.plugins import rewrite
from kdns.plugins.rewrite.plugin import Rewrite
from kdns.request import Reply, Request
from tests.support.dnsclient import answer_texts, ask, rcode, section_rrsets
from tests.support.process import KdnsProcess
from tests.support.units import context, directive, request
from tests.support.upstream import FakeUpstream, running_upstreams


def plugin(body: str) -> Rewrite:
    p = rewrite.setup(directive(body), context(body))
    assert isinstance(p, Rewrite)
    return p


# --- syntax -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rewrite", "no rule type specified for rewrite"),
        ("rewrite stop", "stop rule must begin with a rule type"),
        ("rewrite continue {\n}", "continue rule must begin with a rule type"),
        ("rewrite answer name a b", "response rewrites must begin with a name rule"),
        ("rewrite frob a b", 'invalid rule type "frob"'),
        ("rewrite name a", "too few arguments for a name rule"),
        ("rewrite name fuzzy a b", "name rule supports only exact, prefix, suffix, substring, and regex"),
        ("rewrite name regex (a b", "invalid regex pattern in a name rule '(a'"),
        ("rewrite name regex (a) {1}.{2}.x", "uses more subexpressions than its corresponding matching"),
        ("rewrite name regex (a)\\1 x", "invalid escape sequence"),  # RE2, as Go: no backreferences
        ("rewrite name regex a b answer", "invalid arguments for regex rule"),
        ("rewrite name regex a b extra word", "exceeded the number of arguments for a non-answer rule"),
        ("rewrite name regex a b answer frob x y", 'invalid type "frob" for answer rule'),
        ("rewrite name regex a b answer name x", "name answer rule for regex rule: 2 arguments required"),
        ("rewrite name suffix a b answer auto answer name x y", "auto name answer rule cannot be combined"),
        ("rewrite type A", "type rules must have exactly two arguments"),
        ("rewrite type A BOGUS", 'invalid type "BOGUS"'),
        ("rewrite class CH XX", 'invalid class "XX"'),
        ("rewrite ttl example.com", "too few (1) arguments for a ttl rule"),
        ("rewrite ttl example.com 10-5", "invalid TTL '10-5' for a ttl rule"),
        ("rewrite ttl example.com -", "invalid TTL '-'"),
        (
            "rewrite ttl fuzzy example.com 5",
            "ttl rule supports only exact, prefix, suffix, substring, and regex",
        ),
        ("rewrite ttl exact a b 5 6", "many few arguments for a ttl rule"),
        ("rewrite rcode example.com SERVFAIL", "too few (2) arguments for a rcode rule"),
        ("rewrite rcode example.com SERVFAIL NOPE", "invalid replacement RCODE 'NOPE'"),
        ("rewrite rcode example.com 24 0", "invalid matching RCODE '24'"),
        ("rewrite cname a", "too few (1) arguments for a cname rule"),
        ("rewrite cname fuzzy a b", "unknown cname rewrite type: fuzzy"),
        ("rewrite edns0 local", "too few arguments for an EDNS0 rule"),
        ("rewrite edns0 local frob 1 2", 'invalid action: "frob"'),
        ("rewrite edns0 local set 0xffee", "EDNS0 local rules require three or four args"),
        ("rewrite edns0 local set 0x1ffff abc", "value out of range"),
        ("rewrite edns0 local set 0xffee 0xzz", "invalid hex data '0xzz'"),
        ("rewrite edns0 local set 0xffee {server_ip}", "variable {server_ip} is not supported by kdns"),
        ("rewrite edns0 local set 0xffee {kubernetes/client-namespace}", "unsupported variable name"),
        ("rewrite edns0 local unset", "local unset action requires exactly two arguments"),
        ("rewrite edns0 nsid set x", "EDNS0 NSID rules can accept no more than one arg"),
        ("rewrite edns0 subnet set 33 56", "invalid IPv4 bit mask length 33"),
        ("rewrite edns0 subnet set 24 129", "invalid IPv6 bit mask length 129"),
        ("rewrite edns0 subnet unset x", "subnet unset action requires exactly one argument"),
        ("rewrite edns0 cookie set 1", 'invalid rule type "cookie"'),
        ("rewrite name a b {\n answer auto\n}", "either on the line or in a block, not both"),
    ],
)
def test_bad_rules(text: str, message: str) -> None:
    with pytest.raises(CorefileError, match=re.escape(message)) as e:
        plugin(text)
    assert e.value.line == 2 and str(e.value).startswith("Corefile:2 - Error during parsing: 'rewrite': ")


def test_rules_of_all_lines_in_order_and_block_forms() -> None:
    body = (
        "rewrite name exact a.example. b.example.\n"
        "rewrite continue {\n  ttl regex .*\\.example\\. 30-300\n}\n"
        "rewrite stop {\n  name regex (.*)\\.x\\.example {1}.y.example\n"
        "  answer name (.*)\\.y\\.example {1}.x.example\n}"
    )
    p = plugin(body)
    assert [type(r).__name__ for r in p.rules] == ["NameRule", "MatchRule", "NameRule"]
    assert [r.mode for r in p.rules] == ["stop", "continue", "stop"]


# --- what the rules do ------------------------------------------------------------------------------


class Recorder:
    """A next plugin that answers every question with one A record for the name it was asked."""

    def __init__(self, extra: Callable[[DNSRecord, Request], None] | None = None, fail: bool = False) -> None:
        self.seen: list[Request] = []
        self.extra = extra
        self.fail = fail

    async def __call__(self, req: Request) -> Reply:
        self.seen.append(req)
        if self.fail:
            raise PluginError("upstream down")
        msg = req.reply(aa=True)
        msg.add_answer(RR(req.qname, QTYPE.A, ttl=60, rdata=A("192.0.2.1")))
        if self.extra:
            self.extra(msg, req)
        return Reply(msg, "hosts")


async def run(
    body: str, name: str, qtype: str = "A", nxt: Recorder | None = None, **kw: object
) -> tuple[Reply, Recorder]:
    nxt = nxt or Recorder()
    reply = await plugin(body).serve(request(name, qtype, **kw), nxt)  # type: ignore[arg-type]
    return reply, nxt


def owners(msg: DNSRecord) -> list[str]:
    return [str(rr.rname) for rr in msg.rr]


@pytest.mark.parametrize(
    ("rule", "asked", "sent"),
    [
        ("name exact Foo.Example.org bar.example.org", "foo.EXAMPLE.org.", "bar.example.org."),
        ("name prefix foo bar", "foo.example.org.", "bar.example.org."),  # FROM/TO made absolute: "foo."
        ("name suffix .schmoogle.com. .google.com.", "www.schmoogle.com.", "www.google.com."),
        ("name substring demo.io default.svc.cluster.local", "nginx.demo.io.",
         "nginx.default.svc.cluster.local."),
        ("name regex (.*)-(us-west-1)\\.example\\.org {1}.service.{2}.consul", "ftp-us-west-1.example.org.",
         "ftp.service.us-west-1.consul."),
        ("name regex ^NOPE$ x", "nope.", "nope."),  # names are matched lower-cased
    ],
)  # fmt: skip
async def test_name_rules_change_the_question(rule: str, asked: str, sent: str) -> None:
    reply, nxt = await run(f"rewrite {rule}", asked)
    assert nxt.seen[-1].qname == sent
    assert str(reply.message.q.qname) == asked  # the client's question comes back


async def test_exact_rules_map_the_answer_back() -> None:
    reply, _ = await run("rewrite name exact red.example. blue.example.", "Red.Example.")
    assert owners(reply.message) == ["red.example."]


async def test_substring_without_answer_rules_leaves_answers_as_they_came() -> None:
    reply, _ = await run("rewrite name substring demo.io default.svc.cluster.local", "nginx.demo.io.")
    assert owners(reply.message) == ["nginx.default.svc.cluster.local."]  # as CoreDNS: no answer rule


async def test_answer_auto_maps_owners_and_values_back() -> None:
    def extra(msg: DNSRecord, req: Request) -> None:
        msg.add_answer(RR("alias.corp.internal.", QTYPE.CNAME, rdata=CNAME("www.corp.internal.")))
        msg.add_answer(RR(req.qname, QTYPE.MX, rdata=MX("mail.corp.internal.")))

    body = "rewrite name suffix .corp.example. .corp.internal. answer auto"
    reply, nxt = await run(body, "www.corp.example.", nxt=Recorder(extra))
    assert nxt.seen[0].qname == "www.corp.internal."
    texts = [str(rr).split() for rr in reply.message.rr]
    assert [t[0] for t in texts] == ["www.corp.example.", "alias.corp.example.", "www.corp.example."]
    assert texts[1][-1] == "www.corp.example." and texts[2][-1] == "mail.corp.example."


async def test_regex_with_answer_name_and_value() -> None:
    def extra(msg: DNSRecord, req: Request) -> None:
        msg.add_ar(RR(req.qname, QTYPE.SRV, rdata=SRV(0, 100, 80, "web.default.svc.cluster.local.")))

    body = (
        "rewrite stop {\n  name regex (.*)\\.example\\.com {1}.default.svc.cluster.local\n"
        "  answer name (.*)\\.default\\.svc\\.cluster\\.local {1}.example.com\n"
        "  answer value (.*)\\.default\\.svc\\.cluster\\.local\\. {1}.example.com\n}"
    )
    reply, nxt = await run(body, "web.example.com.", nxt=Recorder(extra))
    assert nxt.seen[0].qname == "web.default.svc.cluster.local."
    assert owners(reply.message) == ["web.example.com."]
    (srv,) = [rr for rr in reply.message.ar if rr.rtype == QTYPE.SRV]
    assert str(srv.rname) == "web.example.com." and str(srv.rdata.target) == "web.example.com."


async def test_stop_ends_the_rules_continue_does_not() -> None:
    body = "rewrite continue name exact a.example. b.example.\nrewrite name exact b.example. c.example.\n" \
           "rewrite name exact c.example. d.example."  # fmt: skip
    _, nxt = await run(body, "a.example.")
    assert nxt.seen[0].qname == "c.example."  # the second rule stopped the third


async def test_no_rule_applies_the_request_passes_untouched() -> None:
    reply, nxt = await run("rewrite name exact a.example. b.example.", "other.example.")
    assert nxt.seen[0].qname == "other.example." and reply.plugin == "hosts"


async def test_type_and_class_rules() -> None:
    _, nxt = await run("rewrite type ANY HINFO", "x.example.", "ANY")
    assert nxt.seen[0].qtype == QTYPE.HINFO and nxt.seen[0].message.q.qtype == QTYPE.HINFO
    _, nxt = await run("rewrite type AAAA A", "x.example.", "A")
    assert nxt.seen[0].qtype == QTYPE.A  # no match: untouched


@pytest.mark.parametrize(
    ("spec", "ttl"), [("15", 15), ("100-200", 100), ("-30", 30), ("90-", 90), ("10-", 60)]
)
async def test_ttl_rule(spec: str, ttl: int) -> None:
    reply, _ = await run(f"rewrite ttl regex .*\\.example\\. {spec}", "x.example.")
    assert [int(rr.ttl) for rr in reply.message.rr] == [ttl]
    assert reply.message.ar[0].rtype == QTYPE.OPT and int(reply.message.ar[0].ttl) == 0  # OPT untouched


async def test_rcode_rule_also_covers_a_failure_behind_it() -> None:
    def servfail(msg: DNSRecord, req: Request) -> None:
        msg.header.rcode = RCODE.SERVFAIL

    body = "rewrite continue {\n  rcode regex (.*)\\.example\\. SERVFAIL NOERROR\n}"
    reply, _ = await run(body, "x.example.", nxt=Recorder(servfail))
    assert reply.message.header.rcode == RCODE.NOERROR
    reply, _ = await run(body, "x.example.", nxt=Recorder(fail=True))
    assert reply.message.header.rcode == RCODE.NOERROR and str(reply.message.q.qname) == "x.example."
    with pytest.raises(PluginError):  # without an rcode rule the failure goes on (to errors, SERVFAIL)
        await run("rewrite name exact x.example. y.example.", "x.example.", nxt=Recorder(fail=True))


async def test_a_name_that_is_not_a_domain_name_fails() -> None:
    with pytest.raises(PluginError, match="invalid name after rewrite"):
        await run("rewrite name regex (.*) {1}{1}{1}{1}{1}", "a" * 60 + ".example.")


def options(req: Request) -> list[tuple[int, bytes]]:
    opt = next(rr for rr in req.message.ar if rr.rtype == QTYPE.OPT)
    return [(o.code, bytes(o.data)) for o in opt.rdata]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("edns0 local set 0xffee 0x61626364", [(0xFFEE, b"abcd")]),
        ("edns0 local set 65518 abcd", [(0xFFEE, b"abcd")]),
        ("edns0 local append 0xffee {qname}", [(0xFFEE, b"x.example.")]),
        ("edns0 local set 0xffee {qtype}", [(0xFFEE, b"\x00\x1c")]),
        ("edns0 local set 0xffee {client_ip}", [(0xFFEE, bytes([127, 0, 0, 1]))]),
        ("edns0 local set 0xffee {client_port}", [(0xFFEE, (40000).to_bytes(2, "big"))]),
        ("edns0 local set 0xffee {protocol}", [(0xFFEE, b"udp")]),
        ("edns0 local replace 0xffee abcd", []),  # nothing to replace; the OPT exists all the same
        ("edns0 nsid set", [(3, b"")]),
        ("edns0 subnet set 24 56", [(8, bytes([0, 1, 24, 0, 127, 0, 0]))]),
        ("edns0 subnet set 0 56", [(8, bytes([0, 1, 0, 0]))]),
    ],
)
async def test_edns0_rules(rule: str, expected: list[tuple[int, bytes]]) -> None:
    _, nxt = await run(f"rewrite {rule}", "x.example.", "AAAA")
    assert options(nxt.seen[0]) == expected


async def test_edns0_on_a_query_without_opt_adds_one_and_the_reply_gets_none() -> None:
    reply, nxt = await run("rewrite edns0 local set 0xffee abcd", "x.example.", edns=None)
    opt = next(rr for rr in nxt.seen[0].message.ar if rr.rtype == QTYPE.OPT)
    assert int(opt.rclass) == 4096 and options(nxt.seen[0]) == [(0xFFEE, b"abcd")]
    assert not [rr for rr in reply.message.ar if rr.rtype == QTYPE.OPT]


async def test_edns0_unset_replace_and_revert() -> None:
    def echo(msg: DNSRecord, req: Request) -> None:  # an upstream that mirrors the options
        opt = next(rr for rr in msg.ar if rr.rtype == QTYPE.OPT)
        opt.rdata = list(next(rr for rr in req.message.ar if rr.rtype == QTYPE.OPT).rdata)

    body = "rewrite continue edns0 local set 0xffee abcd revert\nrewrite edns0 local replace 0xffee bcde"
    reply, nxt = await run(body, "x.example.", nxt=Recorder(echo))
    assert options(nxt.seen[0]) == [(0xFFEE, b"bcde")]
    assert not [o for rr in reply.message.ar if rr.rtype == QTYPE.OPT for o in rr.rdata]  # reverted
    body = "rewrite continue edns0 local set 0xffee abcd\nrewrite edns0 local replace 0xffee bcde revert"
    reply, nxt = await run(body, "x.example.", nxt=Recorder(echo))
    (opt,) = [rr for rr in reply.message.ar if rr.rtype == QTYPE.OPT]
    assert [(o.code, bytes(o.data)) for o in opt.rdata] == [(0xFFEE, b"abcd")]  # the previous value
    _, nxt = await run("rewrite continue edns0 nsid set\nrewrite edns0 nsid unset", "x.example.")
    assert options(nxt.seen[0]) == []


# --- a real server ----------------------------------------------------------------------------------


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with running_upstreams() as make:
        up = make()
        up.add("nginx.default.svc.cluster.local.", "A", "10.96.0.20")
        up.add("web.default.svc.cluster.local.", "A", "10.96.0.30")
        up.add("app.other-cdn.example.", "A", "198.51.100.80")
        yield up


AKS = """.:{port} {
    bind 127.0.0.1
    rewrite name substring demo.io default.svc.cluster.local
    rewrite stop {
        name regex (.*)\\.example\\.com {1}.default.svc.cluster.local
        answer name (.*)\\.default\\.svc\\.cluster\\.local {1}.example.com
    }
    rewrite name suffix .corp.test .default.svc.cluster.local answer auto
    rewrite cname exact app.cdn.example.net. app.other-cdn.example.
    file example.net.zone example.net
    forward . 127.0.0.1:UPSTREAM
}
"""
ZONE = """$ORIGIN example.net.
@ 3600 IN SOA ns.example.net. hostmaster.example.net. 1 7200 1800 86400 60
@ 3600 IN NS ns.example.net.
ns 3600 IN A 192.0.2.53
app 60 IN CNAME app.cdn
app.cdn 60 IN A 192.0.2.80
"""


@pytest.mark.parametrize("tcp", [False, True])
def test_aks_and_k3s_rule_shapes_through_a_real_server(
    kdns: Callable[..., KdnsProcess], upstream: FakeUpstream, tcp: bool, tmp_path: Path
) -> None:
    (tmp_path / "example.net.zone").write_text(ZONE)
    p = kdns(AKS.replace("UPSTREAM", str(upstream.port)))
    r = ask(p.port, "nginx.demo.io.", tcp=tcp)
    assert rcode(r) == "NOERROR" and r.question[0].name.to_text() == "nginx.demo.io."
    assert section_rrsets(r.answer) == [("nginx.default.svc.cluster.local.", "A", 300, ["10.96.0.20"])]
    assert upstream.seen("nginx.default.svc.cluster.local.")
    r = ask(p.port, "web.example.com.", tcp=tcp)
    assert section_rrsets(r.answer) == [("web.example.com.", "A", 300, ["10.96.0.30"])]
    r = ask(p.port, "Web.Corp.Test.", tcp=tcp)
    assert r.question[0].name.to_text() == "Web.Corp.Test."
    assert section_rrsets(r.answer) == [("web.corp.test.", "A", 300, ["10.96.0.30"])]
    # The cname rule: the chain is cut at the rewritten target and the new target looked up anew
    # through the whole server (here: forwarded).
    r = ask(p.port, "app.example.net.", tcp=tcp)
    assert [(n, t, d) for n, t, _, d in section_rrsets(r.answer)] == [
        ("app.example.net.", "CNAME", ["app.other-cdn.example."]),
        ("app.other-cdn.example.", "A", ["198.51.100.80"]),
    ]
    assert answer_texts(ask(p.port, "unrelated.test.", tcp=tcp)) == []


def test_edns0_options_reach_the_upstream(kdns: Callable[..., KdnsProcess], upstream: FakeUpstream) -> None:
    p = kdns(
        ".:{port} {\n  bind 127.0.0.1\n  rewrite continue edns0 local set 0xffee {client_ip}\n"
        f"  rewrite edns0 subnet set 24 56\n  forward . 127.0.0.1:{upstream.port}\n}}\n"
    )
    r = ask(p.port, "nginx.default.svc.cluster.local.", edns=False)
    assert rcode(r) == "NOERROR" and r.edns == -1  # no OPT back to a client that sent none
    (seen,) = upstream.seen("nginx.default.svc.cluster.local.")
    assert seen.options == ((0xFFEE, bytes([127, 0, 0, 1])), (8, bytes([0, 1, 24, 0, 127, 0, 0])))


@pytest.mark.parametrize(
    "first", [b"a.b", b"\xc3\xa9t\xc3\xa9", b"\x01"], ids=["dotted-label", "utf8", "octet"]
)
def test_answer_rules_keep_labels_as_asked(kdns: Callable[..., KdnsProcess], first: bytes) -> None:
    """Response rules read and write reply names as kdns's escaped text, as the question side does:
    the owner comes back as the client's labels (regression, found by fuzz/targets/packet.py: names
    went through dnslib's text, so the owner `a\\.b.real.test.` was not mapped back at all, a \\001
    octet came back as punycode, and an owner dnslib could not encode failed the query). Labels
    that are not UTF-8 cannot be tested here: dnslib cannot parse such a query, which rewrite needs
    (FORMERR; see kdns.request.Request.message)."""
    import dns.name

    p = kdns(".:{port} {\n bind 127.0.0.1\n rewrite stop {\n"
             "  name regex (.*)\\.alias\\.test\\. {1}.real.test.\n  answer auto\n }\n"
             " whoami\n}\n")  # fmt: skip
    asked = dns.name.Name([first, b"alias", b"test", b""])
    for tcp in (False, True):
        reply = ask(p.port, asked.to_text(), tcp=tcp)
        assert rcode(reply) == "NOERROR"
        assert {rr.name for rr in reply.additional if rr.rdtype == 1} == {asked}
