"""Argument helpers shared by every plugin's setup: counts, numbers, durations, zones.

Each raises the directive's CorefileError, so a bad value names file, line and directive.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from kdns.corefile.errors import CorefileError
from kdns.corefile.lexer import Token
from kdns.corefile.model import Directive
from kdns.corefile.parser import reverse_zone_for_cidr
from kdns.protocol import names

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def expect_args(d: Directive, minimum: int, maximum: int | None = None) -> tuple[str, ...]:
    """The directive's arguments, or an error saying how many were wanted."""
    n = len(d.args)
    if n < minimum or (maximum is not None and n > maximum):
        if maximum is None:
            want = f"at least {minimum}"
        elif minimum == maximum:
            want = f"exactly {minimum}"
        else:
            want = f"{minimum} to {maximum}"
        raise d.error(f"wrong argument count: want {want}, got {n}")
    return d.args


def parse_int(d: Directive, text: str, lo: int, hi: int, what: str = "value") -> int:
    try:
        value = int(text)
    except ValueError:
        raise d.error(f"{what} '{text}' is not a whole number") from None
    if not lo <= value <= hi:
        raise d.error(f"{what} {value} is out of range {lo}..{hi}")
    return value


def parse_duration(d: Directive, text: str, what: str = "duration") -> float:
    """Go-style durations (`5s`, `1m30s`, `250ms`) → seconds. A bare number means seconds."""
    if re.fullmatch(r"\d+", text):
        return float(text)
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise d.error(f"invalid {what} '{text}' (want e.g. 5s, 250ms, 1m30s)")
    return total


def normalize_zone(d: Directive, name: str) -> str:
    """Lower-case FQDN form of a zone name, escaped as kdns writes names (kdns.protocol.names); a
    text that is no domain name (a label over 63 octets, an empty label…) is an error at `d`."""
    try:
        return names.canonical(name)
    except names.BadName as e:
        raise d.error(f"invalid zone name {name!r}: {e}") from None


def zones_or_default(d: Directive, args: Sequence[str], default: Sequence[str]) -> tuple[str, ...]:
    """Zones named in `args` (CIDRs become reverse zones), or the server block's zones."""
    if not args:
        return tuple(default)
    zones = []
    for a in args:
        if "/" in a:
            try:
                zones.append(reverse_zone_for_cidr(a, Token(a, d.file, d.line)))
            except CorefileError as e:
                raise d.error(e.message) from None
        else:
            zones.append(normalize_zone(d, a))
    return tuple(zones)


def unknown_property(d: Directive, child: Directive) -> CorefileError:
    return CorefileError(f"unknown property '{child.name}'", child.file, child.line, d.name)
