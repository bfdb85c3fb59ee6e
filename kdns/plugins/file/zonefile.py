"""RFC 1035 §5 master files → records, every error naming `file:line`.

We tried dnslib's ZoneParser (dnslib 0.9.26, `RR.fromZone`) first. It is wrong or missing on:
$INCLUDE (unsupported); errors carry no line numbers; TTLs with units on records (`1h`); class
before TTL (`IN 300 A`) and lower-case class/type; a relative `$ORIGIN` (`$ORIGIN sub` became
`sub.`); `@` inside RDATA (became `@.example.org.`); relative SRV targets (left relative);
`\\DDD` escapes in TXT (read as octal, so `\\059` fails); RFC 3597 generic RDATA for a known type
(`A \\# 4 0a000001` rejected). So the front end — lexer, directives, owner/TTL/class rules, domain
names and character-strings — is ours, and dnslib supplies the RDATA classes (A, AAAA, NS, CNAME,
PTR, MX, SRV, SOA, TXT, CAA, RD) and the wire parsers used to decode RFC 3597 `\\#` data.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from dnslib import AAAA, CAA, CNAME, MX, NS, PTR, QTYPE, RD, SOA, SRV, TXT, A, DNSBuffer, DNSLabel
from dnslib.dns import RDMAP

Labels = tuple[bytes, ...]

DEFAULT_TTL = 3600  # no TTL and no $TTL anywhere yet: miekg/dns's (so CoreDNS's) default
MAX_INCLUDE_DEPTH = 7  # $INCLUDE nesting, as miekg/dns: enough for real zones, stops include loops
_MAX_TTL = 2**31 - 1  # RFC 2181 §8
_TTL_RE = re.compile(r"\d+|(?:\d+[smhdwSMHDW])+")
_TTL_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DECIMAL_ESCAPE = re.compile(r"[0-9]{3}")
_GENERIC_TYPE = re.compile(r"TYPE([0-9]+)")
# Types that are not data (RFC 6895 §3.1: OPT and the meta/query types 249–255) or whose meaning we
# do not implement (DNAME: the plugin would serve it as an inert record; RFC 6672 needs synthesis).
_REJECTED_TYPES = {0: "not a valid type", 41: "a meta type", **{t: "a meta type" for t in range(249, 256)},
                   39: "not supported (DNAME synthesis is not implemented)"}  # fmt: skip


class ZoneFileError(Exception):
    """A zone file that cannot be loaded; `files` lists every file read so far (for reload polling)."""

    def __init__(self, file: str, line: int, message: str, files: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.file, self.line, self.message, self.files = file, line, message, files

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record as written, with where it was written."""

    owner: DNSLabel
    rtype: int
    ttl: int
    rdata: RD
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class _Token:
    text: str  # as written, escapes kept, surrounding quotes removed
    quoted: bool
    line: int


@dataclass(frozen=True, slots=True)
class _Entry:
    """One logical line: a record or a $directive (parentheses already joined)."""

    tokens: list[_Token]
    blank_owner: bool  # the physical line started with blank space: reuse the previous owner
    line: int


@dataclass
class _Context:
    """Parser state for one file; an $INCLUDE gets a copy, so it never changes its parent's."""

    file: str
    origin: Labels
    ttl: int | None = None
    ttl_from_directive: bool = False
    owner: Labels | None = None
    depth: int = 0


@dataclass
class ZoneFileReader:
    """Reads a master file (and what it includes) into `records`; `files` lists every file opened."""

    records: list[Record] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def read_file(self, path: str, origin: str) -> list[Record]:
        self._include(path, _Context(path, _absolute_name(origin)))
        return self.records

    def read_text(self, text: str, origin: str, file: str = "<zone>") -> list[Record]:
        self._parse(text, _Context(file, _absolute_name(origin)))
        return self.records

    def _include(self, path: str, ctx: _Context) -> None:
        self.files.append(path)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except (OSError, ValueError) as e:  # ValueError: a path holding a NUL octet
            why = f"cannot read zone file: {getattr(e, 'strerror', None) or e}"
            raise ZoneFileError(path, 0, why, tuple(self.files)) from None
        # latin-1 maps every byte to one character, so TXT data and names keep their exact octets.
        self._parse(data.decode("latin-1"), ctx)

    def _parse(self, text: str, ctx: _Context) -> None:
        try:
            for entry in _entries(text):
                if not entry.blank_owner and _is_directive(entry.tokens[0]):
                    self._directive(entry, ctx)
                else:
                    self.records.append(_record(entry, ctx))
        except _Error as e:
            raise ZoneFileError(ctx.file, e.line, e.message, tuple(self.files)) from None

    def _directive(self, entry: _Entry, ctx: _Context) -> None:
        name, args = entry.tokens[0].text.upper(), entry.tokens[1:]
        if name == "$ORIGIN":
            _want(entry, args, 1, 1)
            ctx.origin = _name(args[0], ctx.origin)
        elif name == "$TTL":
            _want(entry, args, 1, 1)
            ctx.ttl, ctx.ttl_from_directive = _ttl(args[0]), True
        elif name == "$INCLUDE":
            _want(entry, args, 1, 2)
            if ctx.depth >= MAX_INCLUDE_DEPTH:
                raise _Error(entry.line, f"$INCLUDE nested deeper than {MAX_INCLUDE_DEPTH} files")
            path = os.path.join(os.path.dirname(ctx.file), _plain(args[0]))
            origin = _name(args[1], ctx.origin) if len(args) == 2 else ctx.origin
            child = _Context(path, origin, ctx.ttl, ctx.ttl_from_directive, None, ctx.depth + 1)
            try:
                self._include(path, child)
            except ZoneFileError as e:
                if e.line:
                    raise
                raise _Error(entry.line, f"$INCLUDE {path}: {e.message}") from None
        elif name == "$GENERATE":
            raise _Error(entry.line, "$GENERATE is not supported")
        else:
            raise _Error(entry.line, f"unknown directive {entry.tokens[0].text}")


class _Error(Exception):
    """Raised inside one file; ZoneFileReader adds the file name."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line, self.message = line, message


# --- lexer (RFC 1035 §5.1) ----------------------------------------------------------------------


def _entries(text: str) -> Iterator[_Entry]:
    """Split master-file text into logical lines: comments dropped, parentheses joined, quotes kept."""
    tokens: list[_Token] = []
    line, i, n = 1, 0, len(text)
    paren_line = 0  # line of the open '(' or 0
    line_start, blank_owner, entry_line = True, False, 1
    while i < n:
        c = text[i]
        if c == "\n":
            line, i = line + 1, i + 1
            if not paren_line:
                if tokens:
                    yield _Entry(tokens, blank_owner, entry_line)
                    tokens = []
                line_start = True
            continue
        if line_start and not paren_line:
            line_start, blank_owner, entry_line = False, c in " \t", line
        if c in " \t\r":
            i += 1
        elif c == ";":
            while i < n and text[i] != "\n":
                i += 1
        elif c == "(":
            if paren_line:
                raise _Error(line, "nested '('")
            paren_line, i = line, i + 1
        elif c == ")":
            if not paren_line:
                raise _Error(line, "')' without '('")
            paren_line, i = 0, i + 1
        elif c == '"':
            start, i = line, i + 1
            begin = i
            while i < n and text[i] != '"':
                if text[i] == "\n":
                    raise _Error(start, "unterminated quoted string")
                i += 2 if text[i] == "\\" else 1
            if i >= n:
                raise _Error(start, "unterminated quoted string")
            tokens.append(_Token(text[begin:i], True, start))
            i += 1
        else:
            begin = i
            while i < n and text[i] not in ' \t\r\n;()"':
                if text[i] == "\\" and i + 1 < n:
                    line += text[i + 1] == "\n"
                    i += 1
                i += 1
            tokens.append(_Token(text[begin:i], False, line))
    if paren_line:
        raise _Error(paren_line, "'(' is never closed")
    if tokens:
        yield _Entry(tokens, blank_owner, entry_line)


def _is_directive(token: _Token) -> bool:
    return not token.quoted and token.text.startswith("$")


# --- records ------------------------------------------------------------------------------------


def _record(entry: _Entry, ctx: _Context) -> Record:
    """`[owner] [ttl] [class] type rdata…` with TTL and class in either order (RFC 1035 §5.1)."""
    tokens = entry.tokens
    if entry.blank_owner:
        if ctx.owner is None:
            raise _Error(entry.line, "record without an owner name and no previous record to take it from")
        owner = ctx.owner
    else:
        owner, tokens = _name(tokens[0], ctx.origin), tokens[1:]
    ttl: int | None = None
    seen_class = False
    while tokens and (ttl is None or not seen_class):
        text = tokens[0].text
        if ttl is None and not tokens[0].quoted and _TTL_RE.fullmatch(text):
            ttl = _ttl(tokens[0])
        elif not seen_class and text.upper() in ("IN", "CLASS1"):
            seen_class = True
        elif text.upper() in ("CH", "CS", "HS", "NONE", "ANY") or re.fullmatch(r"CLASS[0-9]+", text.upper()):
            raise _Error(tokens[0].line, f"class {text} is not supported (only IN)")
        else:
            break
        tokens = tokens[1:]
    if not tokens:
        raise _Error(entry.line, "record has no type")
    rtype = _rtype(tokens[0])
    if ttl is None:
        ttl = ctx.ttl if ctx.ttl is not None else DEFAULT_TTL
    elif not ctx.ttl_from_directive:
        ctx.ttl = ttl  # RFC 1035 §5.1: without $TTL, an omitted TTL is the last one stated
    ctx.owner = owner
    rdata = _rdata(rtype, tokens[0], tokens[1:], ctx.origin)
    return Record(DNSLabel(list(owner)), rtype, ttl, rdata, ctx.file, entry.line)


def _rtype(token: _Token) -> int:
    text = token.text.upper()
    m = _GENERIC_TYPE.fullmatch(text)
    rtype = int(m.group(1)) if m else QTYPE.reverse.get(text)
    if rtype is None or rtype > 0xFFFF or token.quoted:
        raise _Error(token.line, f"unknown record type {token.text}")
    if rtype in _REJECTED_TYPES:
        raise _Error(token.line, f"type {token.text} is {_REJECTED_TYPES[rtype]}")
    return rtype


def _rdata(rtype: int, type_token: _Token, fields: list[_Token], origin: Labels) -> RD:
    if fields and not fields[0].quoted and fields[0].text == "\\#":
        return _generic_rdata(rtype, type_token, fields[1:])
    form = _TEXT_FORMS.get(rtype)
    if form is None:
        raise _Error(type_token.line, f"type {type_token.text} is not supported in text form; write it in "
                                      f"the RFC 3597 form: {type_token.text} \\# LENGTH HEX")  # fmt: skip
    count, build = form
    if len(fields) != count and not (count == _ONE_OR_MORE and fields):
        want = "at least 1" if count == _ONE_OR_MORE else str(count)
        raise _Error(type_token.line, f"{type_token.text} wants {want} RDATA fields, got {len(fields)}")
    return build(fields, origin)


def _generic_rdata(rtype: int, type_token: _Token, fields: list[_Token]) -> RD:
    """RFC 3597 §5: `\\# LENGTH HEX…`; a type dnslib knows is decoded into its usual RDATA."""
    if not fields:
        raise _Error(type_token.line, "\\# needs a length")
    length = _int(fields[0], 0xFFFF, "RDATA length")
    try:
        data = bytes.fromhex("".join(t.text for t in fields[1:]))
    except ValueError:
        raise _Error(type_token.line, "RDATA after \\# is not hexadecimal") from None
    if len(data) != length:
        raise _Error(type_token.line, f"\\# says {length} octets but the data has {len(data)}")
    parser = RDMAP.get(QTYPE.forward.get(rtype, ""))
    if parser is None:
        return RD(data)
    buffer = DNSBuffer(data)
    try:
        rd: RD = parser.parse(buffer, length)
    except Exception as e:  # dnslib raises several types for short or garbled data
        raise _Error(type_token.line, f"bad {type_token.text} RDATA: {e}") from None
    if buffer.offset != length:
        left = length - buffer.offset
        raise _Error(type_token.line, f"bad {type_token.text} RDATA: {left} octets left over")
    return rd


def _address(fields: list[_Token], version: int) -> bytes:
    try:
        ip = ipaddress.ip_address(fields[0].text)
    except ValueError:
        ip = None
    if ip is None or ip.version != version:
        raise _Error(fields[0].line, f"'{fields[0].text}' is not an IPv{version} address")
    return ip.packed


def _soa(f: list[_Token], o: Labels) -> RD:
    times = (_int(f[2], 0xFFFFFFFF, "serial"), *(_ttl(t) for t in f[3:7]))
    return SOA(_label(f[0], o), _label(f[1], o), times)


def _caa(f: list[_Token], o: Labels) -> RD:
    tag = f[1].text
    if f[1].quoted or not re.fullmatch(r"[A-Za-z0-9]{1,255}", tag):
        raise _Error(f[1].line, f"CAA tag '{tag}' must be letters and digits (RFC 8659 §4.1)")
    try:
        value = _octets(f[2]).decode()
    except UnicodeDecodeError:
        raise _Error(f[2].line, "CAA value is not UTF-8") from None
    return CAA(_int(f[0], 0xFF, "CAA flags"), tag, value)


def _character_string(token: _Token) -> bytes:
    data = _octets(token)
    if len(data) > 255:
        raise _Error(token.line, f"character-string longer than 255 octets ({len(data)})")  # RFC 1035 §3.3
    return data


_ONE_OR_MORE = -1
# How many RDATA fields each type has in text form, and the builder of its RDATA.
_TEXT_FORMS: dict[int, tuple[int, Callable[[list[_Token], Labels], RD]]] = {
    QTYPE.A: (1, lambda f, o: A(tuple(_address(f, 4)))),
    QTYPE.AAAA: (1, lambda f, o: AAAA(tuple(_address(f, 6)))),
    QTYPE.NS: (1, lambda f, o: NS(_label(f[0], o))),
    QTYPE.CNAME: (1, lambda f, o: CNAME(_label(f[0], o))),
    QTYPE.PTR: (1, lambda f, o: PTR(_label(f[0], o))),
    QTYPE.MX: (2, lambda f, o: MX(_label(f[1], o), _int(f[0], 0xFFFF, "preference"))),
    QTYPE.SRV: (4, lambda f, o: SRV(_int(f[0], 0xFFFF, "priority"), _int(f[1], 0xFFFF, "weight"),
                                    _int(f[2], 0xFFFF, "port"), _label(f[3], o))),
    QTYPE.SOA: (7, _soa),
    QTYPE.TXT: (_ONE_OR_MORE, lambda f, o: TXT([_character_string(t) for t in f])),
    QTYPE.CAA: (3, _caa),
}  # fmt: skip


# --- fields -------------------------------------------------------------------------------------


def _want(entry: _Entry, args: list[_Token], lo: int, hi: int) -> None:
    if not lo <= len(args) <= hi:
        want = str(lo) if lo == hi else f"{lo} or {hi}"
        raise _Error(entry.line, f"{entry.tokens[0].text} wants {want} argument(s), got {len(args)}")


def _int(token: _Token, hi: int, what: str) -> int:
    if token.quoted or not token.text.isascii() or not token.text.isdigit() or int(token.text) > hi:
        raise _Error(token.line, f"{what} '{token.text}' is not a number in 0..{hi}")
    return int(token.text)


def _ttl(token: _Token) -> int:
    """Seconds, or BIND-style units (`1h30m`, `2w`), at most 2^31-1 (RFC 2181 §8)."""
    text = token.text
    if token.quoted or not _TTL_RE.fullmatch(text):
        raise _Error(token.line, f"'{text}' is not a TTL (seconds, or units like 1h30m)")
    total = (
        int(text)
        if text.isdigit()
        else sum(int(n) * _TTL_UNIT[u.lower()] for n, u in re.findall(r"(\d+)([a-zA-Z])", text))
    )
    if total > _MAX_TTL:
        raise _Error(token.line, f"TTL {text} is above 2^31-1")
    return total


def _plain(token: _Token) -> str:
    """A file name: escapes decoded."""
    return _octets(token).decode("latin-1")


def _octets(token: _Token) -> bytes:
    r"""Decode `\X` (X itself) and `\DDD` (a decimal octet) escapes (RFC 1035 §5.1)."""
    text, out, i = token.text, bytearray(), 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out += c.encode("latin-1")
            i += 1
        elif _DECIMAL_ESCAPE.fullmatch(text, i + 1, i + 4):
            value = int(text[i + 1 : i + 4])
            if value > 255:
                raise _Error(token.line, f"escape \\{text[i + 1 : i + 4]} is above 255")
            out.append(value)
            i += 4
        elif i + 1 < len(text):
            out += text[i + 1].encode("latin-1")
            i += 2
        else:
            raise _Error(token.line, "dangling '\\' at the end of a field")
    return bytes(out)


def _label(token: _Token, origin: Labels) -> DNSLabel:
    return DNSLabel(list(_name(token, origin)))


def _name(token: _Token, origin: Labels) -> Labels:
    """A domain name: `@` is the origin, names without a final dot are relative to it."""
    text = token.text
    if token.quoted:
        raise _Error(token.line, f'a domain name cannot be quoted: "{text}"')
    if text == "@":
        return origin
    if text == ".":
        return ()
    labels: list[bytes] = []
    start, i, absolute = 0, 0, False
    while i <= len(text):
        if i == len(text) or text[i] == ".":
            if i == start:
                raise _Error(token.line, f"empty label in '{text}'")
            labels.append(_octets(_Token(text[start:i], False, token.line)))
            absolute = i == len(text) - 1
            if absolute:
                break
            start = i + 1
        elif text[i] == "\\":
            i += 1
        i += 1
    names = tuple(labels) if absolute else tuple(labels) + origin
    if any(len(label) > 63 for label in names):
        raise _Error(token.line, f"a label of '{text}' is longer than 63 octets")  # RFC 1035 §2.3.4
    if sum(len(label) + 1 for label in names) + 1 > 255:
        raise _Error(token.line, f"'{text}' is longer than 255 octets")
    return names


def _absolute_name(origin: str) -> Labels:
    return _name(_Token(origin if origin.endswith(".") else origin + ".", False, 0), ())
