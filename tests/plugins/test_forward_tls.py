"""forward to DNS-over-TLS upstreams (RFC 7858): `tls://` TOs, `tls`, `tls_servername`, per-upstream
server names. Parsing as units; answers through a real kdns process to a fake upstream that speaks
TLS on loopback with trustme certificates (server verification, client certificates, connection
reuse, health checks over TLS, OpenShift's forward stanza)."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from kdns.corefile import CorefileError
from kdns.corefile.model import Directive
from kdns.plugins.forward.config import Upstream, parse
from tests.support.dnsclient import answer_texts, ask, rcode
from tests.support.http import scrape, value
from tests.support.ports import free_port
from tests.support.process import KdnsProcess
from tests.support.upstream import FakeUpstream, running_upstreams

Kdns = Callable[..., KdnsProcess]
Upstreams = Callable[..., FakeUpstream]
SERVER_NAME = "dns.example.test"


def d(*args: str, children: tuple[Directive, ...] = ()) -> Directive:
    return Directive("forward", tuple(args), children, "Corefile", 3, bool(children))


def opt(name: str, *args: str) -> Directive:
    return Directive(name, tuple(args), (), "Corefile", 4)


@dataclass
class Pki:
    """A test CA, a server certificate for SERVER_NAME and 127.0.0.1, a client certificate."""

    ca: trustme.CA
    ca_file: Path
    client_cert: Path
    client_key: Path

    def server_context(self, require_client_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(SERVER_NAME, "127.0.0.1").configure_cert(ctx)
        if require_client_cert:
            ctx.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(ctx)
        return ctx


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    client = ca.issue_cert("kdns.client.test")
    cert, key = tmp_path / "client.pem", tmp_path / "client-key.pem"
    client.cert_chain_pems[0].write_to_path(str(cert))
    client.private_key_pem.write_to_path(str(key))
    return Pki(ca, ca_file, cert, key)


@pytest.fixture
def upstreams() -> Iterator[Upstreams]:
    with running_upstreams() as make:
        yield make


def _corefile(body: str) -> str:
    return f".:{{port}} {{\n errors\n{body}\n}}\n"


# --- Corefile (unit) -----------------------------------------------------------------------------


def test_tls_to_forms() -> None:
    cfg = parse(d(".", "tls://10.0.0.1", "tls://10.0.0.2:5353", "tls://10.0.0.3%dns.quad9.net",
                  "tls://10.0.0.4%dns.quad9.net:10853", "tls://[2001:db8::1%dns.example]:8853",
                  "tls://2001:db8::2", "10.0.0.5"))
    assert cfg.upstreams == (
        Upstream("10.0.0.1", 853, True), Upstream("10.0.0.2", 5353, True),
        Upstream("10.0.0.3", 853, True, "dns.quad9.net"), Upstream("10.0.0.4", 10853, True, "dns.quad9.net"),
        Upstream("2001:db8::1", 8853, True, "dns.example"), Upstream("2001:db8::2", 853, True),
        Upstream("10.0.0.5", 53))
    assert cfg.tls_context is not None  # tls:// without a `tls` option: the system CAs (CoreDNS)
    assert cfg.tls_context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert cfg.tls_context.verify_mode == ssl.CERT_REQUIRED


def test_tls_options(pki: Pki) -> None:
    cfg = parse(d(".", "tls://10.0.0.1", children=(opt("tls_servername", SERVER_NAME),
                                                   opt("tls", str(pki.ca_file)))))
    assert cfg.tls_servername == SERVER_NAME and cfg.tls_context is not None
    for files in ((), (str(pki.client_cert), str(pki.client_key)),
                  (str(pki.client_cert), str(pki.client_key), str(pki.ca_file))):
        assert parse(d(".", "tls://10.0.0.1", children=(opt("tls", *files),))).tls_context is not None
    assert parse(d(".", "10.0.0.1")).tls_context is None  # plain DNS needs none


@pytest.mark.parametrize(("directive", "message"), [
    (d(".", "tls://dns.example.com"), "a tls:// upstream must be an IP address"),
    (d(".", "tls://10.0.0.1:0"), "port 0 is out of range"),
    (d(".", "https://10.0.0.1"), "transport 'https' is not supported"),
    (d(".", "quic://10.0.0.1"), "transport 'quic' is not supported"),
    (d(".", "tls://10.0.0.1", children=(opt("tls", "a", "b", "c", "d"),)), "wrong argument count"),
    (d(".", "tls://10.0.0.1", children=(opt("tls", "/nonexistent/ca.pem"),)), "could not load TLS files"),
    (d(".", "tls://10.0.0.1", children=(opt("tls_servername"),)), "wrong argument count"),
    (d(".", "tls://10.0.0.1%a.example", children=(opt("tls_servername", "b.example"),)),
     "both forward ('b.example') and proxy level ('a.example') TLS servernames are set"),
])
def test_bad_tls_options_name_the_line(directive: Directive, message: str) -> None:
    with pytest.raises(CorefileError) as e:
        parse(directive)
    assert message in str(e.value) and "Corefile:" in str(e.value)


# --- through a real kdns process -----------------------------------------------------------------


def _tls_upstream(upstreams: Upstreams, pki: Pki, **kw: object) -> FakeUpstream:
    up = upstreams(tls=pki.server_context(**kw))  # type: ignore[arg-type]
    up.add("www.example.org.", "A", "192.0.2.53", ttl=60)
    return up


@pytest.mark.parametrize("tcp", [False, True], ids=["udp-client", "tcp-client"])
def test_answers_over_tls_reusing_one_connection(kdns: Kdns, upstreams: Upstreams, pki: Pki,
                                                 tcp: bool) -> None:
    up = _tls_upstream(upstreams, pki)
    metrics = free_port()
    k = kdns(_corefile(f" prometheus 127.0.0.1:{metrics}\n forward . tls://{up.tls_address} {{\n"
                       f"  tls_servername {SERVER_NAME}\n  tls {pki.ca_file}\n }}"))
    for _ in range(5):
        r = ask(k.port, "www.example.org", "A", tcp=tcp)
        assert rcode(r) == "NOERROR" and answer_texts(r) == ["192.0.2.53"]
    assert rcode(ask(k.port, "missing.example.org", "A", tcp=tcp)) == "NXDOMAIN"
    assert [q.proto for q in up.seen()] == ["tls"] * 6  # never plain UDP/TCP, whatever the client used
    assert up.tls_connections == 1  # one handshake, then the cached connection (RFC 7858 §3.4)
    _, samples = scrape(f"http://127.0.0.1:{metrics}/metrics")
    labels = {"proxy_name": "forward", "to": up.tls_address, "proto": "tcp-tls"}
    assert value(samples, "coredns_proxy_conn_cache_hits_total", **labels) == 5
    assert value(samples, "coredns_proxy_conn_cache_misses_total", **labels) == 1


def test_certificate_checked_against_the_ip_without_servername(kdns: Kdns, upstreams: Upstreams,
                                                               pki: Pki) -> None:
    """No tls_servername: the certificate must carry the upstream's IP (it does: 127.0.0.1)."""
    up = _tls_upstream(upstreams, pki)
    k = kdns(_corefile(f" forward . tls://{up.tls_address} {{\n  tls {pki.ca_file}\n }}"))
    assert answer_texts(ask(k.port, "www.example.org", "A")) == ["192.0.2.53"]


def test_per_upstream_server_name(kdns: Kdns, upstreams: Upstreams, pki: Pki) -> None:
    up = _tls_upstream(upstreams, pki)
    to = f"tls://127.0.0.1%{SERVER_NAME}:{up.tls_port}"
    k = kdns(_corefile(f" forward . {to} {{\n  tls {pki.ca_file}\n }}"))
    assert answer_texts(ask(k.port, "www.example.org", "A")) == ["192.0.2.53"]


@pytest.mark.parametrize("case", ["wrong-name", "unknown-ca"])
def test_unverified_upstream_is_never_asked(kdns: Kdns, upstreams: Upstreams, pki: Pki, tmp_path: Path,
                                            case: str) -> None:
    """A certificate for another name, or from a CA we do not trust: SERVFAIL, no query sent."""
    up = _tls_upstream(upstreams, pki)
    ca_file = pki.ca_file
    name = "other.example.test" if case == "wrong-name" else SERVER_NAME
    if case == "unknown-ca":
        ca_file = tmp_path / "other-ca.pem"
        trustme.CA().cert_pem.write_to_path(str(ca_file))
    k = kdns(_corefile(f" forward . tls://{up.tls_address} {{\n  tls_servername {name}\n  tls {ca_file}\n"
                       "  max_fails 0\n }"))
    assert rcode(ask(k.port, "www.example.org", "A", timeout=10)) == "SERVFAIL"
    assert up.seen() == [] and up.tls_connections == 0
    assert "CERTIFICATE_VERIFY_FAILED" in k.logs()


def test_client_certificate(kdns: Kdns, upstreams: Upstreams, pki: Pki) -> None:
    """`tls CERT KEY CA` presents a client certificate to an upstream that requires one."""
    up = _tls_upstream(upstreams, pki, require_client_cert=True)
    k = kdns(_corefile(f" forward . tls://{up.tls_address} {{\n  tls_servername {SERVER_NAME}\n"
                       f"  tls {pki.client_cert} {pki.client_key} {pki.ca_file}\n }}"))
    assert answer_texts(ask(k.port, "www.example.org", "A")) == ["192.0.2.53"]
    without = kdns(_corefile(f" forward . tls://{up.tls_address} {{\n  tls_servername {SERVER_NAME}\n"
                             f"  tls {pki.ca_file}\n  max_fails 0\n }}"))
    assert rcode(ask(without.port, "www.example.org", "A", timeout=10)) == "SERVFAIL"
    assert len(up.seen()) == 1


def test_openshift_stanza_round_robin_and_tls_health_checks(kdns: Kdns, upstreams: Upstreams,
                                                            pki: Pki) -> None:
    """OpenShift's generated stanza (two tls:// upstreams, tls_servername, tls CA, round_robin):
    queries alternate; a silent upstream is probed over TLS."""
    a, b = _tls_upstream(upstreams, pki), _tls_upstream(upstreams, pki)
    k = kdns(_corefile(f" forward . tls://{a.tls_address} tls://{b.tls_address} {{\n"
                       f"  tls_servername {SERVER_NAME}\n  tls {pki.ca_file}\n  policy round_robin\n"
                       "  health_check 0.2s\n }"))
    for _ in range(4):
        assert answer_texts(ask(k.port, "www.example.org", "A")) == ["192.0.2.53"]
    assert (len(a.seen()), len(b.seen())) == (2, 2)
    a.mode = "drop"
    for _ in range(2):
        assert answer_texts(ask(k.port, "www.example.org", "A", timeout=10)) == ["192.0.2.53"]
    a.wait_for(lambda: len(a.probes()) >= 1)
    assert {q.proto for q in a.probes()} == {"tls"}
