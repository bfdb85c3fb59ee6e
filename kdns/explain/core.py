"""One explanation: the names asked, the server's reply to each, and what the cluster says about it.

Each name goes through the server's real query path (Controller.trace); nothing here computes an
answer. With a namespace, a short name is expanded the way a Pod's resolver does it (search.py) and
asked name by name until one has records. The reply's Extended DNS Errors (RFC 8914) are the
`reason`: the server's own words for a negative or failed answer. For a name under a kubernetes
zone, the plugin's index adds the Service, its EndpointSlices and notes
(kdns.plugins.kubernetes.explain).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dnslib import QTYPE, RR, DNSRecord

from kdns.explain.search import NDOTS, candidates
from kdns.plugin import Controller, Traced, find_plugin
from kdns.plugins._edns import options
from kdns.plugins._text import qtype_number, qtype_text, rcode_text
from kdns.plugins.kubernetes import Kubernetes
from kdns.plugins.kubernetes import explain as kubernetes
from kdns.plugins.kubernetes.names import pod_search_domains
from kdns.protocol import names
from kdns.protocol.edns import ede_name, read_ede
from kdns.protocol.message import MessageError, parse_message
from kdns.request import Reply

DEFAULT_CLUSTER_ZONE = "cluster.local."  # when no kubernetes plugin says otherwise
# RFC 1123 label, which is what a Namespace's name is.
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_TYPE_NUMBER = re.compile(r"(?:TYPE)?(\d{1,5})")


class ExplainError(ValueError):
    """A question that cannot be asked; the message says why (HTTP 400, exit status 2)."""


@dataclass
class ExtendedError:
    code: int
    name: str  # RFC 8914's name of the code
    text: str


@dataclass
class Attempt:
    """One name asked, and the server's reply."""

    name: str
    rcode: str  # NOERROR, NXDOMAIN…; "no reply" when the server sent none
    answered: bool  # records a resolver would stop at
    answer: list[str]
    authority: list[str]
    extended_errors: list[ExtendedError]
    reason: str | None  # the EDEs' texts: why the reply is negative or failed
    plugin: str | None  # the plugin that wrote the reply; None when the server itself did
    server_block: list[str]  # the zones of the server block the name went to; [] when none


@dataclass
class Explanation:
    name: str
    type: str
    namespace: str | None
    listener: str  # the server's listener whose configuration answered ("dns://:53")
    search: list[str] | None  # a Pod's search domains (with a namespace), in order
    ndots: int | None
    tried: list[Attempt] = field(default_factory=list)
    answered_by: str | None = None  # the name whose reply has records
    explained: str | None = None  # the name whose reply `reason` and `cluster` are about
    # Why, in the server's words: the EDE text of the reply explained (answered, else the first
    # name a kubernetes zone holds). The kubernetes plugin's negative answers say it there too.
    reason: str | None = None
    cluster: kubernetes.ClusterDetail | None = None
    hint: str | None = None


def parse_qtype(text: str) -> int:
    """`A`, `aaaa`, `TYPE65` or `65` → the number; ExplainError otherwise."""
    number = qtype_number(text.upper())
    if number is not None:
        return number
    digits = _TYPE_NUMBER.fullmatch(text.upper())
    if digits is not None and int(digits.group(1)) < 0x10000:
        return int(digits.group(1))
    raise ExplainError(f"unknown query type {text!r}")


async def explain(server: Controller, name: str, qtype: int, namespace: str | None = None) -> Explanation:
    """Ask `name` (as a Pod in `namespace` would, when given) and explain the reply."""
    name = name.strip()
    try:
        names.from_text(name)
    except names.BadName as e:
        raise ExplainError(f"bad name {name!r}: {e}") from None
    if namespace is not None and not _NAMESPACE.fullmatch(namespace):
        raise ExplainError(f"bad namespace {namespace!r}: not a DNS label (RFC 1123)")
    out = Explanation(name, qtype_text(qtype), namespace, "", None, None)
    if namespace is not None:
        out.search = list(pod_search_domains(namespace, _cluster_zone(server)))
        out.ndots = NDOTS
    replies: list[tuple[Attempt, Traced, DNSRecord | None]] = []
    for qname in filter(_fits, candidates(name, out.search or ())):
        traced = await server.trace(qname, qtype)
        reply = _parse(traced.wire)
        attempt = _attempt(qname, qtype, traced, reply)
        out.listener = traced.listener
        out.tried.append(attempt)
        replies.append((attempt, traced, reply))
        if attempt.answered:
            out.answered_by = qname
            break
    attempt, traced, reply = _focus(replies)
    out.explained, out.reason = attempt.name, attempt.reason
    plugin = kubernetes.find(traced.block, attempt.name.lower())
    if plugin is not None:
        out.cluster = kubernetes.describe(plugin, attempt.name.lower(), qtype, reply)
    single_label = len(names.split(name)) == 1 and not name.endswith(".")
    if namespace is None and out.answered_by is None and single_label:
        out.hint = f"a Pod asks {name!r} with its search domains first: give its namespace (-n NAMESPACE)"
    return out


def _fits(qname: str) -> bool:
    """A name with a search domain appended may pass 255 octets; a resolver skips it, as here."""
    try:
        names.from_text(qname)
    except names.BadName:
        return False
    return True


def _cluster_zone(server: Controller) -> str:
    plugin = find_plugin(server.plugins(), "kubernetes")
    return plugin.opts.primary_zone if isinstance(plugin, Kubernetes) else DEFAULT_CLUSTER_ZONE


def _parse(wire: bytes | None) -> DNSRecord | None:
    if wire is None:
        return None
    try:
        return parse_message(wire)
    except MessageError:
        return None


def _attempt(qname: str, qtype: int, traced: Traced, reply: DNSRecord | None) -> Attempt:
    if reply is None:
        return Attempt(qname, "no reply", False, [], [], [], None, traced.plugin or None, list(traced.zones))
    rcode = Reply(reply, traced.plugin).rcode  # with the OPT's extended bits
    errors = [ExtendedError(code, ede_name(code), text) for code, text in read_ede(options(reply) or ())]
    answered = rcode == 0 and any(rr.rtype == qtype or qtype == QTYPE.ANY for rr in reply.rr)
    return Attempt(
        name=qname,
        rcode=rcode_text(rcode) or str(rcode),
        answered=answered,
        answer=[_record(rr) for rr in reply.rr],
        authority=[_record(rr) for rr in reply.auth],
        extended_errors=errors,
        reason="; ".join(e.text or e.name for e in errors) or None,
        plugin=traced.plugin or None,
        server_block=list(traced.zones),
    )


def _focus(
    replies: list[tuple[Attempt, Traced, DNSRecord | None]],
) -> tuple[Attempt, Traced, DNSRecord | None]:
    """The reply to explain in detail: the one with records, else the first name a kubernetes zone
    holds (a Service name, for a short name asked from a namespace), else the first."""
    for entry in replies:
        if entry[0].answered:
            return entry
    for entry in replies:
        if kubernetes.find(entry[1].block, entry[0].name.lower()) is not None:
            return entry
    return replies[0]


def _record(rr: RR) -> str:
    return f"{rr.rname} {rr.ttl} IN {qtype_text(rr.rtype)} {rr.rdata.toZone()}"
