"""Write the seed corpus: `python -m fuzz.seeds` (re)writes fuzz/corpus/*/seed-*.

Seeds are real inputs of each shape the targets read, so the fuzzer starts from what clients and
operators really send: queries as stub resolvers, dig and Pods ask them (plain, EDNS with options,
compression, each section), the Corefiles of kind and of the distributions kdns replaces CoreDNS in
(tests/support/distributions.py), and the zone files in zones/. Files named `regression-*` beside
them are inputs that once broke a rule; this script leaves them alone.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from pathlib import Path

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from fuzz.targets.packet import CONFIG
from tests.support.distributions import ALL as DISTRIBUTIONS
from tests.support.kind import KIND_COREFILE

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "fuzz" / "corpus"
HEADER = struct.Struct("!HHHHHH")


def _query(name: str | dns.name.Name, rdtype: str = "A", **kw: object) -> bytes:
    return dns.message.make_query(name, rdtype, **kw).to_wire()  # type: ignore[arg-type]


def packets() -> Iterator[tuple[str, bytes]]:
    """(what, wire) for each query shape."""
    for name, rdtype in [
        ("web.default.svc.cluster.local.", "A"),
        ("web.default.svc.cluster.local.", "AAAA"),
        ("_http._tcp.web.default.svc.cluster.local.", "SRV"),
        ("web-0.web-hl.default.svc.cluster.local.", "A"),
        ("20.0.96.10.in-addr.arpa.", "PTR"),
        ("web.default.svc.cluster.local.default.svc.cluster.local.", "A"),  # a search-path expansion
        ("10-244-0-5.default.pod.cluster.local.", "A"),
        ("web.default.example.net.", "A"),
        ("www.example.org.", "A"),
        ("example.org.", "MX"),
        ("example.org.", "SOA"),
        ("rewritten.example.org.", "A"),
        ("web.alias.test.", "A"),
        ("ip-1-2.tmpl.test.", "A"),
        ("x.blocked.test.", "TXT"),
        ("host.test.", "AAAA"),
        ("anything.example.com.", "ANY"),
        ("anything.example.com.", "HINFO"),
        ("example.com.", "AXFR"),
        (".", "NS"),
    ]:
        yield f"{rdtype.lower()}-{name.rstrip('.') or 'root'}", _query(name, rdtype)
    yield "ch-txt-version.bind", _query("version.bind.", "TXT", rdclass="CH")
    yield "edns-do-4096", _query("www.example.org.", "A", use_edns=0, payload=4096, want_dnssec=True)
    nsid = dns.edns.GenericOption(dns.edns.OptionType.NSID, b"")
    yield "edns-nsid", _query("web.default.svc.cluster.local.", options=[nsid])
    cookie = dns.edns.GenericOption(dns.edns.OptionType.COOKIE, bytes(range(8)))
    ecs = dns.edns.ECSOption("192.0.2.0", 24)
    yield "edns-cookie-ecs", _query("host.test.", use_edns=0, options=[cookie, ecs])
    private = dns.edns.GenericOption(dns.edns.OptionType.make(65001), b"x" * 4)
    yield "edns-many-options", _query("a.test.", options=[private] * 40)
    yield "edns-version-1", _query("a.test.", use_edns=1)
    yield "edns-payload-100", _query("example.org.", "ANY", use_edns=0, payload=100)
    yield "label-63", _query(dns.name.Name([b"a" * 63, b"test", b""]))
    yield "name-255", _query(dns.name.Name([b"b" * 63] * 3 + [b"c" * 61, b""]))
    yield "label-escaped-dot", _query(dns.name.Name([b"web.default", b"svc", b"cluster", b"local", b""]))
    yield "label-not-ascii", _query(dns.name.Name([b"\xff\xfe\x00", b"test", b""]))
    yield "upper-case", _query("WeB.DeFaUlT.SvC.ClUsTeR.LoCaL.")
    notify = dns.message.make_query("example.org.", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    yield "opcode-notify", notify.to_wire()
    update = dns.message.make_query("example.org.", "SOA")
    update.set_opcode(dns.opcode.UPDATE)
    yield "opcode-update", update.to_wire()
    response = dns.message.make_response(dns.message.make_query("www.example.org.", "A"))
    yield "response", response.to_wire()
    # Records in each section, and an OPT where it must not be (RFC 6891 §6.1.1).
    q = dns.message.make_query("www.example.org.", "A")
    q.answer.append(dns.rrset.from_text("www.example.org.", 60, "IN", "A", "192.0.2.1"))
    q.authority.append(dns.rrset.from_text("example.org.", 60, "IN", "NS", "ns.example.org."))
    q.additional.append(dns.rrset.from_text("ns.example.org.", 60, "IN", "A", "192.0.2.2"))
    yield "records-in-every-section", q.to_wire()
    plain = _query("www.example.org.", use_edns=0)
    yield "opt-in-answer", plain[:6] + b"\x00\x01" + plain[8:10] + b"\x00\x00" + plain[12:]
    # Header-level shapes.
    one = _query("www.example.org.")
    qid, flags, _, an, ns, ar = HEADER.unpack_from(one)
    yield "qdcount-0", HEADER.pack(qid, flags, 0, an, ns, ar)
    yield "qdcount-2", HEADER.pack(qid, flags, 2, an, ns, ar) + one[12:] + b"\xc0\x0c\x00\x1c\x00\x01"
    yield "header-only-11", one[:11]
    yield "pointer-to-question", one + b"\xc0\x0c\x00\x01\x00\x01"  # trailing octets, ignored
    # A compressed owner in additional (pointer to the question's name), as real stacks send.
    compressed = bytearray(one)
    compressed[10:12] = b"\x00\x01"
    record = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + b"\xc0\x00\x02\x01"
    yield "compressed-additional", bytes(compressed) + record
    yield "pointer-loop", HEADER.pack(1, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01"


def corefiles() -> Iterator[tuple[str, bytes]]:
    yield "kind", KIND_COREFILE.encode()
    yield "kdns-example", (ROOT / "Corefile.example").read_bytes()
    yield "fuzz-packet-config", CONFIG.encode()
    for d in DISTRIBUTIONS:
        yield d.name, d.corefile.encode()
    yield "snippet-import", b"(common) {\n  errors\n  cache 30\n}\n.:1053 {\n  import common\n  whoami\n}\n"
    yield "env-and-keys", b"{$ZONE:example.org}:1053 dns://10.0.0.0/8 {\n  file zones/example.org.zone\n}\n"
    yield "forward-options", (
        b". {\n  forward . 127.0.0.1:5300 [::1]:5300 {\n    policy sequential\n"
        b"    max_fails 3\n    health_check 5s no_rec domain example.org\n  }\n}\n"
    )


def zones() -> Iterator[tuple[str, bytes]]:
    yield "example.org", (ROOT / "zones" / "example.org.zone").read_bytes()
    yield "include-only", (
        b"$ORIGIN example.org.\n@ 300 IN SOA ns hostmaster 1 2 3 4 5\n$INCLUDE example.org.lab.inc lab\n"
    )
    yield "escapes-and-generic", (
        b"$TTL 1h\n@ SOA ns.example.org. h.example.org. ( 1 7200 1800 86400 30 )\n"
        b"  NS ns\nns A 192.0.2.1\n  AAAA 2001:db8::1\n"
        b'txt TXT "a\\"b" \\059semi "\\255"\nweird\\.label A 192.0.2.9\n'
        b"gen TYPE65000 \\# 3 abcdef\nraw A \\# 4 c0000201\n"
        b"*.wild CNAME txt\nmail MX 10 ns\n_sip._tcp SRV 0 5 5060 ns\ncaa CAA 0 issue \"ca.example\"\n"
        b"sub NS ns.sub\nns.sub A 192.0.2.53\n"
    )  # fmt: skip


def write() -> None:
    for target, seeds in (("packet", packets()), ("corefile", corefiles()), ("zonefile", zones())):
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        for what, data in seeds:
            (folder / f"seed-{what}").write_bytes(data)
        print(f"{folder.relative_to(ROOT)}: {len(list(folder.iterdir()))} files")


def digest(data: bytes) -> str:
    """How a regression input is named: `regression-<what>-<sha1 prefix>`."""
    return hashlib.sha1(data).hexdigest()[:12]


if __name__ == "__main__":
    write()
