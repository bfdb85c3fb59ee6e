"""`hosts [FILE [ZONES...]] { [INLINE...] ttl SECONDS  no_reverse  reload DURATION  fallthrough [ZONES...] }`

Serves A, AAAA and PTR from an /etc/hosts-style file (hosts(5): `ADDRESS NAME [ALIASES...]`) and
from entries written inline in the Corefile, following CoreDNS's hosts plugin (v1.12–1.14):
- FILE defaults to /etc/hosts; ZONES to the server block's zones; names outside ZONES are dropped.
  A missing FILE is a warning, not an error; it is picked up when it appears.
- The file is re-read every `reload` (default 5s, 0 disables) when its mtime or size changed; if it
  cannot be read, the last entries stay (CoreDNS's readHosts returns early).
- Answers are authoritative (AA=1) with TTL `ttl` (default 3600, 1..65535), no authority section:
  the hosts data has no SOA. A name that has only the other address family, or is asked for another
  type, gets NODATA (NOERROR, empty). A name with no entry is passed on when `fallthrough` covers it,
  else answered SERVFAIL — CoreDNS's choice, since an NXDOMAIN without an SOA cannot be cached
  (RFC 2308 §5).
- PTR is answered for any reverse name whose address has entries (reverse zones need not be in
  ZONES, unless `no_reverse`); a PTR with no entry always goes to the next plugin.
- Corefile lines in the block before `fallthrough` that are not options are inline entries; they
  add to the file's entries. Lines after `fallthrough` must be options.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from dnslib import AAAA, PTR, QTYPE, RCODE, RR, A, DNSLabel

from kdns import metrics
from kdns.corefile.model import Directive
from kdns.log import plugin_logger
from kdns.plugin import Handler, Plugin, SetupContext
from kdns.plugins._args import (
    expect_args,
    parse_duration,
    parse_int,
    unknown_property,
    zones_or_default,
)
from kdns.plugins._watch import Poller, file_signature
from kdns.protocol.names import zone_matches
from kdns.request import Reply, Request

DEFAULT_PATH = "/etc/hosts"
DEFAULT_TTL = 3600
DEFAULT_RELOAD = 5.0
_REVERSE_ZONES = ("in-addr.arpa.", "ip6.arpa.")
log = plugin_logger("hosts")
ENTRIES = metrics.gauge("hosts", "entries", "The combined number of entries in hosts and Corefile.")
RELOAD_TIME = metrics.gauge(
    "hosts", "reload_timestamp_seconds", "The timestamp of the last reload of hosts file."
)


@dataclass
class HostsTable:
    """Entries of one source (the file, or the inline lines): lower-case FQDNs and canonical addresses."""

    v4: dict[str, list[str]] = field(default_factory=dict)
    v6: dict[str, list[str]] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)  # address → names, for PTR

    def add(self, address: str, names: Iterable[str], origins: Sequence[str], reverse: bool) -> bool:
        """Add one hosts line; False if `address` is not an IP address (the line is ignored)."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])  # a v6 zone index is dropped, as CoreDNS
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # Go's To4(): ::ffff:a.b.c.d is an IPv4 address
        by_name = self.v4 if ip.version == 4 else self.v6
        text = str(ip)
        for raw in names:
            name = _fqdn(raw)
            if name is None or zone_matches(name, origins) is None:
                continue
            _append(by_name.setdefault(name, []), text)
            if reverse:
                _append(self.names.setdefault(text, []), name)
        return True

    def __len__(self) -> int:
        return sum(len(values) for table in (self.v4, self.v6, self.names) for values in table.values())


def parse_hosts(text: str, origins: Sequence[str], reverse: bool) -> HostsTable:
    """A hosts file: `#` starts a comment; lines without an address and a name are skipped."""
    table = HostsTable()
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 2:
            table.add(fields[0], fields[1:], origins, reverse)
    return table


def address_from_reverse(name: str) -> str | None:
    """`4.3.2.1.in-addr.arpa.` → `1.2.3.4`; a 32-nibble ip6.arpa name → its IPv6 address; else None."""
    if name.endswith(".in-addr.arpa."):
        try:
            return str(ipaddress.IPv4Address(".".join(reversed(name[: -len(".in-addr.arpa.")].split(".")))))
        except ValueError:
            return None
    if name.endswith(".ip6.arpa."):
        nibbles = name[: -len(".ip6.arpa.")].split(".")
        if len(nibbles) == 32 and all(len(n) == 1 and n in "0123456789abcdef" for n in nibbles):
            return str(ipaddress.IPv6Address(int("".join(reversed(nibbles)), 16)))
    return None


class Hosts(Plugin):
    name = "hosts"

    def __init__(self, path: str, origins: tuple[str, ...], inline: HostsTable, ttl: int, reverse: bool,
                 fallthrough: tuple[str, ...], reload: float) -> None:  # fmt: skip
        self.path = path
        self.origins = origins
        self.ttl = ttl
        self.reverse = reverse
        self.fallthrough = fallthrough  # empty: no fallthrough
        self._inline = inline
        self._file = HostsTable()
        self._signature = file_signature([path])
        self._poller = Poller(reload, self.check_file, log)
        table = self._read()
        if table is None:
            log.warning("Hosts file %s cannot be read; serving the inline entries until it can", path)
        self._install(table)

    async def serve(self, request: Request, next_: Handler) -> Reply:
        name, qtype = request.qname_lower, request.qtype
        if qtype != QTYPE.PTR and zone_matches(name, self.origins) is None:
            return await next_(request)
        qname = request.owner
        answers: list[RR] = []
        if qtype == QTYPE.PTR:
            address = address_from_reverse(name)
            targets = self._lookup("names", address) if address else []
            if not targets:
                return await next_(request)
            answers = [RR(qname, QTYPE.PTR, ttl=self.ttl, rdata=PTR(DNSLabel(t))) for t in targets]
        elif qtype == QTYPE.A:
            answers = [RR(qname, QTYPE.A, ttl=self.ttl, rdata=A(ip)) for ip in self._lookup("v4", name)]
        elif qtype == QTYPE.AAAA:
            answers = [RR(qname, QTYPE.AAAA, ttl=self.ttl, rdata=AAAA(ip)) for ip in self._lookup("v6", name)]
        if not answers and not (self._lookup("v4", name) or self._lookup("v6", name)):
            if self.fallthrough and zone_matches(name, self.fallthrough) is not None:
                return await next_(request)
            return Reply(request.reply(rcode=RCODE.SERVFAIL), self.name)
        msg = request.reply(aa=True)
        msg.add_answer(*answers)
        return Reply(msg, self.name)

    def transparent_for(self, qname: str) -> bool:
        """Names outside our zones pass through untouched, but for PTR, which any reverse name may get."""
        reverse = self.reverse and zone_matches(qname, _REVERSE_ZONES) is not None
        return not reverse and zone_matches(qname, self.origins) is None

    def _lookup(self, kind: str, key: str) -> list[str]:
        """File entries first, then inline ones (CoreDNS's order), without repeats."""
        out: list[str] = []
        for table in (self._file, self._inline):
            for value in getattr(table, kind).get(key, ()):
                _append(out, value)
        return out

    async def start(self) -> None:
        self._poller.start()

    async def stop(self) -> None:
        await self._poller.stop()

    async def check_file(self) -> None:
        signature = file_signature([self.path])
        if signature == self._signature:
            return
        table = await asyncio.to_thread(self._read)
        self._signature = signature
        self._install(table)

    def _install(self, table: HostsTable | None) -> None:
        """Serve a newly read file; None (unreadable) keeps the entries we have."""
        if table is not None:
            self._file = table
            mtime = self._signature[0][1]
            RELOAD_TIME.set(max(mtime, 0) / 1e9)  # the file's mtime, as CoreDNS reports it
        ENTRIES.set(len(self._file) + len(self._inline))

    def _read(self) -> HostsTable | None:
        try:
            with open(self.path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return None  # already warned at setup; keep what we have
        table = parse_hosts(text, self.origins, self.reverse)
        log.debug("Parsed hosts file into %d entries", len(table))
        return table


def _append(values: list[str], value: str) -> None:
    if value not in values:
        values.append(value)


def _fqdn(name: str) -> str | None:
    """Lower-case absolute form, or None for a name DNS cannot carry (RFC 1035 §2.3.4)."""
    name = name.lower()
    name = name if name.endswith(".") else name + "."
    labels = name[:-1].split(".")
    if len(name) > 254 or any(not 0 < len(label) <= 63 for label in labels):
        return None
    return name


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    args = expect_args(d, 0)
    path = args[0] if args else DEFAULT_PATH
    origins = zones_or_default(d, args[1:], ctx.block.zones)
    ttl, reverse, reload = DEFAULT_TTL, True, DEFAULT_RELOAD
    fallthrough: tuple[str, ...] = ()
    inline: list[Directive] = []
    for child in d.children:
        if child.name == "ttl":
            ttl = parse_int(child, expect_args(child, 1, 1)[0], 1, 65535, "ttl")
        elif child.name == "no_reverse":
            expect_args(child, 0, 0)
            reverse = False
        elif child.name == "reload":
            reload = parse_duration(child, expect_args(child, 1, 1)[0], "reload interval")
        elif child.name == "fallthrough":
            fallthrough = zones_or_default(child, child.args, (".",))
        elif fallthrough:
            raise unknown_property(d, child)  # CoreDNS: inline entries only before fallthrough
        else:
            inline.append(child)
    table = HostsTable()
    for line in inline:
        if not line.args or not table.add(line.name, line.args, origins, reverse):
            log.warning("%s:%d: '%s' is not an 'ADDRESS NAME...' entry; ignored",
                        line.file, line.line, " ".join((line.name, *line.args)))  # fmt: skip
    return Hosts(path, origins, table, ttl, reverse, fallthrough, reload)
