"""Unit tests of the master-file parser (kdns.plugins.file.zonefile) and the zone checks (zone.py).

Each case that dnslib's own ZoneParser gets wrong has a test here, so a regression to it would show.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dnslib import QTYPE, DNSLabel

from kdns.plugins.file.zone import Zone
from kdns.plugins.file.zonefile import DEFAULT_TTL, Record, ZoneFileError, ZoneFileReader

SOA = "@ 3600 IN SOA ns hostmaster 1 7200 3600 1209600 300\n"


def parse(text: str, origin: str = "example.org.") -> list[Record]:
    return ZoneFileReader().read_text(text, origin, file="db.test")


def one(text: str, origin: str = "example.org.") -> Record:
    (record,) = parse(text, origin)
    return record


def zone_text(record: Record) -> str:
    return str(record.rdata.toZone())


def error(text: str, origin: str = "example.org.") -> ZoneFileError:
    with pytest.raises(ZoneFileError) as info:
        parse(text, origin)
    return info.value


# --- what dnslib's ZoneParser gets wrong ---------------------------------------------------------


def test_ttl_with_units() -> None:
    assert one("www 1h30m IN A 192.0.2.1\n").ttl == 5400
    assert one("www 2w IN A 192.0.2.1\n").ttl == 2 * 604800


def test_class_before_ttl_and_lower_case_class_and_type() -> None:
    record = one("www in 120 a 192.0.2.1\n")
    assert (record.rtype, record.ttl, zone_text(record)) == (QTYPE.A, 120, "192.0.2.1")


def test_relative_origin_is_relative_to_the_current_origin() -> None:
    record = one("$ORIGIN sub\nwww 60 A 192.0.2.1\n")
    assert str(record.owner) == "www.sub.example.org."


def test_at_sign_in_rdata_is_the_origin() -> None:
    assert zone_text(one("@ 60 MX 10 @\n")) == "10 example.org."


def test_relative_srv_target_gets_the_origin() -> None:
    assert zone_text(one("_sip._tcp 60 SRV 10 60 5060 sip\n")) == "10 60 5060 sip.example.org."


def test_txt_decimal_and_character_escapes() -> None:
    record = one('t 60 TXT "semi\\059colon" "say \\"hi\\"" plain\\ word\n')
    assert record.rdata.data == [b"semi;colon", b'say "hi"', b"plain word"]


def test_generic_rdata_of_a_known_type_is_decoded() -> None:
    record = one("g 60 A \\# 4 0a000001\n")
    assert (record.rtype, zone_text(record)) == (QTYPE.A, "10.0.0.1")
    record = one("g 60 TYPE15 \\# 5 000a 016100\n")  # split hex fields are one datum
    assert (record.rtype, zone_text(record)) == (QTYPE.MX, "10 a.")


def test_unknown_type_in_generic_form_keeps_its_octets() -> None:
    record = one("x 60 TYPE65534 \\# 6 0a00 0001 ffff\n")
    assert record.rtype == 65534
    assert record.rdata.data == bytes.fromhex("0a000001ffff")
    assert one("x 60 TYPE65534 \\# 0\n").rdata.data == b""


def test_include_with_origin_and_relative_path(tmp_path: Path) -> None:
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "lab.inc").write_text("printer 60 A 192.0.2.9\n@ 60 TXT lab\n")
    main = tmp_path / "db.main"
    main.write_text(SOA + "$INCLUDE inc/lab.inc lab\nafter 60 A 192.0.2.10\n")
    reader = ZoneFileReader()
    records = reader.read_file(str(main), "example.org.")
    owners = [str(r.owner) for r in records]
    assert owners == ["example.org.", "printer.lab.example.org.", "lab.example.org.", "after.example.org."]
    assert reader.files == [str(main), str(tmp_path / "inc" / "lab.inc")]
    assert (records[1].file, records[1].line) == (str(tmp_path / "inc" / "lab.inc"), 1)


# --- the rest of RFC 1035 §5 -----------------------------------------------------------------------


def test_blank_owner_repeats_the_previous_owner_after_comments_and_blank_lines() -> None:
    records = parse("www 60 A 192.0.2.1\n; comment\n\n   60 AAAA 2001:db8::1\n\tTXT hi\n")
    assert [str(r.owner) for r in records] == ["www.example.org."] * 3


def test_multi_line_record_with_comments_inside_parentheses() -> None:
    record = one("@ 60 IN SOA ns.example.org. hostmaster ( ; start\n 7 ; serial\n 1h 30m\n 1w\n 5m )\n")
    assert zone_text(record) == "ns.example.org. hostmaster.example.org. 7 3600 1800 604800 300"


def test_quoted_strings_keep_semicolons_and_parentheses() -> None:
    assert one('t 60 TXT "a ; b ( c )"\n').rdata.data == [b"a ; b ( c )"]


def test_default_ttl_rules() -> None:
    ttls = [r.ttl for r in parse("a A 192.0.2.1\nb 77 A 192.0.2.2\nc A 192.0.2.3\n$TTL 30\nd A 192.0.2.4\n")]
    # RFC 1035 §5.1: without $TTL the last stated TTL; before any, CoreDNS's (miekg) 3600; then $TTL.
    assert ttls == [DEFAULT_TTL, 77, 77, 30]
    ttls = [r.ttl for r in parse("$TTL 30\na 77 A 192.0.2.1\nb A 192.0.2.2\n")]
    assert ttls == [77, 30]  # an explicit TTL does not replace $TTL (RFC 2308 §4)


def test_every_common_type() -> None:
    text = (
        SOA + "@ NS ns\nns A 192.0.2.53\nns AAAA 2001:db8::53\nw CNAME www.example.net.\n"
        "@ MX 10 mail\n_s._tcp SRV 1 2 3 t\np PTR www\n"
        '@ CAA 0 issue "letsencrypt.org"\n@ TXT "v=spf1 -all"\n'
    )
    got = {(QTYPE.get(r.rtype), zone_text(r)) for r in parse(text)}
    assert got >= {
        ("NS", "ns.example.org."),
        ("A", "192.0.2.53"),
        ("AAAA", "2001:db8::53"),
        ("CNAME", "www.example.net."),
        ("MX", "10 mail.example.org."),
        ("SRV", "1 2 3 t.example.org."),
        ("PTR", "www.example.org."),
        ("CAA", '0 issue "letsencrypt.org"'),
    }


def test_escaped_dot_stays_inside_a_label() -> None:
    assert one("a\\.b 60 A 192.0.2.1\n").owner.label == (b"a.b", b"example", b"org")


# --- errors name the line --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("a 60 A 192.0.2.1\nb 60 A 192.0.2.300\n", 2, "not an IPv4 address"),
        ("a 60 A 2001:db8::1\n", 1, "not an IPv4 address"),
        ("a 60 AAAA 192.0.2.1\n", 1, "not an IPv6 address"),
        ("\n\na 60 FOO x\n", 3, "unknown record type FOO"),
        ('a 60 TXT "open\n', 1, "unterminated quoted string"),
        ("a 60 MX ( 10\nmail\n", 1, "'(' is never closed"),
        ("a 60 A 192.0.2.1 )\n", 1, "')' without '('"),
        ("a 60 CH A 192.0.2.1\n", 1, "class CH is not supported"),
        ("a 60 A\n", 1, "A wants 1 RDATA fields, got 0"),
        ("a 60 MX 70000 mail\n", 1, "preference '70000'"),
        ("a 9999999999 A 192.0.2.1\n", 1, "above 2^31-1"),
        ("a 60 TYPE65534 \\# 3 0a0000\nb 60 TYPE65534 \\# 4 0a00\n", 2, "says 4 octets but the data has 2"),
        ("a 60 TYPE65534 \\# 2 zz00\n", 1, "not hexadecimal"),
        ("a 60 A \\# 5 0a00000100\n", 1, "octets left over"),
        ("a 60 DNAME b\n", 1, "DNAME synthesis is not implemented"),
        ("a 60 AXFR \\# 0\n", 1, "meta type"),
        ("a 60 TYPE41 \\# 0\n", 1, "meta type"),
        ("a 60 HINFO x y\n", 1, "RFC 3597 form"),
        ("a 60 TXT " + '"' + "x" * 256 + '"\n', 1, "longer than 255 octets"),
        ("a" * 64 + " 60 A 192.0.2.1\n", 1, "longer than 63 octets"),
        ("a..b 60 A 192.0.2.1\n", 1, "empty label"),
        ("   60 A 192.0.2.1\n", 1, "no previous record"),
        ("$GENERATE 1-3 h$ A 192.0.2.$\n", 1, "$GENERATE is not supported"),
        ("$ORIGIN\n", 1, "$ORIGIN wants 1 argument"),
        ("$FOO bar\n", 1, "unknown directive $FOO"),
        ('a 60 CAA 0 "is sue" x\n', 1, "CAA tag"),
        ("a 60 SOA ns hm 1 2 3 4\n", 1, "SOA wants 7 RDATA fields, got 6"),
    ],
)
def test_errors_name_file_and_line(text: str, line: int, words: str) -> None:
    e = error(text)
    assert (e.file, e.line) == ("db.test", line)
    assert words in e.message
    assert str(e).startswith(f"db.test:{line}: ")


def test_errors_inside_an_include_name_the_included_file(tmp_path: Path) -> None:
    (tmp_path / "bad.inc").write_text("ok 60 A 192.0.2.1\nbad 60 A nope\n")
    main = tmp_path / "db.main"
    main.write_text(SOA + "$INCLUDE bad.inc\n")
    with pytest.raises(ZoneFileError) as info:
        ZoneFileReader().read_file(str(main), "example.org.")
    assert (info.value.file, info.value.line) == (str(tmp_path / "bad.inc"), 2)
    assert info.value.files == (str(main), str(tmp_path / "bad.inc"))


def test_missing_include_names_the_include_line(tmp_path: Path) -> None:
    main = tmp_path / "db.main"
    main.write_text(SOA + "\n$INCLUDE nothere.inc\n")
    with pytest.raises(ZoneFileError) as info:
        ZoneFileReader().read_file(str(main), "example.org.")
    assert (info.value.file, info.value.line) == (str(main), 3)
    assert "cannot read zone file" in info.value.message


def test_include_loop_stops(tmp_path: Path) -> None:
    (tmp_path / "db.loop").write_text(SOA + "$INCLUDE db.loop\n")
    with pytest.raises(ZoneFileError, match="nested deeper than 7"):
        ZoneFileReader().read_file(str(tmp_path / "db.loop"), "example.org.")


def test_missing_file() -> None:
    with pytest.raises(ZoneFileError, match="cannot read zone file"):
        ZoneFileReader().read_file("/nonexistent/db.zone", "example.org.")


# --- zone checks (zone.py) -------------------------------------------------------------------------


def build(text: str) -> Zone:
    return Zone("example.org.", parse(text), ["db.test"])


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (SOA + "www.example.com. 60 A 192.0.2.1\n", 2, "outside the zone"),
        (SOA + "w 60 CNAME x\nw 60 A 192.0.2.1\n", 2, "has a CNAME and other data"),
        (SOA + "w 60 CNAME x\nw 60 CNAME y\n", 2, "has a CNAME and other data"),
        (SOA + "sub 60 SOA ns hm 1 2 3 4 5\n", 2, "SOA at sub.example.org., which is not the apex"),
        (SOA + "@ 60 SOA ns hm 2 2 3 4 5\n", 1, "a zone has exactly one SOA"),
        ("www 60 A 192.0.2.1\n", 0, "no SOA record"),
    ],
)
def test_zone_checks(text: str, line: int, words: str) -> None:
    with pytest.raises(ZoneFileError) as info:
        build(text)
    assert info.value.line == line
    assert words in info.value.message


def test_duplicate_records_are_one_and_ttl_mismatch_is_a_warning() -> None:
    zone = build(SOA + "w 60 A 192.0.2.1\nw 60 A 192.0.2.1\nw 30 A 192.0.2.2\n")
    result = zone.lookup(DNSLabel("w.example.org."), QTYPE.A)
    assert sorted((rr.ttl, str(rr.rdata)) for rr in result.answer) == [(60, "192.0.2.1"), (60, "192.0.2.2")]
    assert zone.warnings == [
        "db.test:4: TTL 30 differs from db.test:2 in one RRset; using 60 (RFC 2181 §5.2)"
    ]
    assert zone.serial == 1


def test_include_of_a_path_with_a_nul_is_an_error_at_its_line() -> None:
    """Regression (fuzz/targets/zonefile.py): open() raises ValueError, not OSError, for a NUL."""
    text = "@ 300 IN SOA ns hostmaster 1 2 3 4 5\n$INCLUDE bad\0name\n"
    with pytest.raises(ZoneFileError) as info:
        ZoneFileReader().read_text(text, "example.org.", "/zones/example.org.zone")
    assert info.value.line == 2 and "cannot read zone file" in str(info.value)


def test_an_origin_outside_ascii_is_a_name() -> None:
    """Origins come as kdns's escaped text (`\\197\\154`); regression (fuzz/targets/corefile.py):
    dnslib read the escapes as characters and failed to encode them."""
    origin = "\\197\\154.example."
    records = ZoneFileReader().read_text("@ 300 IN SOA ns hostmaster 1 2 3 4 5\n", origin)
    zone = Zone(origin, records)
    assert zone.origin.label == (b"\xc5\x9a", b"example")
