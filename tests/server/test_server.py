"""The DNS front end through a real kdns process: server-level answers and transport behaviour."""

from __future__ import annotations

import socket
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import dns.edns
import dns.message
import dns.query
import dns.rcode
import pytest

from tests.support.dnsclient import ask, assert_positive_unchanged, ede, has_flag, rcode
from tests.support.process import KdnsProcess, run_kdns
from tests.support.rawdns import exchange

WHOAMI = ".:{port} {\n  bind 127.0.0.1\n  whoami\n}\n"


@pytest.fixture
def server(kdns: Callable[..., KdnsProcess]) -> KdnsProcess:
    return kdns(WHOAMI)


def test_answers_over_udp_and_tcp_with_case_echoed(server: KdnsProcess) -> None:
    for tcp in (False, True):
        r = ask(server.port, "WhoAmI.Example.", "A", tcp=tcp)
        assert rcode(r) == "NOERROR"
        assert r.question[0].name.to_text() == "WhoAmI.Example."
        assert has_flag(r, "AA") and not has_flag(r, "RA") and has_flag(r, "RD")


def test_garbage_gets_formerr_and_the_listener_lives(server: KdnsProcess) -> None:
    junk = b"\x12\x34" + b"\x01\x00" + b"\x00\x01\x00\x00\x00\x00\x00\x00" + b"\x07broken"  # truncated qname
    reply = exchange(server.port, junk)
    assert reply is not None
    msg = dns.message.from_wire(reply, question_only=True) if len(reply) > 12 else None
    assert reply[:2] == b"\x12\x34"
    assert reply[3] & 0x0F == dns.rcode.FORMERR
    assert msg is None or not msg.question
    assert exchange(server.port, b"\x00") is None  # too short for a header: dropped silently
    assert rcode(ask(server.port, "still.alive.", "A")) == "NOERROR"


def test_responses_are_never_answered(server: KdnsProcess) -> None:
    q = dns.message.make_query("x.example.", "A")
    q.flags |= 0x8000  # QR=1: a response, e.g. a reflection attempt
    assert exchange(server.port, q.to_wire(), timeout=0.5) is None
    assert rcode(ask(server.port, "x.example.", "A")) == "NOERROR"


def test_non_in_class_and_transfers_are_refused(server: KdnsProcess) -> None:
    r = ask(server.port, "version.bind.", "TXT", rdclass="CH")
    assert rcode(r) == "REFUSED" and not has_flag(r, "AA")
    assert ede(r) == [(21, "only class IN is served")]  # RFC 8914 §4.22 Not Supported
    for qtype in ("AXFR", "IXFR"):
        r = ask(server.port, "example.", qtype, tcp=True)
        assert rcode(r) == "REFUSED" and ede(r) == [(21, "zone transfers are not served")]
    plain = ask(server.port, "version.bind.", "TXT", rdclass="CH", edns=False)
    assert rcode(plain) == "REFUSED" and plain.edns == -1  # no EDNS, no OPT, so no EDE


def test_edns_version_1_gets_badvers(server: KdnsProcess) -> None:
    r = ask(server.port, "x.example.", "A", edns=1)
    assert r.rcode() == dns.rcode.BADVERS
    assert r.edns == 0


def test_unknown_edns_options_are_ignored(server: KdnsProcess) -> None:
    q = dns.message.make_query(
        "x.example.", "A", use_edns=0, options=[dns.edns.GenericOption(10, b"\x01" * 8)]
    )  # COOKIE
    r = dns.query.udp(q, "127.0.0.1", port=server.port, timeout=3)
    assert rcode(r) == "NOERROR" and r.edns == 0
    assert not r.options  # unknown options are not echoed back


def test_tcp_pipelining_and_idle_connection(server: KdnsProcess) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
        ids = [101, 102, 103]
        for qid in ids:
            q = dns.message.make_query(f"q{qid}.example.", "A", id=qid).to_wire()
            s.sendall(struct.pack("!H", len(q)) + q)
        got = set()
        for _ in ids:
            (n,) = struct.unpack("!H", _recv_exact(s, 2))
            got.add(dns.message.from_wire(_recv_exact(s, n)).id)
        assert got == set(ids)


def test_idle_tcp_connection_is_closed(server: KdnsProcess) -> None:
    """A connection that sends nothing is closed after CoreDNS's read timeout (3 s), not before."""
    from kdns.server.limits import LISTENER_DEFAULTS

    wait = LISTENER_DEFAULTS.read_timeout
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait + 10) as s:
        start = time.monotonic()
        assert s.recv(1) == b""  # server closed the connection
        assert time.monotonic() - start >= wait - 1


def test_names_outside_every_zone_are_refused(kdns: Callable[..., KdnsProcess]) -> None:
    p = kdns("example.org:{port} {\n  bind 127.0.0.1\n  whoami\n}\n")
    assert rcode(ask(p.port, "www.example.org.", "A")) == "NOERROR"
    for tcp in (False, True):
        r = ask(p.port, "www.example.com.", "A", tcp=tcp)
        # RFC 8914 §4.21 Not Authoritative: the REFUSED of a server that does not serve the name.
        assert rcode(r) == "REFUSED" and ede(r) == [(20, "no server block serves this name")]
        plain = ask(p.port, "www.example.com.", "A", tcp=tcp, edns=False)
        assert rcode(plain) == "REFUSED" and plain.edns == -1


def test_dig_shows_the_extended_error(kdns: Callable[..., KdnsProcess]) -> None:
    """What docs/debugging.md tells people to look for."""
    p = kdns("example.org:{port} {\n  bind 127.0.0.1\n  whoami\n}\n")
    dig = ["dig", "@127.0.0.1", "-p", str(p.port), "www.example.com", "+tries=1", "+time=5"]
    out = subprocess.run(dig, capture_output=True, text=True, timeout=20, check=True).stdout
    assert "status: REFUSED" in out
    assert "; EDE: 20 (Not Authoritative): (no server block serves this name)" in out
    plain = subprocess.run([*dig, "+noedns"], capture_output=True, text=True, timeout=20, check=True).stdout
    assert "status: REFUSED" in plain and "EDE" not in plain


def test_longest_zone_wins(kdns: Callable[..., KdnsProcess], port: int) -> None:
    text = ".:{port} {\n bind 127.0.0.1\n whoami\n}\nsub.example.org:{port} {\n bind 127.0.0.1\n}\n"
    p = kdns(text, port)
    assert rcode(ask(p.port, "a.example.org.", "A")) == "NOERROR"
    for tcp in (False, True):
        r = ask(p.port, "a.sub.example.org.", "A", tcp=tcp)  # empty chain: no next plugin
        assert rcode(r) == "SERVFAIL"
        assert ede(r) == [(0, "no plugin answered: the last one passed the query on")]
        assert ask(p.port, "a.sub.example.org.", "A", tcp=tcp, edns=False).edns == -1


def test_positive_answers_get_no_extended_error(kdns: Callable[..., KdnsProcess]) -> None:
    """Byte for byte, an EDNS client's answer is the plain client's plus a bare OPT."""
    hosts = "10.0.0.1 www.example.org\n"
    p = kdns(".:{port} {\n bind 127.0.0.1\n hosts {\n  " + hosts + " }\n}\n")
    for tcp in (False, True):
        assert_positive_unchanged(p.port, "www.example.org.", "A", tcp=tcp)


def _recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


# --- the command line -----------------------------------------------------------------------------


def test_version_and_plugins_flags() -> None:
    r = run_kdns(["-version"])
    assert r.returncode == 0 and r.stdout.startswith("kdns-")
    r = run_kdns(["-plugins"])
    assert r.returncode == 0 and "kubernetes" in r.stdout and "whoami" in r.stdout


def test_positional_arguments_are_fatal() -> None:
    r = run_kdns(["-conf", "/nonexistent", "extra"])
    assert r.returncode != 0 and "extra command line arguments" in r.stderr


def test_bad_corefile_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "Corefile"
    path.write_text(".:1053 {\n  whoami\n  frobnicate on\n}\n")
    r = run_kdns(["-conf", str(path)])
    assert r.returncode == 1
    assert f"{path}:3 - Error during parsing: 'frobnicate': unknown directive" in r.stderr
    assert "Traceback" not in r.stderr


def test_conf_equals_form_and_stdin(port: int) -> None:
    r = run_kdns([f"-conf=/nonexistent-{port}"])
    assert r.returncode == 1 and "cannot read Corefile" in r.stderr
    r = run_kdns(["-conf", "stdin"], stdin=f".:{port} {{\n  frobnicate\n}}\n")
    assert r.returncode == 1 and "stdin:2" in r.stderr


def test_a_directive_kdns_does_not_implement_is_an_error(tmp_path: Path) -> None:
    """As CoreDNS refuses a directive it does not know: ignoring it could change answers."""
    path = tmp_path / "Corefile"
    path.write_text(".:1053 {\n  whoami\n  dns64 {\n    prefix 64:ff9b::/96\n  }\n}\n")
    r = run_kdns(["-conf", str(path)])
    assert r.returncode == 1
    assert f"{path}:3 - Error during parsing: 'dns64': plugin 'dns64' is not implemented by kdns" in r.stderr


def test_directives_that_cannot_change_answers_warn_and_run(kdns: Callable[..., KdnsProcess]) -> None:
    p = kdns(".:{port} {\n  bind 127.0.0.1\n  debug\n  pprof localhost:6053\n  whoami\n}\n")
    assert rcode(ask(p.port, "x.example.", "A")) == "NOERROR"
    assert "[WARNING] plugin/debug: not implemented by kdns, and it cannot change answers" in p.logs()
    assert "[WARNING] plugin/pprof: not implemented by kdns" in p.logs()


def test_dns_port_flag_sets_the_default_port(kdns: Callable[..., KdnsProcess], port: int) -> None:
    p = kdns(". {\n  bind 127.0.0.1\n  whoami\n}\n", port, extra_args=("-dns.port", str(port)))
    assert rcode(ask(p.port, "x.example.", "A")) == "NOERROR"
