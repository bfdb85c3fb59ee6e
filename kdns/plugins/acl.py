"""`acl [ZONES...] { ACTION [type QTYPE...] [net SOURCE...] }` — allow, block, filter or drop queries
by type and source address, as CoreDNS's acl plugin.

Each `acl` line is a rule for ZONES (default the server block's); the lines of a block are one
plugin and are checked in order. For a query whose name is in a rule's zones, the rule's policies are
tried in order and the first whose types and sources both match decides:
- `allow`: the query goes on to the next plugin, no later rule is checked;
- `block`: REFUSED, with an Extended DNS Error "Blocked" (RFC 8914 code 15), EXTRA-TEXT "blocked by
  the server's acl";
- `filter`: NOERROR with no records, EDE "Filtered" (17), "filtered by the server's acl";
- `drop`: no reply at all.
A rule with no matching policy passes the query to the next rule; after the last, it goes on.
`type` lists QTYPE mnemonics (`*`: all, the default); `net` lists CIDRs or addresses (`*`: all, the
default); an address with host bits set stands for its network (Go's ParseCIDR). The source is the
address the packet came from. The EDE is added when the client sent an OPT (RFC 6891 §7: otherwise
a reply has none; CoreDNS adds an OPT regardless).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from dnslib import RCODE

from kdns import metrics
from kdns.corefile.model import Directive
from kdns.log import plugin_logger
from kdns.plugin import Handler, Plugin, SetupContext
from kdns.plugins import _edns
from kdns.plugins._args import zones_or_default
from kdns.plugins._text import qtype_number
from kdns.protocol.names import zone_matches
from kdns.request import Reply, Request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_log = plugin_logger("acl")
_LABELS = ("server", "zone", "view")
BLOCKED = metrics.counter("acl", "blocked_requests_total", "Counter of DNS requests being blocked.", _LABELS)
FILTERED = metrics.counter(
    "acl", "filtered_requests_total", "Counter of DNS requests being filtered.", _LABELS
)
DROPPED = metrics.counter("acl", "dropped_requests_total", "Counter of DNS requests being dropped.", _LABELS)
ALLOWED = metrics.counter(
    "acl", "allowed_requests_total", "Counter of DNS requests being allowed.", ("server", "view")
)


class Action(Enum):
    ALLOW = "allow"
    BLOCK = "block"
    FILTER = "filter"
    DROP = "drop"


@dataclass(frozen=True)
class Policy:
    action: Action
    qtypes: frozenset[int] | None  # None: every type
    nets: tuple[Network, ...] | None  # None: every source

    def matches(self, qtype: int, source: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if self.qtypes is not None and qtype not in self.qtypes:
            return False
        return self.nets is None or any(source in net for net in self.nets)


@dataclass(frozen=True)
class Rule:
    zones: tuple[str, ...]
    policies: tuple[Policy, ...]


class Acl(Plugin):
    name = "acl"

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)

    async def serve(self, request: Request, next_: Handler) -> Reply:
        try:
            source = ipaddress.ip_address(request.client[0].split("%", 1)[0])
        except ValueError:  # CoreDNS blocks what it cannot place
            _log.error("Blocking request. Unable to parse source address: %s", request.client[0])
            return self._refuse(request, request.zone, Action.BLOCK)
        if isinstance(source, ipaddress.IPv6Address) and source.ipv4_mapped is not None:
            source = source.ipv4_mapped  # Go's net.ParseIP keeps ::ffff:a.b.c.d as a.b.c.d
        for rule in self.rules:
            zone = zone_matches(request.qname_lower, rule.zones)
            if zone is None:
                continue
            action = next((p.action for p in rule.policies if p.matches(request.qtype, source)), None)
            if action is Action.ALLOW:
                break
            if action is not None:
                return self._refuse(request, zone, action)
        ALLOWED.labels(request.server, "").inc()
        return await next_(request)

    def transparent_for(self, qname: str) -> bool:
        # Only names outside every rule's zones: a reply for any other name must never be replayed
        # by the fast path, which would skip the source check.
        return all(zone_matches(qname, rule.zones) is None for rule in self.rules)

    def _refuse(self, request: Request, zone: str, action: Action) -> Reply:
        labels = (request.server, zone, "")
        if action is Action.DROP:
            DROPPED.labels(*labels).inc()
            return Reply(request.reply(), self.name, dropped=True)
        blocked = action is Action.BLOCK
        (BLOCKED if blocked else FILTERED).labels(*labels).inc()
        msg = request.reply(RCODE.REFUSED if blocked else RCODE.NOERROR)
        # CoreDNS sends these codes without EXTRA-TEXT; the text tells a person which plugin did it.
        code, text = (_edns.EdeCode.BLOCKED, "blocked") if blocked else (_edns.EdeCode.FILTERED, "filtered")
        _edns.add_reply_option(msg, *_edns.ede(code, f"{text} by the server's acl"))
        return Reply(msg, self.name)


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    rules = []
    for line in ctx.block.find(d.name) or [d]:
        zones = zones_or_default(line, line.args, ctx.block.zones)
        rules.append(Rule(zones, tuple(_policy(child) for child in line.children)))
    return Acl(rules)


def _policy(line: Directive) -> Policy:
    """`ACTION [type QTYPE...] [net SOURCE...]`; sections in any order, repeated ones add up."""
    try:
        action = Action(line.name.lower())
    except ValueError:
        expected = "expect 'allow', 'block', 'filter' or 'drop'"
        raise line.error(f"unexpected token {line.name!r}; {expected}") from None
    sections: dict[str, list[str]] = {}
    tokens = list(line.args)
    while tokens:
        section = tokens.pop(0).lower()
        if section not in ("type", "net"):
            raise line.error(f"unexpected token {section!r}; expect 'type | net'")
        values = []
        while tokens and tokens[0].lower() not in ("type", "net"):
            values.append(tokens.pop(0))
        if not values:
            raise line.error(f"no token specified in {section!r} section")
        sections.setdefault(section, []).extend(values)
    # Values are checked up to a `*`, which stands for all (CoreDNS stops reading there).
    types, sources = _until_star(sections.get("type", ["*"])), _until_star(sections.get("net", ["*"]))
    checked_types, nets_checked = _qtypes(line, types[0]), tuple(_network(line, v) for v in sources[0])
    qtypes = None if types[1] else checked_types
    nets = None if sources[1] else nets_checked
    return Policy(action, qtypes, nets)


def _until_star(values: list[str]) -> tuple[list[str], bool]:
    if "*" in values:
        return values[: values.index("*")], True
    return values, False


def _qtypes(line: Directive, values: list[str]) -> frozenset[int]:
    numbers = []
    for value in values:
        number = qtype_number(value)  # case-sensitive, as CoreDNS's lookup in miekg/dns's table
        if number is None:
            raise line.error(f"unexpected token {value!r}; expect legal QTYPE")
        numbers.append(number)
    return frozenset(numbers)


def _network(line: Directive, value: str) -> Network:
    try:
        return ipaddress.ip_network(value, strict=False)  # a single address is a /32 or /128
    except ValueError:
        raise line.error(f"illegal CIDR notation {value!r}") from None
