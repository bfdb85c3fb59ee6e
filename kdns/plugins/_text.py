"""How CoreDNS spells things in logs and metric labels, for errors, log, prometheus, health, reload.

CoreDNS prints types, classes and rcodes with miekg/dns's tables and durations with Go's
time.Duration.String; operators grep for those spellings, so kdns reproduces them exactly.
"""

from __future__ import annotations

from decimal import Decimal

from dnslib import QTYPE, RCODE

# miekg/dns RcodeToString beyond dnslib's 0..10 (RFC 2845/2930/6895/7873). 16 is both BADVERS and
# BADSIG; miekg (and so CoreDNS) prints BADSIG.
_EXTENDED_RCODES = {
    16: "BADSIG",
    17: "BADKEY",
    18: "BADTIME",
    19: "BADMODE",
    20: "BADNAME",
    21: "BADALG",
    22: "BADTRUNC",
    23: "BADCOOKIE",
}
# miekg/dns ClassToString (dnslib spells 4, 254 and 255 differently).
_CLASSES = {1: "IN", 2: "CS", 3: "CH", 4: "HS", 254: "NONE", 255: "ANY"}
# dnslib's table with its one mislabel fixed (53 is SMIMEA, RFC 8162).
_TYPES = {**QTYPE.forward, 53: "SMIMEA"}


def qtype_text(qtype: int) -> str:
    """`A`, `AAAA`…, or `TYPE65534` for types without a mnemonic (RFC 3597 §5)."""
    return _TYPES.get(qtype) or f"TYPE{qtype}"


def qclass_text(qclass: int) -> str:
    """`IN`, `CH`…, or `CLASS5` (RFC 3597 §5)."""
    return _CLASSES.get(qclass) or f"CLASS{qclass}"


def rcode_text(rcode: int) -> str | None:
    """The rcode's mnemonic, or None when miekg/dns has none."""
    if 0 <= rcode <= 10:
        return str(RCODE.get(rcode))
    return _EXTENDED_RCODES.get(rcode)


def rcode_label(rcode: int) -> str:
    """CoreDNS's rcode.ToString: the mnemonic, else `RCODE<n>` (the `rcode` metric label)."""
    return rcode_text(rcode) or f"RCODE{rcode}"


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String: `5s`, `1m30s`, `250ms`, `1.5µs`, `0s`."""
    ns = round(seconds * 1e9)
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns == 0:
        return "0s"
    if ns < 1_000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{_fraction(ns, 1_000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{_fraction(ns, 1_000_000)}ms"
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    secs = f"{_fraction(rest, 10**9)}s"
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}"
    if minutes:
        return f"{sign}{minutes}m{secs}"
    return sign + secs


def _fraction(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = str(frac).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}"


def go_seconds(seconds: float) -> str:
    """strconv.FormatFloat(s, 'f', -1, 64) + "s": the shortest exact decimal, never an exponent."""
    return f"{Decimal(repr(round(seconds, 9))).normalize():f}s"


# The reverse tables, for Corefile arguments: miekg/dns's StringToType/StringToClass/StringToRcode,
# which CoreDNS's plugins look names up in (exact spelling: callers upper-case where CoreDNS does).
_TYPE_NUMBERS = {name: number for number, name in _TYPES.items()}
_CLASS_NUMBERS = {name: number for number, name in _CLASSES.items()}
_RCODE_NUMBERS = {
    **{str(RCODE.get(n)): n for n in range(11)},
    **{name: n for n, name in _EXTENDED_RCODES.items()},
    "NOTIMPL": 4,  # miekg/dns keeps this old misspelling as an alias
}


def qtype_number(text: str) -> int | None:
    """`A` → 1…; None for a name miekg/dns does not know."""
    return _TYPE_NUMBERS.get(text)


def qclass_number(text: str) -> int | None:
    """`IN` → 1, `CH` → 3…; None for a name miekg/dns does not know."""
    return _CLASS_NUMBERS.get(text)


def rcode_number(text: str) -> int | None:
    """`NXDOMAIN` → 3…; None for a name miekg/dns does not know."""
    return _RCODE_NUMBERS.get(text)
