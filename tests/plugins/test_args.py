"""Zone names in plugin arguments are checked as names (kdns/plugins/_args.py normalize_zone): a label
over 63 octets or an empty label is a Corefile error at the directive's line, never an exception of
another type (regression: BadName escaped setup, found by fuzz/targets/corefile.py)."""

from __future__ import annotations

import pytest

from kdns.corefile import CorefileError, parse_corefile
from kdns.plan import build_plan
from tests.support.units import FakeController

LONG = "x" * 64


@pytest.mark.parametrize(
    ("block", "line"),
    [
        (f"kubernetes cluster.local {{\n fallthrough {LONG}.arpa\n}}", 3),
        (f"log {LONG}.example", 2),
        ("file zones/example.org.zone a..b", 2),
        (f"hosts {{\n 10.0.0.1 a.test\n fallthrough {LONG}\n}}", 4),
        (f"forward . 127.0.0.1 {{\n health_check 5s domain {LONG}.test\n}}", 3),
    ],
)
def test_bad_zone_names_are_errors_at_their_line(block: str, line: int) -> None:
    corefile = parse_corefile(f".:53 {{\n{block}\n}}\n", "/etc/coredns/Corefile", env={})
    with pytest.raises(CorefileError) as info:
        build_plan(corefile, FakeController(), {}, 53)
    assert info.value.line == line
    assert str(info.value).startswith(f"/etc/coredns/Corefile:{line} - Error during parsing: ")
    assert "invalid zone name" in info.value.message
