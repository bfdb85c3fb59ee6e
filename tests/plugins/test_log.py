"""log: the format parser (CoreDNS's replacer rules), response classes, Corefile syntax, and the
exact query-log lines of a real kdns process."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import dns.flags
import dns.message
import dns.query
import pytest
from dnslib import AAAA, CNAME, QTYPE, RCODE, RR, SOA, A, DNSRecord

from kdns.corefile import CorefileError
from kdns.plugin import PluginError
from kdns.plugins import log
from kdns.request import Reply, Request
from tests.support.dnsclient import ask, rcode
from tests.support.http import until
from tests.support.process import KdnsProcess
from tests.support.units import context, directive, kdns_log, request
from tests.support.upstream import FakeUpstream, running_upstreams

Kdns = Callable[..., KdnsProcess]


def setup(text: str) -> log.Log:
    plugin = log.setup(directive(text), context(text))
    assert isinstance(plugin, log.Log)
    return plugin


def render(
    fmt: str, r: Request | None = None, message: DNSRecord | None = None, seconds: float = 0.25
) -> str:
    r = r or request()
    message = message or r.reply()
    answered = log.Answered(message, message.pack(), seconds)
    return log.Rule(".", log.parse_format(directive("log"), fmt), frozenset({"all"})).line(r, answered)


# --- format (unit) ---------------------------------------------------------------------------------


def test_common_format_fields() -> None:
    r = request("ExAmple.ORG.", "AAAA", client=("2001:db8::7", 5353), do=True, edns=4096)
    reply = r.reply(aa=True)
    reply.add_answer(RR("example.org.", QTYPE.AAAA, rdata=AAAA("2001:db8::1")))
    line = render(log.COMMON_FORMAT, r, reply, 0.0001234)
    wire = reply.pack()
    assert line == (
        f'[2001:db8::7]:5353 - {r.message.header.id} "AAAA IN example.org. udp {r.size} true 4096" '
        f"NOERROR qr,aa,rd {len(wire)} 0.0001234s"
    )


def test_bufsize_is_64k_over_tcp_and_512_without_edns() -> None:
    assert render("{>bufsize}", request(proto="tcp")) == "65535"
    assert render("{>bufsize}", request(edns=None)) == "512"
    assert render("{>bufsize}", request(edns=100)) == "512"  # RFC 6891 §6.2.5: below 512 means 512


def test_combined_adds_the_opcode() -> None:
    assert render(log.COMBINED_FORMAT).endswith(' "0"')


def test_replacer_rules() -> None:
    assert render("{ {type} }") == "{ A }"  # nearest { before each }
    assert render("A } {name}") == "A } example.org."
    assert render("{nope} {type}") == "{nope} A"  # unknown labels stay literal
    assert render("{/kubernetes/client-namespace}") == "-"  # metadata: none in kdns
    assert render("{rcode} {duration}", message=request().reply(RCODE.NXDOMAIN), seconds=2.0) == "NXDOMAIN 2s"
    assert render("{rcode}", message=request().reply(23)) == "BADCOOKIE"
    assert render("{rcode}", message=request().reply(3841)) == "3841"


def test_local_is_refused_with_a_clear_error() -> None:
    with pytest.raises(CorefileError, match=r"\{local\} is not supported"):
        setup('log . "{local} {name}"')


# --- classes (unit) --------------------------------------------------------------------------------


def soa() -> RR:
    return RR("example.org.", QTYPE.SOA, rdata=SOA("ns.example.org.", "h.example.org.", (1, 2, 3, 4, 5)))


def test_classify() -> None:
    q = request().message
    answer = q.reply()
    answer.add_answer(RR("example.org.", QTYPE.A, rdata=A("192.0.2.1")))
    cname_only = q.reply()
    cname_only.add_answer(RR("example.org.", QTYPE.CNAME, rdata=CNAME("x.example.net.")))
    nxdomain = q.reply()
    nxdomain.header.rcode = RCODE.NXDOMAIN
    nxdomain.add_auth(soa())
    nodata = q.reply()
    nodata.add_auth(soa())
    servfail = q.reply()
    servfail.header.rcode = RCODE.SERVFAIL
    refused = q.reply()
    refused.header.rcode = RCODE.REFUSED
    replies = (answer, cname_only, nxdomain, nodata, servfail, refused, q.reply())
    assert [log.classify(m) for m in replies] == [
        "success", "denial", "denial", "denial", "error", "error", "success",
    ]  # fmt: skip


# --- Corefile syntax (unit) ------------------------------------------------------------------------


def test_syntax() -> None:
    plain = setup("log")
    assert [(r.zone, r.classes) for r in plain.rules] == [(".", frozenset({"all"}))]
    assert plain.rules[0].format == log.parse_format(directive("log"), log.COMMON_FORMAT)
    one = setup("log example.org")
    assert [r.zone for r in one.rules] == ["example.org."]
    many = setup('log Example.org example.net "{name} {type}" {\n class denial error\n class success\n}')
    assert [r.zone for r in many.rules] == ["example.org.", "example.net."]
    assert many.rules[0].classes == frozenset({"denial", "error", "success"})
    assert len(many.rules[0].format) == 3
    combined = setup("log . {combined}")
    assert combined.rules[0].format == log.parse_format(directive("log"), log.COMBINED_FORMAT)
    slow = setup("log {\n minDuration\n}")
    assert slow.rules[0].min_duration == 0.1
    assert setup("log {\n minDuration 2s\n}").rules[0].min_duration == 2.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("log {\n class\n}", "wrong argument count"),
        ("log {\n class sometimes\n}", "invalid Class: sometimes"),
        ("log {\n minDuration 1s 2s\n}", "wrong argument count"),
        ("log {\n minDuration soon\n}", "invalid duration 'soon'"),
        ("log {\n format x\n}", "unknown property 'format'"),
    ],
)
def test_bad_syntax(text: str, message: str) -> None:
    with pytest.raises(CorefileError, match=re.escape(message)):
        setup(text)


async def test_only_the_first_matching_rule_logs_and_unmatched_names_are_silent() -> None:
    plugin = setup('log example.org "A {name}"')
    r = request("www.example.org.")

    async def answer(req: Request) -> Reply:
        return Reply(req.reply(), "x")

    with kdns_log() as out:
        await plugin.serve(r, answer)
        await plugin.serve(request("example.net."), answer)
    assert out.getvalue() == "[INFO] A www.example.org.\n"


async def test_a_failing_query_is_logged_as_the_servfail_it_becomes() -> None:
    r = request()

    async def fail(_: Request) -> Reply:
        raise PluginError("upstream down")

    with kdns_log() as out, pytest.raises(PluginError):
        await setup('log . "{rcode} {>rflags} {rsize}" {\n class error\n}').serve(r, fail)
    assert out.getvalue() == f"[INFO] SERVFAIL qr,rd {len(r.reply(RCODE.SERVFAIL).pack())}\n"


# --- a real server ---------------------------------------------------------------------------------

LINE = re.compile(
    r'^\[INFO\] (?P<remote>\S+):(?P<port>\d+) - (?P<id>\d+) "(?P<type>\S+) IN (?P<name>\S+) '
    r'(?P<proto>udp|tcp) (?P<size>\d+) (?P<do>true|false) (?P<bufsize>\d+)" '
    r"(?P<rcode>\S+) (?P<flags>\S+) (?P<rsize>\d+) (?P<duration>\d+(\.\d+)?)s$"
)


def query_lines(p: KdnsProcess) -> list[re.Match[str]]:
    return [m for m in map(LINE.match, p.logs().splitlines()) if m]


def test_common_log_lines_of_a_real_server(kdns: Kdns) -> None:
    p = kdns(".:{port} {\n    log\n    whoami\n}\n")
    q = dns.message.make_query("Who.Example.org.", "A", use_edns=0, payload=1232, want_dnssec=True)
    udp = dns.query.udp(q, "127.0.0.1", port=p.port, timeout=5)
    tq = dns.message.make_query("tcp.example.org.", "TXT", use_edns=-1)
    tcp = dns.query.tcp(tq, "127.0.0.1", port=p.port, timeout=5)
    lines = until(lambda: (m := query_lines(p)) and len(m) >= 2 and m, "two query lines")
    by_name = {m["name"]: m for m in lines}
    u, t = by_name["who.example.org."], by_name["tcp.example.org."]
    assert (u["remote"], u["id"], u["type"], u["proto"], u["do"], u["bufsize"]) == (
        "127.0.0.1", str(q.id), "A", "udp", "true", "1232",
    )  # fmt: skip
    assert (int(u["size"]), u["rcode"], u["flags"], int(u["rsize"])) == (
        len(q.to_wire()), "NOERROR", "qr,aa,rd", len(udp.to_wire()),
    )  # fmt: skip
    assert (t["id"], t["type"], t["proto"], t["do"], t["bufsize"], int(t["rsize"])) == (
        str(tq.id), "TXT", "tcp", "false", "65535", len(tcp.to_wire()),
    )  # fmt: skip
    assert udp.flags & dns.flags.AA and float(u["duration"]) > 0


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with running_upstreams() as make:
        up = make()
        up.add("here.example.org.", "A", "192.0.2.10")
        yield up


def test_class_denial_logs_only_negative_answers(kdns: Kdns, upstream: FakeUpstream) -> None:
    p = kdns(
        ".:{port} {\n    log . {\n        class denial\n    }\n"
        f"    forward . 127.0.0.1:{upstream.port}\n}}\n"
    )
    assert rcode(ask(p.port, "here.example.org.")) == "NOERROR"
    assert rcode(ask(p.port, "gone.example.org.")) == "NXDOMAIN"
    assert rcode(ask(p.port, "here.example.org.", "TXT")) == "NOERROR"  # NODATA: a denial too
    until(lambda: len(query_lines(p)) >= 2, "two denial lines")
    logged = [(m["name"], m["type"], m["rcode"]) for m in query_lines(p)]
    assert logged == [("gone.example.org.", "A", "NXDOMAIN"), ("here.example.org.", "TXT", "NOERROR")]
