"""kdns.protocol.names and kdns.protocol.query: names as labels, queries read off the wire."""

from __future__ import annotations

import struct

import dns.edns
import dns.message
import dns.name
import pytest

from kdns.protocol import names, query


@pytest.mark.parametrize(
    ("labels", "text"),
    [
        ((), "."),
        ((b"www", b"example"), "www.example."),
        ((b"p10.poison", b"example"), "p10\\.poison.example."),
        ((b"a\\b",), "a\\\\b."),
        ((b"sp ace", b"\xff\x00"), "sp\\032ace.\\255\\000."),
    ],
)
def test_text_is_escaped_and_reads_back(labels: tuple[bytes, ...], text: str) -> None:
    assert names.to_text(labels) == text
    assert names.from_text(text) == labels
    # the same text dnspython writes for those labels (its own escaping rules, RFC 1035 §5.1)
    assert dns.name.from_text(text).labels == (*labels, b"")


def test_distinct_label_sequences_never_share_a_text() -> None:
    assert names.to_text((b"a.b", b"c")) != names.to_text((b"a", b"b", b"c"))


def test_zone_matching_respects_escaped_dots() -> None:
    assert names.is_subdomain("web.cluster.local.", "cluster.local.")
    assert names.is_subdomain("cluster.local.", "cluster.local.")
    assert not names.is_subdomain("p\\.cluster.local.", "cluster.local.")
    assert names.is_subdomain("p\\\\.cluster.local.", "cluster.local.")  # an escaped backslash
    assert not names.is_subdomain("xcluster.local.", "cluster.local.")
    assert names.zone_matches("a.b.example.", [".", "example.", "b.example."]) == "b.example."
    assert names.relative("web\\.default.svc.cluster.local.", "cluster.local.") == ["web\\.default", "svc"]


def test_canonical_lower_cases_and_escapes() -> None:
    assert names.canonical("Cluster.Local") == "cluster.local."
    with pytest.raises(names.BadName):
        names.from_text("a..b")
    with pytest.raises(names.BadName):
        names.from_text("x" * 64 + ".")


def _wire(msg: dns.message.Message) -> bytes:
    return msg.to_wire()


def test_query_is_read_with_its_edns_options() -> None:
    q = dns.message.make_query(
        "Web.Default.", "AAAA", use_edns=0, payload=4096, want_dnssec=True,
        options=[dns.edns.GenericOption(10, b"\x01" * 8)],
    )  # fmt: skip
    parsed = query.parse(_wire(q))
    assert parsed.labels == (b"Web", b"Default") and parsed.qtype == 28 and parsed.qclass == 1
    assert parsed.edns is not None and (parsed.edns.udp_size, parsed.edns.do) == (4096, True)
    assert parsed.edns.options == ((10, b"\x01" * 8),)
    assert parsed.question_end == 12 + len(b"\x03Web\x07Default\x00") + 4


def test_responses_and_runts_are_dropped() -> None:
    with pytest.raises(query.Dropped):
        query.parse(b"\x00" * 11)
    response = bytearray(_wire(dns.message.make_query("a.", "A")))
    response[2] |= 0x80
    with pytest.raises(query.Dropped):
        query.parse(bytes(response))


@pytest.mark.parametrize(
    "tail",
    [
        b"\x01a",  # name runs off the end
        b"\x01a\x00\x00",  # question cut short
        b"\x41a\x00\x00\x01\x00\x01",  # label type 0b01
        b"\xc0\x0c\x00\x01\x00\x01",  # pointer to itself
    ],
)
def test_broken_questions_are_format_errors_with_the_id(tail: bytes) -> None:
    with pytest.raises(query.FormatError) as e:
        query.parse(struct.pack("!HHHHHH", 99, 0x0100, 1, 0, 0, 0) + tail)
    assert e.value.query_id == 99


def test_two_opts_or_an_opt_in_answers_are_format_errors() -> None:
    q = b"\x01a\x00\x00\x01\x00\x01"
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"
    with pytest.raises(query.FormatError):
        query.parse(struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 2) + q + opt + opt)
    with pytest.raises(query.FormatError):
        query.parse(struct.pack("!HHHHHH", 1, 0, 1, 1, 0, 0) + q + opt)
    assert query.parse(struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 1) + q + opt).edns is not None
