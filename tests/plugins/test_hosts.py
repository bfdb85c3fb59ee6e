"""The `hosts` plugin: the hosts-file format, reverse names, options, and answers through a real kdns
process over UDP and TCP (CoreDNS's semantics: AA answers, NODATA for the other family, SERVFAIL or
fallthrough for names without entries, PTR for the plugin's names), including a file edit picked up
without restart.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.flags
import dns.message
import dns.rdatatype
import pytest
from dnslib import RCODE, DNSRecord

from kdns.corefile import CorefileError
from kdns.plugins.hosts import Hosts, address_from_reverse, parse_hosts, setup
from kdns.request import Reply, Request
from tests.support.dnsclient import ask, rcode
from tests.support.http import until
from tests.support.ports import free_port
from tests.support.process import KdnsProcess
from tests.support.units import context, directive, kdns_log, request

HOSTS = """\
# The following lines are desirable for IPv4 capable hosts
10.9.0.10   web.example.org web      # the bare alias is outside every zone: dropped
10.9.0.11   both.example.org
fd00::11    both.example.org
fd00::12    v6only.example.org
10.9.0.20   api.example.net
10.9.0.21   Mixed.Example.NET
::ffff:10.9.0.30 mapped.example.net
fe80::1%eth0 linklocal.example.net
not-an-ip   junk.example.org
10.9.0.40
"""


# --- file format and reverse names (unit) ----------------------------------------------------------


def test_parse_hosts() -> None:
    table = parse_hosts(HOSTS, ("example.org.", "example.net."), reverse=True)
    assert table.v4 == {
        "web.example.org.": ["10.9.0.10"],
        "both.example.org.": ["10.9.0.11"],
        "api.example.net.": ["10.9.0.20"],
        "mixed.example.net.": ["10.9.0.21"],
        "mapped.example.net.": ["10.9.0.30"],  # ::ffff:a.b.c.d is IPv4, as Go's To4() says
    }
    assert table.v6 == {
        "both.example.org.": ["fd00::11"],
        "v6only.example.org.": ["fd00::12"],
        "linklocal.example.net.": ["fe80::1"],  # the zone index is dropped
    }
    assert table.names["10.9.0.21"] == ["mixed.example.net."]
    assert len(table) == 2 * (5 + 3)


def test_parse_hosts_keeps_only_names_in_the_zones_and_no_reverse() -> None:
    table = parse_hosts(
        "10.0.0.1 a.example.org b.example.net a.example.org\n", ("example.org.",), reverse=False
    )
    assert table.v4 == {"a.example.org.": ["10.0.0.1"]}
    assert table.names == {}


@pytest.mark.parametrize(
    ("name", "address"),
    [
        ("4.3.2.1.in-addr.arpa.", "1.2.3.4"),
        ("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.e.f.ip6.arpa.", "fe80::1"),
        ("3.2.1.in-addr.arpa.", None),
        ("300.3.2.1.in-addr.arpa.", None),
        ("1.0.ip6.arpa.", None),
        ("www.example.org.", None),
    ],
)
def test_address_from_reverse(name: str, address: str | None) -> None:
    assert address_from_reverse(name) == address


# --- options (unit) ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "line", "words"),
    [
        ("hosts {f} {{\n ttl 0\n}}", 3, "ttl 0 is out of range 1..65535"),
        ("hosts {f} {{\n ttl 65536\n}}", 3, "out of range"),
        ("hosts {f} {{\n ttl soon\n}}", 3, "not a whole number"),
        ("hosts {f} {{\n ttl\n}}", 3, "wrong argument count"),
        ("hosts {f} {{\n reload often\n}}", 3, "invalid reload interval 'often'"),
        ("hosts {f} {{\n no_reverse please\n}}", 3, "wrong argument count"),
        ("hosts {f} {{\n fallthrough\n 10.0.0.1 late.example.org\n}}", 4, "unknown property '10.0.0.1'"),
    ],
)
def test_bad_options(tmp_path: Path, body: str, line: int, words: str) -> None:
    text = body.format(f=tmp_path / "hosts")
    with pytest.raises(CorefileError, match=re.escape(words)) as info:
        setup(directive(text), context(text))
    assert str(info.value).startswith(f"Corefile:{line} ")


def test_options_and_defaults(tmp_path: Path) -> None:
    (tmp_path / "hosts").write_text(HOSTS)
    text = (
        f"hosts {tmp_path / 'hosts'} example.org {{\n 10.0.0.1 inline.example.org\n ttl 60\n no_reverse\n}}"
    )
    plugin = setup(directive(text), context(text))
    assert isinstance(plugin, Hosts)
    assert (plugin.path, plugin.origins, plugin.ttl, plugin.reverse, plugin.fallthrough) == (
        str(tmp_path / "hosts"),
        ("example.org.",),
        60,
        False,
        (),
    )
    assert plugin._poller.interval == 5.0  # CoreDNS's default
    default = setup(directive("hosts"), context("hosts", key="example.org"))
    assert isinstance(default, Hosts) and (default.path, default.origins, default.ttl) == (
        "/etc/hosts",
        ("example.org.",),
        3600,
    )


def test_bad_inline_entry_is_a_warning_and_missing_file_too(tmp_path: Path) -> None:
    text = f"hosts {tmp_path / 'nope'} {{\n no-reverse\n 10.0.0.1 ok.example.org\n}}"
    with kdns_log() as log:
        plugin = setup(directive(text), context(text))
    assert "Corefile:3: 'no-reverse' is not an 'ADDRESS NAME...' entry; ignored" in log.getvalue()
    assert "cannot be read" in log.getvalue()
    assert isinstance(plugin, Hosts) and plugin._lookup("v4", "ok.example.org.") == ["10.0.0.1"]


# --- serving (unit: the decision table) ---------------------------------------------------------------


async def passed_on(req: Request) -> Reply:
    return Reply(DNSRecord(), "next")


def hosts_plugin(tmp_path: Path, options: str = "", zones: str = "example.org example.net") -> Hosts:
    (tmp_path / "hosts").write_text(HOSTS)
    text = f"hosts {tmp_path / 'hosts'} {zones} {{\n 10.9.0.1 inline.example.org\n{options}\n}}"
    plugin = setup(directive(text), context(text))
    assert isinstance(plugin, Hosts)
    return plugin


async def test_serve_decisions(tmp_path: Path) -> None:
    plugin = hosts_plugin(tmp_path)
    reply = await plugin.serve(request("inline.example.org.", "A"), passed_on)
    assert reply.plugin == "hosts" and [str(rr.rdata) for rr in reply.message.rr] == ["10.9.0.1"]
    reply = await plugin.serve(request("missing.example.org.", "A"), passed_on)
    assert (reply.plugin, reply.rcode, reply.message.header.aa) == ("hosts", RCODE.SERVFAIL, 0)
    assert (await plugin.serve(request("www.example.com.", "A"), passed_on)).plugin == "next"
    # PTR for an address without entries always goes on, fallthrough or not (CoreDNS).
    assert (await plugin.serve(request("1.1.1.1.in-addr.arpa.", "PTR"), passed_on)).plugin == "next"
    reply = await plugin.serve(request("1.0.9.10.in-addr.arpa.", "PTR"), passed_on)
    assert [str(rr.rdata) for rr in reply.message.rr] == ["inline.example.org."]


async def test_no_reverse_and_fallthrough_zones(tmp_path: Path) -> None:
    plugin = hosts_plugin(tmp_path, " no_reverse\n fallthrough example.net")
    assert (await plugin.serve(request("1.0.9.10.in-addr.arpa.", "PTR"), passed_on)).plugin == "next"
    assert (await plugin.serve(request("missing.example.net.", "A"), passed_on)).plugin == "next"
    assert (await plugin.serve(request("missing.example.org.", "A"), passed_on)).rcode == RCODE.SERVFAIL
    assert plugin.transparent_for("www.example.com.") and not plugin.transparent_for("a.example.org.")


async def test_unreadable_file_keeps_the_last_entries(tmp_path: Path) -> None:
    plugin = hosts_plugin(tmp_path)
    (tmp_path / "hosts").unlink()
    await plugin.check_file()
    assert plugin._lookup("v4", "web.example.org.") == ["10.9.0.10"]


# --- through a real kdns process -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KdnsProcess]:
    """example.org: hosts without fallthrough; everything else: hosts for example.net, then whoami."""
    d = tmp_path_factory.mktemp("hosts")
    (d / "hosts").write_text(HOSTS)
    port = free_port()
    corefile = f"""example.org:{port} {{
    bind 127.0.0.1
    hosts {d / "hosts"} {{
        10.9.0.1 inline.example.org
        ttl 300
    }}
}}
.:{port} {{
    bind 127.0.0.1
    hosts {d / "hosts"} example.net {{
        fallthrough
    }}
    whoami
}}
"""
    proc = KdnsProcess(corefile, d, port)
    proc.start()
    yield proc
    proc.stop()


def answer(msg: dns.message.Message) -> set[tuple[str, str, int, str]]:
    return {
        (s.name.to_text(), dns.rdatatype.to_text(s.rdtype), s.ttl, rd.to_text())
        for s in msg.answer
        for rd in s
    }


def is_whoami(msg: dns.message.Message) -> bool:
    return rcode(msg) == "NOERROR" and "127.0.0.1" in {rd.to_text() for s in msg.additional for rd in s}


CASES: list[tuple[str, str, str, set[tuple[str, str, int, str]]]] = [
    ("web.example.org.", "A", "NOERROR", {("web.example.org.", "A", 300, "10.9.0.10")}),
    ("WEB.Example.ORG.", "A", "NOERROR", {("WEB.Example.ORG.", "A", 300, "10.9.0.10")}),
    ("both.example.org.", "A", "NOERROR", {("both.example.org.", "A", 300, "10.9.0.11")}),
    ("both.example.org.", "AAAA", "NOERROR", {("both.example.org.", "AAAA", 300, "fd00::11")}),
    ("inline.example.org.", "A", "NOERROR", {("inline.example.org.", "A", 300, "10.9.0.1")}),
    ("v6only.example.org.", "A", "NOERROR", set()),  # NODATA: the name has the other family
    ("web.example.org.", "MX", "NOERROR", set()),  # NODATA: hosts has A/AAAA only
    ("missing.example.org.", "A", "SERVFAIL", set()),  # no entry, no fallthrough: CoreDNS says SERVFAIL
    ("junk.example.org.", "A", "SERVFAIL", set()),  # its line had no valid address
    ("api.example.net.", "A", "NOERROR", {("api.example.net.", "A", 3600, "10.9.0.20")}),
    ("mixed.example.net.", "A", "NOERROR", {("mixed.example.net.", "A", 3600, "10.9.0.21")}),
    ("mapped.example.net.", "A", "NOERROR", {("mapped.example.net.", "A", 3600, "10.9.0.30")}),
    ("mapped.example.net.", "AAAA", "NOERROR", set()),
    ("linklocal.example.net.", "AAAA", "NOERROR", {("linklocal.example.net.", "AAAA", 3600, "fe80::1")}),
    (
        "20.0.9.10.in-addr.arpa.",
        "PTR",
        "NOERROR",
        {("20.0.9.10.in-addr.arpa.", "PTR", 3600, "api.example.net.")},
    ),
    (
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.e.f.ip6.arpa.",
        "PTR",
        "NOERROR",
        {
            (
                "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.e.f.ip6.arpa.",
                "PTR",
                3600,
                "linklocal.example.net.",
            )
        },
    ),
]


@pytest.mark.parametrize("proto", ["udp", "tcp"])
@pytest.mark.parametrize(("qname", "qtype", "code", "want"), CASES, ids=[f"{c[0]}{c[1]}" for c in CASES])
def test_answers(
    server: KdnsProcess, proto: str, qname: str, qtype: str, code: str, want: set[object]
) -> None:
    msg = ask(server.port, qname, qtype, tcp=proto == "tcp")
    assert rcode(msg) == code
    assert bool(msg.flags & dns.flags.AA) == (code == "NOERROR")  # hosts answers are authoritative
    assert answer(msg) == want
    assert msg.authority == [] and msg.additional == []  # no SOA to give: hosts data has none


@pytest.mark.parametrize(
    ("qname", "qtype"),
    [
        ("missing.example.net.", "A"),  # fallthrough
        ("www.example.com.", "A"),  # outside the hosts zones
        ("10.0.9.10.in-addr.arpa.", "PTR"),  # web.example.org is not in this plugin's zones
        ("9.9.9.9.in-addr.arpa.", "PTR"),  # no entry: PTR always goes on
    ],
)
def test_passed_to_the_next_plugin(server: KdnsProcess, qname: str, qtype: str) -> None:
    assert is_whoami(ask(server.port, qname, qtype))


def test_file_edits_are_picked_up(tmp_path: Path, kdns: Callable[..., KdnsProcess]) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("10.8.0.1 a.example.org\n")
    proc = kdns(f"example.org:{{port}} {{\n bind 127.0.0.1\n hosts {hosts} {{\n  reload 100ms\n }}\n}}\n")
    assert answer(ask(proc.port, "a.example.org.", "A")) == {("a.example.org.", "A", 3600, "10.8.0.1")}
    hosts.write_text("10.8.0.2 a.example.org\n10.8.0.3 b.example.org\n")

    def updated() -> bool:
        return answer(ask(proc.port, "b.example.org.", "A")) == {("b.example.org.", "A", 3600, "10.8.0.3")}

    until(updated, "the edited hosts file served")
    assert answer(ask(proc.port, "a.example.org.", "A", tcp=True)) == {
        ("a.example.org.", "A", 3600, "10.8.0.2")
    }
