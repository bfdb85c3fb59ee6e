"""Domain names as labels: reading them from the wire, writing them as text, matching zones.

A name is a sequence of labels, and a label may hold any octet, a dot included (RFC 2181 §11). Text
forms are only safe to compare or to use as keys when every such octet is escaped, so that two
different label sequences never share a text (RFC 1035 §5.1): here `.` and `\\` become `\\.` and
`\\\\`, and octets outside printable ASCII become `\\DDD`. Without that, the one-label name
`p10\\.poison.example` would read as the two-label `p10.poison.example` and one client's question
could decide what every client gets for the other (a poisoned cache key).

Case: names compare case-insensitively for ASCII letters only (RFC 4343 §3); escaped text is ASCII,
so `str.lower()` on it is exactly that.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

# RFC 1035 §2.3.4: labels of at most 63 octets, names of at most 255 octets on the wire.
MAX_LABEL = 63
MAX_NAME = 255
_POINTER = 0xC0
# A 255-octet name has at most 127 labels, so a real name never needs more pointers than that; Go's
# miekg/dns (CoreDNS's parser) stops at 126. Deeper chains are an attack on recursive parsers.
MAX_POINTERS = 126
# Octets written as themselves in text: printable ASCII but the two that carry meaning in names.
_PLAIN = frozenset(range(0x21, 0x7F)) - {ord("."), ord("\\")}
_ALL_PLAIN = re.compile(rb"[\x21-\x2d\x2f-\x5b\x5d-\x7e]*")  # the same set, checked in one call


class BadName(ValueError):
    """A name that breaks RFC 1035's rules: too long, a bad label type, a pointer loop."""


def read_name(msg: bytes, start: int, allow_pointers: bool = True) -> tuple[tuple[bytes, ...], int]:
    """The labels of the name at `start` and the offset just past it in `msg`.

    Compression pointers must point strictly backwards (RFC 1035 §4.1.4 speaks of "a prior
    occurrence"), so a loop fails on its first pointer that does not; chains are cut at
    MAX_POINTERS hops, and the 255-octet limit is checked on the expanded name. Raises BadName."""
    labels: list[bytes] = []
    length = 1  # the root label's octet
    hops = 0
    i, end, floor = start, -1, start
    while True:
        if i >= len(msg):
            raise BadName("name runs past the end of the message")
        size = msg[i]
        if size == 0:
            return tuple(labels), (i + 1 if end < 0 else end)
        if size & _POINTER == _POINTER:
            if not allow_pointers or i + 1 >= len(msg):
                raise BadName("compression pointer where none may be")
            target = ((size & 0x3F) << 8) | msg[i + 1]
            if target >= floor or target < 12:
                raise BadName("compression pointer does not point backwards into the message")
            hops += 1
            if hops > MAX_POINTERS:
                raise BadName(f"more than {MAX_POINTERS} compression pointers in one name")
            if end < 0:
                end = i + 2
            i = floor = target
            continue
        if size > MAX_LABEL:
            raise BadName(f"label type {size >> 6:#04b} is not supported (RFC 6891 §5)")
        length += size + 1
        if length > MAX_NAME:
            raise BadName(f"name longer than {MAX_NAME} octets")
        if i + 1 + size > len(msg):
            raise BadName("label runs past the end of the message")
        labels.append(msg[i + 1 : i + 1 + size])
        i += size + 1


def label_text(label: bytes) -> str:
    """One label as escaped text (RFC 1035 §5.1)."""
    if _ALL_PLAIN.fullmatch(label):
        return label.decode("ascii")
    out = []
    for c in label:
        if c in _PLAIN:
            out.append(chr(c))
        elif c in (0x2E, 0x5C):  # "." and "\"
            out.append("\\" + chr(c))
        else:
            out.append(f"\\{c:03d}")
    return "".join(out)


def to_text(labels: Sequence[bytes]) -> str:
    """An absolute name as escaped text with its trailing dot; the root is `.`."""
    if not labels:
        return "."
    if _ALL_PLAIN.fullmatch(b"".join(labels)):  # nothing to escape: one join (the common case)
        return b".".join(labels).decode("ascii") + "."
    return ".".join(map(label_text, labels)) + "."


def from_text(text: str) -> tuple[bytes, ...]:
    """Escaped text (absolute or not) → labels. Raises BadName for bad escapes or sizes."""
    if text in (".", ""):
        return ()
    labels: list[bytes] = []
    current = bytearray()
    i, n = 0, len(text)
    ended_with_dot = False
    while i < n:
        ch = text[i]
        ended_with_dot = False
        if ch == "\\":
            digits = text[i + 1 : i + 4]
            if len(digits) == 3 and digits.isdigit():
                value = int(digits)
                if value > 255:
                    raise BadName(f"escape \\{digits} is not an octet")
                current.append(value)
                i += 4
                continue
            if i + 1 >= n:
                raise BadName("name ends with a lone backslash")
            current.extend(text[i + 1].encode("utf-8"))
            i += 2
            continue
        if ch == ".":
            if not current:
                raise BadName(f"empty label in {text!r}")
            labels.append(bytes(current))
            current = bytearray()
            ended_with_dot = True
            i += 1
            continue
        current.extend(ch.encode("utf-8"))
        i += 1
    if current:
        labels.append(bytes(current))
    elif not ended_with_dot:
        raise BadName(f"empty label in {text!r}")
    _check_sizes(labels)
    return tuple(labels)


def _check_sizes(labels: Sequence[bytes]) -> None:
    if any(len(label) > MAX_LABEL for label in labels):
        raise BadName(f"label longer than {MAX_LABEL} octets")
    if sum(len(label) + 1 for label in labels) + 1 > MAX_NAME:
        raise BadName(f"name longer than {MAX_NAME} octets")


def to_wire(labels: Iterable[bytes]) -> bytes:
    """Uncompressed wire form, root label included."""
    return b"".join(bytes((len(label),)) + label for label in labels) + b"\x00"


def lower(labels: Iterable[bytes]) -> tuple[bytes, ...]:
    """ASCII-lower-cased labels (RFC 4343 §3: other octets are compared as they are)."""
    return tuple(label.lower() for label in labels)


def canonical(text: str) -> str:
    """Lower-case escaped text of any spelling of a name (zones from a Corefile, hosts entries)."""
    return to_text(from_text(text)).lower()


def split(text: str) -> list[str]:
    """The labels of escaped text as escaped label texts: splits at dots that are not escaped.
    `a\\.b.c.` → [`a\\.b`, `c`]. The root is []."""
    if text in (".", ""):
        return []
    out: list[str] = []
    start = i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 4 if text[i + 1 : i + 4].isdigit() else 2
            continue
        if ch == ".":
            out.append(text[start:i])
            start = i + 1
        i += 1
    if start < n:
        out.append(text[start:])
    return out


def is_subdomain(name: str, zone: str) -> bool:
    """Is `name` (canonical text) `zone` or below it? Both absolute, lower-case, escaped.

    A text suffix is not enough: `p\\.cluster.local.` ends with `.cluster.local.` but is the
    two-label name {p.cluster, local}. The dot before the zone must not be escaped, i.e. not be
    preceded by an odd number of backslashes."""
    if zone == ".":
        return True
    if name == zone:
        return True
    if not name.endswith(zone) or len(name) <= len(zone) or name[-len(zone) - 1] != ".":
        return False
    backslashes = 0
    i = len(name) - len(zone) - 2
    while i >= 0 and name[i] == "\\":
        backslashes += 1
        i -= 1
    return backslashes % 2 == 0


def zone_matches(name: str, zones: Iterable[str]) -> str | None:
    """The longest zone of `zones` that `name` (canonical text) is in or under, else None."""
    best: str | None = None
    for zone in zones:
        if (best is None or len(zone) > len(best)) and is_subdomain(name, zone):
            best = zone
    return best


def relative(name: str, zone: str) -> list[str]:
    """The labels of `name` below `zone` (escaped label texts); `name` must be in `zone`."""
    if zone == ".":
        return split(name)
    return split(name[: len(name) - len(zone)])
