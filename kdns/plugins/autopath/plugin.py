"""The autopath walk (CoreDNS plugin/autopath): answer a search-path expansion with the first name
of the client's search path that exists.

A stub resolver with `ndots:5` asks `api.example.com.<ns>.svc.cluster.local`, then
`api.example.com.svc.cluster.local`, `api.example.com.cluster.local`, … before `api.example.com`,
each an NXDOMAIN round trip. When a query is below the first element of the client's search path,
autopath asks the later plugins for the name with each element in turn (the query itself first)
and returns the first reply that is not NXDOMAIN, with a CNAME from the asked name to the name that
answered (and the question as asked), so the client stops searching after one query. If every
element is NXDOMAIN the reply to the query itself is returned. A failure of a later plugin fails
the query, as in CoreDNS.

The reply to such a name depends on who asks (their namespace), so autopath is never transparent
for those names: the server's fast path does not replay them (Plugin.transparent_for).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from dnslib import CNAME, QTYPE, RCODE, RR, DNSRecord

from kdns.metrics import counter
from kdns.plugin import Handler, Plugin
from kdns.plugins._requests import with_question
from kdns.plugins.autopath.search import SearchSource
from kdns.protocol import names
from kdns.protocol.names import zone_matches
from kdns.request import Reply, Request

NXDOMAIN = int(RCODE.NXDOMAIN)
_SUCCESS = counter("autopath", "success_total", "Counter of requests that did autopath.", ("server",))


class AutoPath(Plugin):
    name: ClassVar[str] = "autopath"

    def __init__(self, zones: Sequence[str], source: SearchSource | None) -> None:
        self.zones = tuple(zones)
        self.source = source

    async def start(self) -> None:
        if self.source is not None:
            self.source.start()

    def transparent_for(self, qname: str) -> bool:
        """Only names no client's search path could expand pass through untouched for everyone."""
        if self.source is None or zone_matches(qname, self.zones) is None:
            return True
        return not self.source.walkable(qname)

    async def serve(self, request: Request, next_: Handler) -> Reply:
        qname = request.qname_lower
        if self.source is None or zone_matches(qname, self.zones) is None:
            return await next_(request)
        search = self.source.search_path(request)
        if not search or not qname.endswith("." + search[0]) or search[0] == ".":
            return await next_(request)
        base = request.qname[: len(request.qname) - len(search[0]) - 1]
        first = await next_(request)
        if first.rcode != NXDOMAIN:
            return first  # the name itself exists: its own reply, untouched
        for suffix in search[1:]:
            reply = await next_(_reask(request, f"{base}.{suffix}"))
            if reply.rcode == NXDOMAIN:
                continue
            _SUCCESS.labels(request.server).inc()
            return Reply(_answer_as(reply.message, request), self.name)
        return first


def _reask(request: Request, qname: str) -> Request:
    """The request with another name (type, EDNS, client as asked): how autopath asks again."""
    return with_question(request, qname, request.qtype, request.qclass)


def _answer_as(message: DNSRecord, original: Request) -> DNSRecord:
    """CoreDNS's cnamer: a CNAME from the asked name to the owner of the first answer record not
    already owned by it (TTL of that record), and the question as the client asked it."""
    for rr in message.rr:
        if names.lower(rr.rname.label) != names.lower(original.query.labels):
            message.rr.insert(0, RR(original.owner, QTYPE.CNAME, ttl=rr.ttl, rdata=CNAME(rr.rname)))
            break
    message.questions[0].qname = original.owner
    return message
