"""An independent model of what kdns must answer, computed from API objects, and a way to observe
what kdns does answer, in the same shape, so tests can compare the two for every name at once.

Written from the contract (docs/dns-contract.md §2–§6, §14 for SRV weights and §13 for the
endpoint-name extension) for the fault and soak tests, and deliberately not from kdns.k8s.records or
kdns.k8s.index: an oracle that reused the code under test would agree with its bugs. It models one
Corefile shape: `kubernetes cluster.local in-addr.arpa ip6.arpa` with default options, no
fallthrough, and no plugin after it (an out-of-zone ExternalName target resolves to nothing, so its
answer is the CNAME alone). Pods are not modelled (`pods disabled`).

The model is a small zone: owner name → {type: rdata texts}, plus the names that exist without
records (namespaces, `_proto` labels above SRV names). A name exists when it or a name below it is
in the zone; existence decides NXDOMAIN for every qtype alike (docs/dns-contract.md §10).
"""

from __future__ import annotations

import ipaddress
import random
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dns.message
import dns.name
import dns.rdatatype
import dns.reversename

from tests.support.dnsclient import has_flag, rcode

ZONE = "cluster.local."
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
QTYPES_SERVICE = ("A", "AAAA", "SRV", "CNAME")
MAX_CHASE = 10  # §5: follow in-zone chains, cap ~10 hops

Obj = Mapping[str, Any]
Question = tuple[str, str]  # (absolute lower-case name, qtype)


@dataclass(frozen=True)
class Answer:
    """What matters in a reply: rcode, the answer section as (type, rdata) pairs, and whether the
    authority section holds the zone SOA (RFC 2308: every negative answer must)."""

    rcode: str
    records: frozenset[tuple[str, str]] = frozenset()
    soa: bool = False

    def __str__(self) -> str:
        recs = ", ".join(f"{t} {d}" for t, d in sorted(self.records))
        return f"{self.rcode}{' +SOA' if self.soa else ''} [{recs}]"


# -- reading API objects ---------------------------------------------------------------------------


def _meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _ns(obj: Obj) -> str:
    return str(_meta(obj).get("namespace") or "default").lower()


def _name(obj: Obj) -> str:
    return str(_meta(obj)["name"]).lower()


def _ports(ports: Iterable[Obj] | None) -> list[tuple[str, str, int]]:
    """(name, protocol, port), lower-case; protocol defaults to TCP (API default)."""
    return [
        (str(p.get("name") or "").lower(), str(p.get("protocol") or "TCP").lower(), int(p["port"]))
        for p in ports or ()
    ]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _canonical(ip: str) -> str:
    return ipaddress.ip_address(ip).compressed


def _rtype(ip: str) -> str:
    return "AAAA" if ":" in ip else "A"


def dashed(ip: str) -> str:
    """§1: the system-assigned endpoint label; IPv6 compressed, `:`→`-`, a trailing `-` + 0."""
    label = _canonical(ip).replace(".", "-").replace(":", "-")
    return label + "0" if label.endswith("-") else label


@dataclass
class _Ready:
    label: str
    ip: str
    ports: list[tuple[str, str, int]]


def _ready_endpoints(slices: Iterable[Obj]) -> list[_Ready]:
    """§1, §8: ready is `conditions.ready` true or absent; FQDN slices are ignored."""
    out = []
    for sl in slices:
        if sl.get("addressType", "IPv4") not in ("IPv4", "IPv6"):
            continue
        ports = _ports(sl.get("ports"))
        for ep in sl.get("endpoints") or ():
            if (ep.get("conditions") or {}).get("ready") is False:
                continue
            for ip in ep.get("addresses") or ():
                label = str(ep["hostname"]).lower() if ep.get("hostname") else dashed(ip)
                out.append(_Ready(label, _canonical(ip), ports))
    return out


def _srv(candidates: list[tuple[int, str]]) -> set[str]:
    """§14: weight floor(100/N) (at least 1) over all candidates, then duplicates dropped."""
    weight = max(1, 100 // len(candidates)) if candidates else 0
    return {f"0 {weight} {port} {target}" for port, target in candidates}


# -- the model -------------------------------------------------------------------------------------


@dataclass
class Model:
    """The zone kdns should serve for a set of API objects."""

    rrs: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    empty: set[str] = field(default_factory=set)  # names that exist with no records
    cnames: dict[str, str] = field(default_factory=dict)
    _existing: set[str] | None = None

    def add(self, name: str, rtype: str, rdata: str) -> None:
        self.rrs.setdefault(name, {}).setdefault(rtype, set()).add(rdata)

    def exists(self, name: str) -> bool:
        """The name or one below it is in the zone (an empty non-terminal exists too)."""
        if self._existing is None:
            self._existing = set()
            for n in (*self.rrs, *self.empty, *self.cnames):
                labels = n.split(".")
                self._existing.update(".".join(labels[i:]) for i in range(len(labels)))
        return name in self._existing

    def answer(self, name: str, qtype: str) -> Answer:
        records: set[tuple[str, str]] = set()
        seen: set[str] = set()
        while name in self.cnames and qtype != "CNAME":
            target = self.cnames[name]
            records.add(("CNAME", target))
            if not target.endswith("." + ZONE) or target in seen or len(seen) >= MAX_CHASE:
                return Answer("NOERROR", frozenset(records))  # resolved by nobody: the CNAME alone
            seen.add(name)
            name = target
        if name in self.cnames:  # qtype CNAME
            return Answer("NOERROR", frozenset({("CNAME", self.cnames[name])}))
        found = {(qtype, d) for d in self.rrs.get(name, {}).get(qtype, ())}
        if not self.exists(name):
            return Answer("NXDOMAIN", frozenset(records), soa=True)
        return Answer("NOERROR", frozenset(records | found), soa=not found)


def model(objects: Iterable[Obj]) -> Model:
    """The zone for the API's current objects (any mix of Namespaces, Services, EndpointSlices)."""
    namespaces: set[str] = set()
    services: list[Obj] = []
    slices: dict[tuple[str, str], list[Obj]] = {}
    for obj in objects:
        kind = obj.get("kind")
        if kind == "Namespace":
            namespaces.add(_name(obj))
        elif kind == "Service":
            services.append(obj)
        elif kind == "EndpointSlice":
            svc = (_meta(obj).get("labels") or {}).get(SERVICE_NAME_LABEL)
            if svc:
                slices.setdefault((_ns(obj), str(svc).lower()), []).append(obj)
    m = Model()
    for ns in namespaces:
        m.empty.add(f"{ns}.svc.{ZONE}")  # §6: NODATA if the namespace exists
    ptr_cluster: dict[str, str] = {}
    ptr_endpoint: dict[str, set[str]] = {}
    for svc in services:
        ns, name = _ns(svc), _name(svc)
        if ns not in namespaces:  # §6: a Service in a namespace that does not exist is not served
            continue
        owner = f"{name}.{ns}.svc.{ZONE}"
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            target = str(spec.get("externalName") or "").rstrip(".").lower()
            if target and not _is_ip(target):  # §5: an IP-looking externalName is not served
                m.cnames[owner] = target + "."
            continue
        ready = _ready_endpoints(slices.get((ns, name), []))
        for r in ready:  # endpoint names: headless (§4) and ClusterIP (CoreDNS extension, §13)
            m.add(f"{r.label}.{owner}", _rtype(r.ip), r.ip)
            ptr_endpoint.setdefault(r.ip, set()).add(f"{r.label}.{owner}")
        ips = [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None"]
        by_port: dict[tuple[str, str], list[tuple[int, str]]] = {}
        every: list[tuple[int, str]] = []
        if ips:  # §3 ClusterIP: addresses and SRV from the Service, candidates IP × port
            for ip in ips:
                m.add(owner, _rtype(ip), _canonical(ip))
                ptr_cluster.setdefault(_canonical(ip), owner)
            for pname, proto, port in _ports(spec.get("ports")):
                for _ in ips:
                    every.append((port, owner))
                    if pname:
                        by_port.setdefault((pname, proto), []).append((port, owner))
        else:  # §4 headless: everything from ready endpoints, SRV ports from the slices
            for r in ready:
                m.add(owner, _rtype(r.ip), r.ip)
                for pname, proto, port in r.ports:
                    every.append((port, f"{r.label}.{owner}"))
                    if pname:
                        by_port.setdefault((pname, proto), []).append((port, f"{r.label}.{owner}"))
        for d in _srv(every):
            m.add(owner, "SRV", d)
        for (pname, proto), cands in by_port.items():
            m.empty.add(f"_{proto}.{owner}")
            for d in _srv(cands):
                m.add(f"_{pname}._{proto}.{owner}", "SRV", d)
    # §3/§4 PTR: a ClusterIP names its Service; otherwise one PTR per ready endpoint name.
    for ip in {*ptr_cluster, *ptr_endpoint}:
        rev = dns.reversename.from_address(ip).to_text().lower()
        targets = {ptr_cluster[ip]} if ip in ptr_cluster else ptr_endpoint[ip]
        for t in targets:
            m.add(rev, "PTR", t)
    return m


def questions(objects: Iterable[Obj]) -> list[Question]:
    """Every question worth asking about these objects: each name they give (or gave) rise to, for
    the qtypes that matter, plus a few that never exist. Pass every object ever written to also ask
    about names that should be gone."""
    qs: set[Question] = {
        (f"nope.default.svc.{ZONE}", "A"),
        (f"nope.svc.{ZONE}", "A"),
        (f"x.nope.nope.svc.{ZONE}", "AAAA"),
    }
    for obj in objects:
        kind = obj.get("kind")
        if kind == "Namespace":
            qs.add((f"{_name(obj)}.svc.{ZONE}", "A"))
            continue
        if kind not in ("Service", "EndpointSlice"):
            continue
        ns = _ns(obj)
        qs.add((f"{ns}.svc.{ZONE}", "A"))
        if kind == "Service":
            spec = obj.get("spec") or {}
            owner = f"{_name(obj)}.{ns}.svc.{ZONE}"
            ips = [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")] if ip and ip != "None"]
            ports = _ports(spec.get("ports"))
        else:
            svc = (_meta(obj).get("labels") or {}).get(SERVICE_NAME_LABEL)
            if not svc:
                continue
            owner = f"{str(svc).lower()}.{ns}.svc.{ZONE}"
            eps = obj.get("endpoints") or ()
            ips = [ip for ep in eps for ip in ep.get("addresses") or ()]
            for ep in eps:
                for ip in ep.get("addresses") or ():
                    label = str(ep["hostname"]).lower() if ep.get("hostname") else dashed(ip)
                    qs.update((f"{label}.{owner}", t) for t in ("A", "AAAA"))
            ports = _ports(obj.get("ports"))
        qs.update((owner, t) for t in QTYPES_SERVICE)
        for pname, proto, _ in ports:
            if pname:
                qs.update({(f"_{pname}._{proto}.{owner}", "SRV"), (f"_{pname}._{proto}.{owner}", "A")})
        for ip in ips:
            if _is_ip(ip):
                qs.add((dns.reversename.from_address(ip).to_text().lower(), "PTR"))
    return sorted(qs)


def expected(objects: Iterable[Obj], qs: Iterable[Question]) -> dict[Question, Answer]:
    m = model(objects)
    return {q: m.answer(*q) for q in qs}


# -- observing kdns --------------------------------------------------------------------------------


def to_answer(msg: dns.message.Message) -> Answer:
    records = frozenset(
        (dns.rdatatype.to_text(rrset.rdtype), rd.to_text().lower()) for rrset in msg.answer for rd in rrset
    )
    soa = any(rrset.rdtype == dns.rdatatype.SOA for rrset in msg.authority)
    code = rcode(msg)
    if has_flag(msg, "TC"):
        code += "+TC"  # a truncated reply never equals an expected one
    return Answer(code, records, soa)


def observe(
    port: int, qs: Iterable[Question], *, window: int = 64, timeout: float = 5.0
) -> dict[Question, Answer]:
    """Ask kdns every question over UDP and keep what matters of each reply.

    Up to `window` queries are in flight on one socket (replies matched by id and question), so a
    few thousand questions take a second, not a minute; a question without a reply is asked again
    once, then recorded as "no reply"."""
    todo = list(dict.fromkeys(qs))
    out: dict[Question, Answer] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        for _attempt in range(2):
            for start in range(0, len(todo), window):
                out.update(_ask_window(sock, todo[start : start + window], timeout))
            todo = [q for q in todo if q not in out]
    out.update({q: Answer("no reply") for q in todo})
    return out


def _ask_window(sock: socket.socket, qs: list[Question], timeout: float) -> dict[Question, Answer]:
    base = random.randrange(0x10000)
    sent: dict[int, Question] = {}
    for i, (name, qtype) in enumerate(qs):
        query = dns.message.make_query(name, qtype, use_edns=0, payload=4096)
        query.id = (base + i) & 0xFFFF
        sent[query.id] = (name, qtype)
        sock.send(query.to_wire())
    got: dict[Question, Answer] = {}
    deadline = time.monotonic() + timeout
    while len(got) < len(sent) and (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            reply = dns.message.from_wire(sock.recv(65535), ignore_trailing=True)
        except TimeoutError:
            break
        q = sent.get(reply.id)
        if q is not None and reply.question and reply.question[0].name == dns.name.from_text(q[0]):
            got[q] = to_answer(reply)  # a late reply to an earlier window is dropped
    return got


def differences(got: Mapping[Question, Answer], want: Mapping[Question, Answer]) -> list[str]:
    """Human-readable mismatches, one line per question."""
    return [
        f"{n} {t}: got {got.get((n, t))}, want {a}"
        for (n, t), a in sorted(want.items())
        if got.get((n, t)) != a
    ]
