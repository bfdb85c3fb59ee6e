"""One authoritative zone in memory and the RFC 1034 §4.3.2 lookup over it.

Answers follow the RFCs where they are precise and CoreDNS's file plugin where they leave room:
- NXDOMAIN only when no name exists at or below the question (RFC 8020); an empty non-terminal
  exists, so it gets NODATA. Negative answers carry the SOA with TTL min(SOA TTL, MINIMUM)
  (RFC 2308 §3).
- Wildcards per RFC 4592: `*.<closest encloser>` answers only names that do not exist, at any
  depth below the closest encloser — never an existing name, nor a name below an existing name or
  below an empty non-terminal. (CoreDNS's tree misses empty non-terminals there; we do not.)
- CNAMEs inside the zone are followed (RFC 1034 §4.3.2 step 3a), at most MAX_CHAIN times and never
  in a loop; a target outside the zone is left to the client; the rcode is that of the last name
  in the chain (RFC 6604 §2).
- NS below the apex is a zone cut: a referral (AA=0, NS in authority, addresses of the NS targets
  in additional); data below the cut is glue, never an answer. DS at the cut is parent-side data.
- Positive answers carry the apex NS in authority, and the addresses of in-zone NS, MX and SRV
  targets in additional, as CoreDNS's file plugin does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dnslib import QTYPE, RCODE, RD, RR, DNSBuffer, DNSLabel

from kdns.plugins.file.zonefile import Record, ZoneFileError, ZoneFileReader
from kdns.protocol import names

Name = tuple[bytes, ...]  # lower-cased labels, left to right: the key for every lookup

MAX_CHAIN = 8  # CNAMEs followed after the first one, as CoreDNS's file plugin (lookup.go)
_ADDRESS_TYPES = (QTYPE.A, QTYPE.AAAA)


def name_key(label: DNSLabel) -> Name:
    """Case-insensitive key of a name (RFC 4343: ASCII case only)."""
    return tuple(part.lower() for part in label.label)


def _wire(rdata: RD) -> bytes:
    """RDATA in wire form: how duplicates are found (dnslib's __eq__ misses fields of some types)."""
    buffer = DNSBuffer()
    rdata.pack(buffer)
    return bytes(buffer.data)


@dataclass(slots=True)
class RRset:
    """The records of one owner and type; `owner` keeps the zone file's spelling."""

    owner: DNSLabel
    rtype: int
    ttl: int
    rdatas: list[RD]

    def rrs(self, owner: DNSLabel | None = None, ttl: int | None = None) -> list[RR]:
        name = self.owner if owner is None else owner
        t = self.ttl if ttl is None else ttl
        return [RR(name, self.rtype, ttl=t, rdata=rd) for rd in self.rdatas]


@dataclass(slots=True)
class Result:
    """A lookup's reply content, ready to copy into a DNS message."""

    rcode: int
    aa: bool
    answer: list[RR] = field(default_factory=list)
    authority: list[RR] = field(default_factory=list)
    additional: list[RR] = field(default_factory=list)


class Zone:
    """Records of one origin, checked (one SOA at the apex, CNAME alone at its name, all in zone)."""

    def __init__(self, origin: str, records: Iterable[Record], files: Iterable[str] = ()) -> None:
        # From labels, not text: dnslib reads `\DDD` escapes as characters and then fails on them.
        self.origin = DNSLabel(names.from_text(origin))
        self.files = tuple(files)
        self.warnings: list[str] = []
        self._origin: Name = name_key(self.origin)
        self._nodes: dict[Name, dict[int, RRset]] = {}
        self._names: set[Name] = set()  # every name that exists, empty non-terminals included
        self._cuts: set[Name] = set()
        where: dict[tuple[Name, int], Record] = {}
        for record in records:
            self._add(record, where)
        self._check(where)
        apex = self._nodes[self._origin]
        self.soa = apex[QTYPE.SOA]
        self.apex_ns = apex.get(QTYPE.NS)
        self._negative_ttl = min(self.soa.ttl, int(self.soa.rdatas[0].times[4]))  # RFC 2308 §3

    @classmethod
    def load(cls, path: str, origin: str) -> Zone:
        """Parse `path` for `origin`; ZoneFileError (with `files`) if the file or the zone is bad."""
        reader = ZoneFileReader()
        records = reader.read_file(path, origin)
        try:
            return cls(origin, records, reader.files)
        except ZoneFileError as e:
            e.files = tuple(reader.files)
            raise

    @property
    def serial(self) -> int:
        return int(self.soa.rdatas[0].times[0])

    # --- building -----------------------------------------------------------------------------

    def _add(self, record: Record, where: dict[tuple[Name, int], Record]) -> None:
        key = name_key(record.owner)
        n = len(self._origin)
        if not self.contains(key):
            raise ZoneFileError(record.file, record.line, f"{record.owner} is outside the zone {self.origin}")
        node = self._nodes.setdefault(key, {})
        rrset = node.get(record.rtype)
        if rrset is None:
            node[record.rtype] = RRset(record.owner, record.rtype, record.ttl, [record.rdata])
            where[(key, record.rtype)] = record
            for i in range(len(key) - n + 1):
                self._names.add(key[i:])
            if record.rtype == QTYPE.NS and key != self._origin:
                self._cuts.add(key)
            return
        if any(_wire(rd) == _wire(record.rdata) for rd in rrset.rdatas):
            return  # an RRset is a set (RFC 2181 §5)
        if record.ttl != rrset.ttl:
            first = where[(key, record.rtype)]
            self.warnings.append(
                f"{record.file}:{record.line}: TTL {record.ttl} differs from "
                f"{first.file}:{first.line} in one RRset; using {rrset.ttl} (RFC 2181 §5.2)"
            )
        rrset.rdatas.append(record.rdata)

    def _check(self, where: dict[tuple[Name, int], Record]) -> None:
        for (key, rtype), record in where.items():
            node = self._nodes[key]
            if rtype == QTYPE.SOA and key != self._origin:
                why = f"SOA at {record.owner}, which is not the apex of the zone {self.origin}"
                raise ZoneFileError(record.file, record.line, why)
            if rtype == QTYPE.SOA and len(node[rtype].rdatas) > 1:
                raise ZoneFileError(record.file, record.line, "a zone has exactly one SOA")
            if rtype == QTYPE.CNAME and (len(node) > 1 or len(node[rtype].rdatas) > 1):  # RFC 2181 §10.1
                raise ZoneFileError(record.file, record.line, f"{record.owner} has a CNAME and other data")
        if QTYPE.SOA not in self._nodes.get(self._origin, {}):
            file = next(iter(where.values())).file if where else (self.files[0] if self.files else "")
            raise ZoneFileError(file, 0, f"no SOA record for the zone {self.origin}")

    # --- lookup -------------------------------------------------------------------------------

    def contains(self, key: Name) -> bool:
        n = len(self._origin)
        return len(key) >= n and key[len(key) - n :] == self._origin

    def lookup(self, qname: DNSLabel, qtype: int) -> Result:
        """Answer `qname`/`qtype` from this zone; owners of direct answers echo the client's spelling."""
        owner, key = qname, name_key(qname)
        answer: list[RR] = []
        seen = {key}
        for _ in range(MAX_CHAIN + 1):
            cut, node = self._find(key, qtype)
            if cut is not None:
                return self._referral(cut, answer)
            if node is None:
                return self._negative(RCODE.NXDOMAIN, answer)
            if qtype == QTYPE.ANY and node:
                answer += [rr for rrset in node.values() for rr in rrset.rrs(owner)]
                return self._positive(answer)
            rrset = node.get(qtype)
            if rrset is not None:
                return self._positive(answer + rrset.rrs(owner))
            cname = node.get(QTYPE.CNAME)
            if cname is None:
                return self._negative(RCODE.NOERROR, answer)
            answer += cname.rrs(owner)
            owner = cname.rdatas[0].label
            key = name_key(owner)
            if not self.contains(key) or key in seen:
                break  # out of zone: the client follows it; a loop: stop where it closes
            seen.add(key)
        return self._positive(answer)

    def _find(self, key: Name, qtype: int) -> tuple[Name | None, dict[int, RRset] | None]:
        """Walk down from the apex: (cut, None) for a referral, (None, None) for NXDOMAIN, else the node."""
        for i in range(len(key) - len(self._origin) - 1, -1, -1):
            name = key[i:]
            if name in self._cuts and not (i == 0 and qtype == QTYPE.DS):
                return name, None
            if name not in self._names:
                wildcard = (b"*", *key[i + 1 :])  # the source of synthesis at the closest encloser
                if wildcard in self._names:
                    return None, self._nodes.get(wildcard, {})
                return None, None
        return None, self._nodes.get(key, {})

    def _positive(self, answer: list[RR]) -> Result:
        result = Result(RCODE.NOERROR, True, answer, additional=self._addresses_for(answer))
        apex_ns = self.apex_ns
        if apex_ns is not None and not any(rr.rtype == QTYPE.NS and name_key(rr.rname) == self._origin
                                           for rr in answer):  # fmt: skip
            result.authority = apex_ns.rrs()
        return result

    def _negative(self, rcode: int, answer: list[RR]) -> Result:
        return Result(rcode, True, answer, self.soa.rrs(ttl=self._negative_ttl))

    def _referral(self, cut: Name, answer: list[RR]) -> Result:
        """RFC 1034 §4.3.2 step 3b. AA stays set when an authoritative CNAME led here (as knotd does)."""
        ns = self._nodes[cut][QTYPE.NS]
        authority = ns.rrs()
        return Result(RCODE.NOERROR, bool(answer), answer, authority, self._addresses_for(authority))

    def _addresses_for(self, rrs: list[RR]) -> list[RR]:
        """A/AAAA of in-zone NS, MX and SRV targets (RFC 1034 §4.3.2 step 6; glue for referrals)."""
        out: list[RR] = []
        done: set[Name] = set()
        for rr in rrs:
            if rr.rtype in (QTYPE.NS, QTYPE.MX):
                target = rr.rdata.label
            elif rr.rtype == QTYPE.SRV:
                target = rr.rdata.target
            else:
                continue
            key = name_key(target)
            if key in done or not self.contains(key):
                continue
            done.add(key)
            node = self._nodes.get(key)  # exact names first: glue below a cut is only found this way
            owner = None
            if node is None:  # else what a query would find, so a wildcard target gets addresses too
                node = self._find(key, QTYPE.A)[1]
                owner = target
            for rtype in _ADDRESS_TYPES:
                if node and rtype in node:
                    out += node[rtype].rrs(owner)
        return out
