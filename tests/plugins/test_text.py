"""CoreDNS's spellings of durations, types, classes and rcodes (Go and miekg/dns), used in logs and
metric labels."""

from __future__ import annotations

import pytest

from kdns.plugins._text import go_duration, go_seconds, qclass_text, qtype_text, rcode_label, rcode_text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"), (5, "5s"), (1.5, "1.5s"), (90, "1m30s"), (300, "5m0s"), (3600, "1h0m0s"),
        (3725.25, "1h2m5.25s"), (0.25, "250ms"), (0.0015, "1.5ms"), (2e-6, "2µs"), (5e-9, "5ns"),
        (-2, "-2s"),
    ],
)  # fmt: skip
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(2.0, "2s"), (100.0, "100s"), (0.000257233, "0.000257233s"), (1.5e-05, "0.000015s"),
     (0.0002572330001839873, "0.000257233s")],
)  # fmt: skip
def test_go_seconds_has_no_exponent_and_nanosecond_precision(seconds: float, text: str) -> None:
    assert go_seconds(seconds) == text


def test_miekg_names() -> None:
    assert [qtype_text(t) for t in (1, 28, 13, 53, 65, 65534)] == [
        "A",
        "AAAA",
        "HINFO",
        "SMIMEA",
        "HTTPS",
        "TYPE65534",
    ]
    assert [qclass_text(c) for c in (1, 3, 4, 254, 255, 5)] == ["IN", "CH", "HS", "NONE", "ANY", "CLASS5"]
    assert [rcode_text(r) for r in (0, 2, 3, 5, 16, 23, 24)] == [
        "NOERROR", "SERVFAIL", "NXDOMAIN", "REFUSED", "BADSIG", "BADCOOKIE", None,
    ]  # fmt: skip
    assert rcode_label(24) == "RCODE24" and rcode_label(3) == "NXDOMAIN"
