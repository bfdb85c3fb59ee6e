"""The `file` plugin through a real kdns process: every record kind, wildcard, CNAME chain, delegation
and negative case of zones/example.org.zone and of a second zone written here, over UDP and TCP,
against what the RFCs require; zone reloads; setup errors; and, where knotd is installed, the same
zones served by knotd give the same answers.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest

from kdns.corefile import CorefileError
from kdns.plugins.file.plugin import FilePlugin
from kdns.plugins.file.plugin import setup as file_setup
from tests.support.dnsclient import ask, rcode
from tests.support.http import until
from tests.support.ports import free_port
from tests.support.process import ROOT, KdnsProcess, run_kdns
from tests.support.units import context, directive

EXAMPLE = ROOT / "zones" / "example.org.zone"

# A second zone, written by the tests: the cases zones/example.org.zone does not show, and the parser
# features (lower-case class/type, class before TTL, TTL units, generic RDATA). $ORIGIN is absolute: knotd
# refuses a relative one (the parser's unit tests cover that).
SECOND = """\
; written by tests/plugins/test_file.py
$ORIGIN example.test.
@ in soa ns.example.test. hostmaster (
        7       ; serial
        1h 10m 1w
        1m )    ; minimum: negative answers live 60s
@       1h  IN  NS  ns
ns      IN  1h  A   10.0.0.53
www     300 A   10.0.0.80
$TTL 300
loop1   CNAME loop2
loop2   CNAME loop1
selfloop CNAME selfloop
todeleg CNAME host.sub
sub     NS  ns.sub
ns.sub  A   10.0.0.99
sub2    NS  ns
        NS  www
mx2     MX  10 foo.wild
mx3     MX  10 ns.sub
*.wild  A   10.0.0.7
a.*.w   A   10.0.0.8
towild  CNAME x.y.wild
tonodata CNAME www
gen     A   \\# 4 0a000009
c1 CNAME c2
c2 CNAME c3
c3 CNAME c4
c4 CNAME c5
c5 CNAME c6
c6 CNAME c7
c7 CNAME c8
c8 CNAME c9
c9 CNAME c10
c10 CNAME c11
c11 CNAME www
$ORIGIN rel.example.test.
host    A   10.0.0.10
"""
LONG_CHAIN = {f"c{i}.example.test." for i in range(1, 12)}

Rr = tuple[str, str, int, str]  # owner (lower case), type, TTL, RDATA text


def rr(owner: str, rtype: str, rdata: str, ttl: int = 3600) -> Rr:
    return (owner, rtype, ttl, rdata)


def rrs(section: list[dns.rrset.RRset]) -> set[Rr]:
    return {
        (s.name.to_text().lower(), dns.rdatatype.to_text(s.rdtype), s.ttl, rd.to_text())
        for s in section
        for rd in s
    }


@dataclass(frozen=True)
class Want:
    rcode: str
    aa: bool
    answer: set[Rr] = field(default_factory=set)
    authority: set[Rr] = field(default_factory=set)
    additional: set[Rr] = field(default_factory=set)


def check(msg: dns.message.Message, want: Want) -> None:
    got = Want(
        rcode(msg), bool(msg.flags & dns.flags.AA), rrs(msg.answer), rrs(msg.authority), rrs(msg.additional)
    )
    assert got == want


# --- what the RFCs require of zones/example.org.zone --------------------------------------------------

ORG_NS = {rr("example.org.", "NS", "ns1.example.org."), rr("example.org.", "NS", "ns2.example.org.")}
ORG_SOA = "ns1.example.org. hostmaster.example.org. 2024060101 7200 3600 1209600 300"
ORG_NEG = {rr("example.org.", "SOA", ORG_SOA, 300)}  # RFC 2308 §3: TTL = min(SOA TTL, MINIMUM)
WWW = {rr("www.example.org.", "A", "192.0.2.80")}
SUB_NS = {
    rr("sub.example.org.", "NS", "ns1.sub.example.org."),
    rr("sub.example.org.", "NS", "ns.example.net."),
}
SUB_GLUE = {
    rr("ns1.sub.example.org.", "A", "192.0.2.153"),
    rr("ns1.sub.example.org.", "AAAA", "2001:db8::153"),
}


def positive(*answer: Rr, additional: set[Rr] | None = None, authority: set[Rr] = ORG_NS) -> Want:
    return Want("NOERROR", True, set(answer), authority, additional or set())


def nodata(neg: set[Rr] = ORG_NEG, answer: set[Rr] | None = None) -> Want:
    return Want("NOERROR", True, answer or set(), neg)  # RFC 2308 §2.2


def nxdomain(neg: set[Rr] = ORG_NEG, answer: set[Rr] | None = None) -> Want:
    return Want("NXDOMAIN", True, answer or set(), neg)  # RFC 2308 §2.1


REFERRAL = Want("NOERROR", False, set(), SUB_NS, SUB_GLUE)  # RFC 1034 §4.3.2 step 3b

EXAMPLE_CASES: list[tuple[str, str, Want]] = [
    ("example.org.", "SOA", positive(rr("example.org.", "SOA", ORG_SOA))),
    # NS at the apex: the answer is the NS set, the in-zone servers' addresses come along.
    (
        "example.org.",
        "NS",
        Want(
            "NOERROR",
            True,
            ORG_NS,
            set(),
            {
                rr("ns1.example.org.", "A", "192.0.2.53"),
                rr("ns2.example.org.", "A", "192.0.2.54"),
                rr("ns2.example.org.", "AAAA", "2001:db8::54"),
            },
        ),
    ),
    (
        "example.org.",
        "MX",
        positive(
            rr("example.org.", "MX", "10 mail.example.org."),
            rr("example.org.", "MX", "20 mail.example.net."),
            additional={rr("mail.example.org.", "A", "192.0.2.25")},
        ),
    ),
    ("example.org.", "TXT", positive(rr("example.org.", "TXT", '"v=spf1 mx -all"'))),
    (
        "example.org.",
        "CAA",
        positive(
            rr("example.org.", "CAA", '0 issue "letsencrypt.org"'),
            rr("example.org.", "CAA", '0 iodef "mailto:security@example.org"'),
        ),
    ),
    ("example.org.", "A", positive(rr("example.org.", "A", "192.0.2.1"))),
    ("example.org.", "AAAA", positive(rr("example.org.", "AAAA", "2001:db8::1"))),
    ("example.org.", "SRV", nodata()),
    ("www.example.org.", "A", positive(*WWW)),
    ("www.example.org.", "AAAA", positive(rr("www.example.org.", "AAAA", "2001:db8::80"))),
    ("www.example.org.", "TXT", nodata()),
    ("short.example.org.", "A", positive(rr("short.example.org.", "A", "192.0.2.60", 60))),
    # CNAME chain inside the zone, followed to the end (RFC 1034 §4.3.2 step 3a).
    (
        "alias.example.org.",
        "A",
        positive(
            rr("alias.example.org.", "CNAME", "web.example.org."),
            rr("web.example.org.", "CNAME", "www.example.org."),
            *WWW,
        ),
    ),
    (
        "alias.example.org.",
        "AAAA",
        positive(
            rr("alias.example.org.", "CNAME", "web.example.org."),
            rr("web.example.org.", "CNAME", "www.example.org."),
            rr("www.example.org.", "AAAA", "2001:db8::80"),
        ),
    ),
    ("alias.example.org.", "CNAME", positive(rr("alias.example.org.", "CNAME", "web.example.org."))),
    # The chain ends at a name without the type: the CNAMEs and NODATA's SOA.
    (
        "alias.example.org.",
        "MX",
        nodata(
            answer={
                rr("alias.example.org.", "CNAME", "web.example.org."),
                rr("web.example.org.", "CNAME", "www.example.org."),
            }
        ),
    ),
    ("outside.example.org.", "A", positive(rr("outside.example.org.", "CNAME", "www.example.net."))),
    # RFC 6604 §2: the rcode is that of the last name in the chain.
    (
        "broken.example.org.",
        "A",
        nxdomain(answer={rr("broken.example.org.", "CNAME", "missing.example.org.")}),
    ),
    (
        "_http._tcp.example.org.",
        "SRV",
        positive(
            rr("_http._tcp.example.org.", "SRV", "10 60 80 www.example.org."),
            rr("_http._tcp.example.org.", "SRV", "20 0 8080 backup.example.net."),
            additional={*WWW, rr("www.example.org.", "AAAA", "2001:db8::80")},
        ),
    ),
    (
        "info.example.org.",
        "TXT",
        positive(
            rr(
                "info.example.org.",
                "TXT",
                '"hello world" "semi;colon" "a \\"quoted\\" word" "decimal;escape"',
            )
        ),
    ),
    ("ptr.example.org.", "PTR", positive(rr("ptr.example.org.", "PTR", "www.example.org."))),
    ("opaque.example.org.", "TYPE65534", positive(rr("opaque.example.org.", "TYPE65534", "\\# 4 0a000001"))),
    ("opaque.example.org.", "A", nodata()),
    # Wildcards (RFC 4592): synthesised with the question's name, at any depth below the encloser…
    ("x.apps.example.org.", "A", positive(rr("x.apps.example.org.", "A", "192.0.2.100"))),
    (
        "y.x.apps.example.org.",
        "TXT",
        positive(rr("y.x.apps.example.org.", "TXT", '"served by the *.apps wildcard"')),
    ),
    ("x.apps.example.org.", "AAAA", nodata()),  # the wildcard exists, without AAAA
    ("*.apps.example.org.", "A", positive(rr("*.apps.example.org.", "A", "192.0.2.100"))),
    # …never for a name that exists, nor below one, nor for or below an empty non-terminal.
    ("special.apps.example.org.", "A", positive(rr("special.apps.example.org.", "A", "192.0.2.101"))),
    ("special.apps.example.org.", "TXT", nodata()),
    ("z.special.apps.example.org.", "A", nxdomain()),
    ("apps.example.org.", "A", nodata()),
    ("legacy.apps.example.org.", "A", nodata()),
    ("host.legacy.apps.example.org.", "A", positive(rr("host.legacy.apps.example.org.", "A", "192.0.2.102"))),
    ("other.legacy.apps.example.org.", "A", nxdomain()),
    # A wildcard CNAME, followed.
    ("foo.cdn.example.org.", "A", positive(rr("foo.cdn.example.org.", "CNAME", "www.example.org."), *WWW)),
    ("foo.cdn.example.org.", "CNAME", positive(rr("foo.cdn.example.org.", "CNAME", "www.example.org."))),
    # The delegation: referrals at and below the cut, glue never answered; DS is the parent's (NODATA).
    ("sub.example.org.", "A", REFERRAL),
    ("sub.example.org.", "NS", REFERRAL),
    ("host.sub.example.org.", "A", REFERRAL),
    ("ns1.sub.example.org.", "A", REFERRAL),
    ("sub.example.org.", "DS", nodata()),
    # $INCLUDE with its own origin; lab itself is an empty non-terminal.
    ("printer.lab.example.org.", "A", positive(rr("printer.lab.example.org.", "A", "192.0.2.201"))),
    ("scanner.lab.example.org.", "AAAA", positive(rr("scanner.lab.example.org.", "AAAA", "2001:db8::202"))),
    ("lab.example.org.", "A", nodata()),
    ("nothere.example.org.", "A", nxdomain()),
    ("deep.nothere.example.org.", "TXT", nxdomain()),
]

# --- what the RFCs require of the second zone -----------------------------------------------------------

TEST_NS = {rr("example.test.", "NS", "ns.example.test.")}
TEST_SOA = "ns.example.test. hostmaster.example.test. 7 3600 600 604800 60"
TEST_NEG = {rr("example.test.", "SOA", TEST_SOA, 60)}
TEST_WWW = rr("www.example.test.", "A", "10.0.0.80", 300)
SUB2 = Want(
    "NOERROR",
    False,
    set(),
    {
        rr("sub2.example.test.", "NS", "ns.example.test.", 300),
        rr("sub2.example.test.", "NS", "www.example.test.", 300),
    },
    {rr("ns.example.test.", "A", "10.0.0.53"), TEST_WWW},
)


def tpositive(*answer: Rr, additional: set[Rr] | None = None) -> Want:
    return positive(*answer, additional=additional, authority=TEST_NS)


SECOND_CASES: list[tuple[str, str, Want]] = [
    ("example.test.", "SOA", tpositive(rr("example.test.", "SOA", TEST_SOA))),
    ("ns.example.test.", "A", tpositive(rr("ns.example.test.", "A", "10.0.0.53"))),
    ("www.example.test.", "A", tpositive(TEST_WWW)),
    # CNAME loops stop where they close, with what was found.
    (
        "loop1.example.test.",
        "A",
        tpositive(
            rr("loop1.example.test.", "CNAME", "loop2.example.test.", 300),
            rr("loop2.example.test.", "CNAME", "loop1.example.test.", 300),
        ),
    ),
    (
        "selfloop.example.test.",
        "A",
        tpositive(rr("selfloop.example.test.", "CNAME", "selfloop.example.test.", 300)),
    ),
    # A CNAME into a delegation: the CNAME (authoritative) and the referral for its target.
    (
        "todeleg.example.test.",
        "A",
        Want(
            "NOERROR",
            True,
            {rr("todeleg.example.test.", "CNAME", "host.sub.example.test.", 300)},
            {rr("sub.example.test.", "NS", "ns.sub.example.test.", 300)},
            {rr("ns.sub.example.test.", "A", "10.0.0.99", 300)},
        ),
    ),
    # NS targets elsewhere in the zone: their addresses are additional data too.
    ("sub2.example.test.", "A", SUB2),
    ("x.sub2.example.test.", "AAAA", SUB2),
    # Additional data for an MX whose target is a wildcard name, and one whose target is glue.
    (
        "mx2.example.test.",
        "MX",
        tpositive(
            rr("mx2.example.test.", "MX", "10 foo.wild.example.test.", 300),
            additional={rr("foo.wild.example.test.", "A", "10.0.0.7", 300)},
        ),
    ),
    (
        "mx3.example.test.",
        "MX",
        tpositive(
            rr("mx3.example.test.", "MX", "10 ns.sub.example.test.", 300),
            additional={rr("ns.sub.example.test.", "A", "10.0.0.99", 300)},
        ),
    ),
    # *.w exists only as an empty non-terminal (a.*.w): it still matches, with no data (RFC 4592 §2.2.1).
    ("x.w.example.test.", "A", nodata(TEST_NEG)),
    ("y.x.w.example.test.", "A", nodata(TEST_NEG)),
    ("a.*.w.example.test.", "A", tpositive(rr("a.*.w.example.test.", "A", "10.0.0.8", 300))),
    (
        "towild.example.test.",
        "A",
        tpositive(
            rr("towild.example.test.", "CNAME", "x.y.wild.example.test.", 300),
            rr("x.y.wild.example.test.", "A", "10.0.0.7", 300),
        ),
    ),
    (
        "tonodata.example.test.",
        "TXT",
        nodata(TEST_NEG, {rr("tonodata.example.test.", "CNAME", "www.example.test.", 300)}),
    ),
    ("gen.example.test.", "A", tpositive(rr("gen.example.test.", "A", "10.0.0.9", 300))),
    ("host.rel.example.test.", "A", tpositive(rr("host.rel.example.test.", "A", "10.0.0.10", 300))),
    ("sub.example.test.", "DS", nodata(TEST_NEG)),
    ("nothere.example.test.", "A", nxdomain(TEST_NEG)),
]


@pytest.fixture(scope="module")
def zones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("zones")
    (d / "example.test.zone").write_text(SECOND)
    return d


@pytest.fixture(scope="module")
def server(zones: Path) -> Iterator[KdnsProcess]:
    """Both zones in a `.` block, whoami behind them for names neither holds."""
    port = free_port()
    corefile = f""".:{port} {{
    bind 127.0.0.1
    file {EXAMPLE} example.org
    file {zones / "example.test.zone"} example.test
    whoami
}}
"""
    proc = KdnsProcess(corefile, zones, port)
    proc.start()
    yield proc
    proc.stop()


def _id(case: tuple[str, str, Want]) -> str:
    return f"{case[0]}{case[1]}"


@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest.mark.parametrize(("qname", "qtype", "want"), EXAMPLE_CASES, ids=[_id(c) for c in EXAMPLE_CASES])
def test_example_zone(server: KdnsProcess, proto: str, qname: str, qtype: str, want: Want) -> None:
    check(ask(server.port, qname, qtype, tcp=proto == "tcp"), want)


@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest.mark.parametrize(("qname", "qtype", "want"), SECOND_CASES, ids=[_id(c) for c in SECOND_CASES])
def test_second_zone(server: KdnsProcess, proto: str, qname: str, qtype: str, want: Want) -> None:
    check(ask(server.port, qname, qtype, tcp=proto == "tcp"), want)


def test_long_cname_chain_is_cut(server: KdnsProcess) -> None:
    """CoreDNS follows 8 CNAMEs after the first, then answers what it has; so do we."""
    msg = ask(server.port, "c1.example.test.", "A")
    assert rcode(msg) == "NOERROR"
    names = [s.name.to_text() for s in msg.answer]
    assert names == [f"c{i}.example.test." for i in range(1, 10)]
    assert {dns.rdatatype.to_text(s.rdtype) for s in msg.answer} == {"CNAME"}


def test_owner_echoes_the_question_spelling(server: KdnsProcess) -> None:
    msg = ask(server.port, "WwW.ExAmPlE.oRg.", "A")
    assert [s.name.to_text() for s in msg.answer] == ["WwW.ExAmPlE.oRg."]
    msg = ask(server.port, "Foo.APPS.example.ORG.", "A", tcp=True)
    assert [s.name.to_text() for s in msg.answer] == ["Foo.APPS.example.ORG."]


def test_names_outside_the_zones_go_to_the_next_plugin(server: KdnsProcess) -> None:
    msg = ask(server.port, "host.example.com.", "A")
    assert rcode(msg) == "NOERROR"
    assert {rd.to_text() for s in msg.additional for rd in s} >= {"127.0.0.1"}  # whoami's answer


def test_any_returns_every_rrset_at_the_name(server: KdnsProcess) -> None:
    msg = ask(server.port, "www.example.org.", "ANY", tcp=True)
    assert rrs(msg.answer) == {*WWW, rr("www.example.org.", "AAAA", "2001:db8::80")}


# --- reloads ------------------------------------------------------------------------------------------


def zone_file(serial: int, www: str, extra: str = "") -> str:
    # The comment's length follows the serial, so each edit changes the file's size as well as its mtime.
    return (
        f"$ORIGIN reload.test.\n$TTL 60\n; {'v' * serial}\n"
        f"@ SOA ns hostmaster {serial} 3600 600 86400 60\n@ NS ns\nns A 10.1.0.53\n"
        f"www A {www}\n$INCLUDE reload.inc\n{extra}"
    )


def a_records(port: int, name: str) -> set[str]:
    try:
        return {rd.to_text() for s in ask(port, name, "A", timeout=2).answer for rd in s}
    except dns.exception.Timeout:
        return set()


def test_zone_changes_are_picked_up_without_restart(tmp_path: Path, kdns: Callable[..., KdnsProcess]) -> None:
    db, inc = tmp_path / "reload.zone", tmp_path / "reload.inc"
    db.write_text(zone_file(1, "10.1.0.1"))
    inc.write_text("inc A 10.1.0.50\n")
    proc = kdns(f"reload.test:{{port}} {{\n bind 127.0.0.1\n file {db} {{\n  reload 200ms\n }}\n}}\n")
    assert a_records(proc.port, "www.reload.test.") == {"10.1.0.1"}

    db.write_text(zone_file(2, "10.1.0.2"))  # a new serial: taken
    until(lambda: a_records(proc.port, "www.reload.test.") == {"10.1.0.2"}, "the new serial served")

    # A change in the included file, serial unchanged: noticed (the include is watched) but not taken.
    inc.write_text("inc A 10.1.0.51 ; same serial\n")
    until(lambda: "SOA serial is still 2" in proc.logs(), "the unchanged-serial warning")
    assert a_records(proc.port, "inc.reload.test.") == {"10.1.0.50"}

    # A broken edit with a new serial: the old zone stays and the log names file:line.
    db.write_text(zone_file(3, "10.1.0.3", "bad A 10.1.0.300\n"))
    until(lambda: f"{db}:9: '10.1.0.300' is not an IPv4 address" in proc.logs(), "the file:line error")
    assert "still serving serial 2" in proc.logs()
    assert a_records(proc.port, "www.reload.test.") == {"10.1.0.2"}

    db.write_text(zone_file(4, "10.1.0.4"))  # fixed: taken, with the include's change
    until(lambda: a_records(proc.port, "www.reload.test.") == {"10.1.0.4"}, "the fixed zone served")
    assert a_records(proc.port, "inc.reload.test.") == {"10.1.0.51"}
    assert 'Successfully reloaded zone "reload.test." in' in proc.logs()


def test_reload_zero_disables_polling(tmp_path: Path) -> None:
    db = tmp_path / "db"
    db.write_text(zone_file(1, "10.1.0.1"))
    (tmp_path / "reload.inc").write_text("")
    body = f"file {db} reload.test {{\n reload 0\n}}"
    plugin = file_setup(directive(body), context(body))
    assert isinstance(plugin, FilePlugin) and plugin._poller.interval == 0


# --- setup errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("file", 2, "wrong argument count"),
        ("file {db} {{\n reload\n}}", 3, "'reload': wrong argument count"),
        ("file {db} {{\n reload soon\n}}", 3, "invalid reload interval 'soon'"),
        ("file {db} {{\n transfer to *\n}}", 3, "unknown property 'transfer'"),
        ("file {missing}", 2, "cannot read zone file"),
        ("file {bad}", 2, "bad.zone:3: '10.0.0.300' is not an IPv4 address"),
        ("file {db} other.test", 2, "outside the zone other.test."),
    ],
)
def test_setup_errors_name_the_corefile_line(tmp_path: Path, body: str, line: int, words: str) -> None:
    (tmp_path / "db").write_text(zone_file(1, "10.1.0.1"))
    (tmp_path / "reload.inc").write_text("")
    (tmp_path / "bad.zone").write_text("$ORIGIN reload.test.\n@ 60 SOA ns hm 1 2 3 4 5\nx 60 A 10.0.0.300\n")
    text = body.format(db=tmp_path / "db", missing=tmp_path / "nope", bad=tmp_path / "bad.zone")
    with pytest.raises(CorefileError) as info:
        file_setup(directive(text), context(text, key="reload.test"))
    assert words in str(info.value)
    assert str(info.value).startswith(f"Corefile:{line} - Error during parsing")


def test_bad_zone_stops_kdns_at_start(tmp_path: Path) -> None:
    (tmp_path / "bad.zone").write_text("$ORIGIN bad.test.\nwww 60 A 10.0.0.1\n")
    corefile = tmp_path / "Corefile"
    corefile.write_text(
        f"bad.test:{free_port()} {{\n    bind 127.0.0.1\n    file {tmp_path / 'bad.zone'}\n}}\n"
    )
    result = run_kdns(["-conf", str(corefile)])
    assert result.returncode != 0
    assert f"{corefile}:3 - Error during parsing: 'file'" in result.stderr + result.stdout
    assert "no SOA record" in result.stderr + result.stdout


# --- the same zones served by knotd -----------------------------------------------------------------------

KNOTD = shutil.which("knotd") or next((p for p in ("/usr/sbin/knotd",) if Path(p).exists()), None)


def _questions(zone_path: Path, origin: str) -> list[tuple[str, str]]:
    """Every name of the zone (read with dnspython's parser, not ours), names around them that do not
    exist, and every type the zone uses plus the common ones — each asked once."""
    with contextlib.chdir(zone_path.parent):  # dnspython reads $INCLUDE relative to the working directory
        zone = dns.zone.from_file(str(zone_path), origin, relativize=False, allow_include=True)
    names = {n.to_text() for n in zone.nodes}
    types = {dns.rdatatype.to_text(rds.rdtype) for node in zone.nodes.values() for rds in node.rdatasets}
    types |= {"A", "AAAA", "NS", "SOA", "CNAME", "MX", "TXT", "SRV", "PTR", "CAA", "DS", "TYPE65534"}
    probes = set(names)
    for name in names:
        probes.add("nx-probe." + name)  # below every name: wildcard, empty non-terminal, NXDOMAIN cases
        parent = name.split(".", 1)[1]
        probes.add(parent)  # empty non-terminals
        if name.startswith("*."):
            probes.add("x.y." + parent)  # a wildcard two labels deep
    return sorted((n, t) for n in probes - LONG_CHAIN for t in sorted(types) if n.endswith(origin))


def _start_knotd(tmp: Path, zones: dict[str, Path]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    (tmp / "run").mkdir()
    (tmp / "db").mkdir()
    zone_conf = "".join(f'  - domain: {origin}\n    file: "{path}"\n' for origin, path in zones.items())
    (tmp / "knot.conf").write_text(
        f'server:\n    rundir: "{tmp / "run"}"\n    listen: 127.0.0.1@{port}\n'
        "    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n"
        f'database:\n    storage: "{tmp / "db"}"\n'
        "log:\n  - target: stderr\n    any: warning\n"
        f'template:\n  - id: default\n    storage: "{tmp / "db"}"\n'
        "    zonefile-sync: -1\n    zonefile-load: whole\n    journal-content: none\n"
        f"zone:\n{zone_conf}"
    )
    log = open(tmp / "knotd.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [KNOTD or "knotd", "-c", str(tmp / "knot.conf")], stdout=log, stderr=subprocess.STDOUT
    )
    log.close()

    def loaded() -> bool:
        log = (tmp / "knotd.log").read_text()
        if proc.poll() is not None or "error:" in log:
            raise RuntimeError(f"knotd failed:\n{log}")
        try:
            return all(rcode(ask(port, origin, "SOA", timeout=1)) == "NOERROR" for origin in zones)
        except dns.exception.Timeout:
            return False

    until(loaded, "knotd to load the zones", timeout=30)
    return proc, port


@pytest.mark.skipif(
    KNOTD is None, reason="knotd (Debian package knot) is not installed; `make debs` installs it"
)
def test_answers_equal_knotd(server: KdnsProcess, zones: Path, tmp_path: Path) -> None:
    """kdns and knotd answer every question about both zones alike: rcode, AA, and the answer, authority
    and additional sections as sets. Two differences are by design and checked as such:
    - on positive answers kdns adds the apex NS to the authority section, as CoreDNS's file plugin
      does; knotd sends minimal responses (both are allowed, RFC 2181 §6.1 / RFC 1034 §4.3.2);
    - CNAME chains longer than 5 (LONG_CHAIN): knotd stops after 5 CNAMEs, kdns after 9, as CoreDNS.
    ANY is not compared: knotd answers one RRset (RFC 8482), kdns all of them.
    """
    zone_paths = {"example.org.": EXAMPLE, "example.test.": zones / "example.test.zone"}
    knotd, knot_port = _start_knotd(tmp_path, zone_paths)
    try:
        questions = [q for origin, path in zone_paths.items() for q in _questions(path, origin)]
        assert len(questions) > 500
        for i, (qname, qtype) in enumerate(questions):
            for tcp in (False, True) if i % 7 == 0 else (False,):  # TCP for a sample: same code path
                ours, theirs = ask(server.port, qname, qtype, tcp=tcp), ask(knot_port, qname, qtype, tcp=tcp)
                _compare(qname, qtype, ours, theirs)
    finally:
        knotd.terminate()
        knotd.wait(10)


def _compare(qname: str, qtype: str, ours: dns.message.Message, theirs: dns.message.Message) -> None:
    where = f"{qname} {qtype}"
    assert rcode(ours) == rcode(theirs), where
    assert bool(ours.flags & dns.flags.AA) == bool(theirs.flags & dns.flags.AA), where
    assert rrs(ours.answer) == rrs(theirs.answer), where
    assert rrs(ours.additional) == rrs(theirs.additional), where
    our_auth, their_auth = rrs(ours.authority), rrs(theirs.authority)
    if ours.answer and rcode(ours) == "NOERROR" and our_auth != their_auth:
        origin = "example.org." if qname.endswith("example.org.") else "example.test."
        apex_ns = {r for r in rrs(ours.answer + ours.authority) if r[0] == origin and r[1] == "NS"}
        assert their_auth == set() and our_auth == apex_ns and apex_ns, where  # the one designed difference
    else:
        assert our_auth == their_auth, where
