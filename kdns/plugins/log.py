"""`log` — one query-log line per answered query, in CoreDNS's format, so existing log parsing works.

Default (Common Log Format, CoreDNS plugin/log), after `[INFO] `:
`{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize}
{duration}` (one line), e.g.
`[INFO] 127.0.0.1:52162 - 3591 "A IN example.org. udp 40 false 1232" NOERROR qr,aa,rd 97 0.000212s`.

Placeholders are replaced as CoreDNS's replacer does (plugin/pkg/replacer): unknown `{x}` stays
literal text, `{/label}` (metadata) prints `-` since kdns has no metadata plugin. As in CoreDNS,
{rsize} and {>rflags} describe the reply as the plugins wrote it, before it is fitted to the
client's buffer. When a later plugin fails, the line shows the SERVFAIL the server sends (CoreDNS
prints `NOERROR - 0` there, having recorded nothing). Classes (RFC 2308 terms): success = answer
or delegation, denial = NXDOMAIN or NODATA, error = everything else (CoreDNS plugin/pkg/response).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from dnslib import OPCODE, QTYPE, RCODE, DNSRecord

from kdns.corefile.model import Directive
from kdns.log import core_logger
from kdns.plugin import Handler, Plugin, SetupContext
from kdns.plugins._args import normalize_zone, parse_duration, unknown_property
from kdns.plugins._text import go_seconds, qclass_text, qtype_text, rcode_text
from kdns.protocol.edns import CLASSIC_UDP_SIZE, TCP_MAX_SIZE
from kdns.protocol.names import zone_matches
from kdns.request import Reply, Request

# CoreDNS prints query lines with its package logger: `[INFO] ` and no plugin/ prefix.
_log = core_logger()
EMPTY = "-"
COMMON_FORMAT = (
    '{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" '
    "{rcode} {>rflags} {rsize} {duration}"
)
COMBINED_FORMAT = COMMON_FORMAT + ' "{>opcode}"'
CLASSES = frozenset({"all", "success", "denial", "error"})
DEFAULT_MIN_DURATION = 0.1  # CoreDNS DefaultMinDuration "100ms" for a bare `minDuration`


@dataclass(frozen=True, slots=True)
class Answered:
    """The reply as the plugins wrote it, packed, and how long the rest of the chain took."""

    message: DNSRecord
    wire: bytes
    seconds: float


def _remote(r: Request, a: Answered) -> str:
    host = r.client[0]
    return f"[{host}]" if ":" in host else host


def _bufsize(r: Request, a: Answered) -> str:
    # request.Size in CoreDNS: 64K over TCP, else the EDNS0 size (at least 512), else 512.
    if r.proto == "tcp":
        return str(TCP_MAX_SIZE)
    return str(r.edns.udp_size if r.edns is not None else CLASSIC_UDP_SIZE)


def _rcode(r: Request, a: Answered) -> str:
    code = Reply(a.message, "").rcode
    return rcode_text(code) or str(code)


_FLAGS = (
    ("qr", 0x8000),
    ("aa", 0x0400),
    ("tc", 0x0200),
    ("rd", 0x0100),
    ("ra", 0x0080),
    ("z", 0x0040),
    ("ad", 0x0020),
    ("cd", 0x0010),
)


def _rflags(r: Request, a: Answered) -> str:
    bits = int.from_bytes(a.wire[2:4], "big")
    return ",".join(name for name, mask in _FLAGS if bits & mask) or EMPTY


Field = Callable[[Request, Answered], str]
FIELDS: dict[str, Field] = {
    "{type}": lambda r, a: qtype_text(r.qtype),
    "{name}": lambda r, a: r.qname_lower,
    "{class}": lambda r, a: qclass_text(r.qclass),
    "{proto}": lambda r, a: r.proto,
    "{size}": lambda r, a: str(r.size),
    "{remote}": _remote,
    "{port}": lambda r, a: str(r.client[1]),
    "{>id}": lambda r, a: str(r.query.id),
    "{>opcode}": lambda r, a: str(r.query.opcode),
    "{>do}": lambda r, a: "true" if r.do else "false",
    "{>bufsize}": _bufsize,
    "{rcode}": _rcode,
    "{rsize}": lambda r, a: str(len(a.wire)),
    "{duration}": lambda r, a: go_seconds(a.seconds),
    "{>rflags}": _rflags,
}
# CoreDNS knows {local} (the server address the query arrived on); kdns does not track it.
UNSUPPORTED = frozenset({"{local}"})

Part = str | Field


def parse_format(d: Directive, text: str) -> tuple[Part, ...]:
    """Split a format into literals and fields the way CoreDNS's replacer does.

    It finds each `}` and backs up to the nearest `{` before it, so `{ {type} }` works; an unknown
    `{x}` is literal text, `{/label}` is metadata (always `-` here).
    """
    parts: list[Part] = []
    rest = text
    while (j := rest.find("}")) >= 0:
        i = rest.rfind("{", 0, j)
        if i < 0:
            parts.append(rest[: j + 1])
        else:
            label = rest[i : j + 1]
            if label in UNSUPPORTED:
                raise d.error(f"log format placeholder {label} is not supported by kdns")
            if label in FIELDS:
                parts += [rest[:i], FIELDS[label]]
            elif label.startswith("{/"):
                parts += [rest[:i], EMPTY]
            else:
                parts.append(rest[: j + 1])
        rest = rest[j + 1 :]
    parts.append(rest)
    return tuple(p for p in parts if p != "")


def classify(message: DNSRecord) -> str:
    """CoreDNS's response.Typify + Classify, reduced to the class names `log` filters on."""
    header = message.header
    qtype = message.q.qtype if message.questions else 0
    rcode = Reply(message, "").rcode
    if header.opcode in (OPCODE.UPDATE, OPCODE.NOTIFY) or qtype in (QTYPE.AXFR, QTYPE.IXFR):
        return "error"  # Meta / Update types: neither success nor denial
    if rcode == RCODE.NOERROR and message.rr:
        if qtype in (QTYPE.A, QTYPE.AAAA) and not any(rr.rtype == qtype for rr in message.rr):
            return "denial"  # address question answered with other types only: NODATA
        return "success"
    has_soa = any(rr.rtype == QTYPE.SOA for rr in message.auth)
    if has_soa and rcode in (RCODE.NOERROR, RCODE.NXDOMAIN):
        return "denial"
    if rcode == RCODE.NOERROR:
        return "success"  # delegation, or an empty NOERROR
    return "error"


@dataclass(frozen=True, slots=True)
class Rule:
    """One name scope with its format, classes and slow-query threshold."""

    zone: str
    format: tuple[Part, ...]
    classes: frozenset[str]
    min_duration: float = 0.0

    def wants(self, message: DNSRecord, seconds: float) -> bool:
        if "all" in self.classes or classify(message) in self.classes:
            return True
        return self.min_duration > 0 and seconds > self.min_duration

    def line(self, r: Request, a: Answered) -> str:
        return "".join(p if isinstance(p, str) else p(r, a) for p in self.format)


class Log(Plugin):
    name = "log"

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules

    async def serve(self, request: Request, next_: Handler) -> Reply:
        rule = next((r for r in self.rules if zone_matches(request.qname_lower, (r.zone,))), None)
        if rule is None:
            return await next_(request)
        start = time.perf_counter()
        try:
            reply = await next_(request)
        except Exception:
            # The server will answer SERVFAIL (kdns.server.dispatch); log exactly that reply.
            self._emit(rule, request, request.reply(RCODE.SERVFAIL), start)
            raise
        self._emit(rule, request, reply.message, start)
        return reply

    @staticmethod
    def _emit(rule: Rule, request: Request, message: DNSRecord, start: float) -> None:
        seconds = time.perf_counter() - start
        if rule.wants(message, seconds):  # before packing: filtered-out queries cost next to nothing
            _log.info("%s", rule.line(request, Answered(message, message.pack(), seconds)))


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    args = list(d.args)
    fmt = COMMON_FORMAT
    if len(args) >= 2 and "{" in args[-1]:
        last = args.pop()
        fmt = {"{common}": COMMON_FORMAT, "{combined}": COMBINED_FORMAT}.get(last, last)
    names = [normalize_zone(d, a) for a in args] or ["."]
    classes: set[str] = set()
    min_duration = 0.0
    for child in d.children:
        if child.name == "class":
            if not child.args:
                raise child.error("wrong argument count: want at least 1, got 0")
            for c in child.args:
                if c not in CLASSES:
                    raise child.error(f"invalid Class: {c}")
            classes.update(child.args)
        elif child.name == "minduration":  # the parser lower-cases names
            if len(child.args) > 1:
                raise child.error(f"wrong argument count: want 0 to 1, got {len(child.args)}")
            min_duration = parse_duration(child, child.args[0]) if child.args else DEFAULT_MIN_DURATION
        else:
            raise unknown_property(d, child)
    parts = parse_format(d, fmt)
    frozen = frozenset(classes or {"all"})
    return Log(tuple(Rule(n, parts, frozen, min_duration) for n in names))
