"""The template plugin: CoreDNS's template.ServeDNS, one template after another."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dnslib import CLASS, QTYPE, RCODE, RR, DNSRecord

from kdns import metrics
from kdns.plugin import Controller, Handler, Plugin, PluginError
from kdns.plugins import _edns
from kdns.plugins._regex import GoRegexp, submatches
from kdns.plugins._text import qclass_text, qtype_text
from kdns.plugins.file.zonefile import ZoneFileError, ZoneFileReader
from kdns.plugins.template.data import TemplateData, template_data
from kdns.plugins.template.gotemplate import ExecError, Template
from kdns.protocol.names import zone_matches
from kdns.request import Reply, Request

_LABELS = ("server", "zone", "view", "class", "type")
MATCHES = metrics.counter("template", "matches_total", "Counter of template regex matches.", _LABELS)
_FAILURE_LABELS = (*_LABELS, "section", "template")
TEMPLATE_FAILURES = metrics.counter(
    "template", "template_failures_total", "Counter of go template failures.", _FAILURE_LABELS
)
RR_FAILURES = metrics.counter(
    "template", "rr_failures_total", "Counter of mis-templated RRs.", _FAILURE_LABELS
)
ANY = 255  # as a template's class or type, and as a query's: matches every one


@dataclass(frozen=True)
class TemplateRule:
    """One `template CLASS TYPE [ZONES...] { … }`."""

    qclass: int
    qtype: int
    zones: tuple[str, ...]
    regexes: tuple[GoRegexp, ...]
    answer: tuple[Template, ...]
    additional: tuple[Template, ...]
    authority: tuple[Template, ...]
    rcode: int
    ede: tuple[int, str] | None
    fallthrough: tuple[str, ...] | None  # None: no fallthrough

    def match(self, request: Request) -> tuple[TemplateData | None, bool]:
        """(data, fall through): data when the query matches; otherwise whether it may go on."""
        name = request.qname_lower
        zone = zone_matches(name, self.zones)
        if zone is None:
            return None, True
        if ANY not in (self.qclass, request.qclass) and request.qclass != self.qclass:
            return None, True
        if ANY not in (self.qtype, request.qtype) and request.qtype != self.qtype:
            return None, True
        for regex in self.regexes:
            m = regex.search(name)
            if m is None:
                continue
            match = submatches(m)
            group = {str(i): v for i, v in enumerate(match)}
            group.update({g: match[i] for g, i in regex.groupindex.items()})
            qclass = qclass_text(request.qclass if request.qclass != ANY else self.qclass)
            qtype = qtype_text(request.qtype if request.qtype != ANY else self.qtype)
            return template_data(request, zone, regex.pattern, match, group, qclass, qtype), False
        return None, self.fallthrough is not None and zone_matches(name, self.fallthrough) is not None


class TemplatePlugin(Plugin):
    name = "template"

    def __init__(self, rules: Sequence[TemplateRule], controller: Controller) -> None:
        self.rules = tuple(rules)
        self.zones = tuple(z for r in self.rules for z in r.zones)
        self.controller = controller

    async def serve(self, request: Request, next_: Handler) -> Reply:
        if zone_matches(request.qname_lower, self.zones) is None:
            return await next_(request)
        for rule in self.rules:
            data, fall = rule.match(request)
            if data is None:
                if not fall:
                    return self._servfail(request)
                continue
            labels = (request.server, str(data.fields["Zone"]), "", str(data.fields["Class"]),
                      str(data.fields["Type"]))  # fmt: skip
            MATCHES.labels(*labels).inc()
            if rule.rcode == RCODE.SERVFAIL:
                return self._servfail(request)
            return await self._answer(request, rule, data, labels)
        return await next_(request)

    def transparent_for(self, qname: str) -> bool:
        return zone_matches(qname, self.zones) is None  # names outside every template's zones

    def _servfail(self, request: Request) -> Reply:
        """What CoreDNS's server writes when template returns SERVFAIL without a message (AA=0)."""
        return Reply(request.reply(RCODE.SERVFAIL), self.name)

    async def _answer(self, request: Request, rule: TemplateRule, data: TemplateData,
                      labels: tuple[str, ...]) -> Reply:  # fmt: skip
        msg = request.reply(rule.rcode, aa=True)
        for template in rule.answer:
            rr = _record(template, data, "answer", labels)
            msg.add_answer(rr)
            if rr.rtype == QTYPE.CNAME and request.qtype in (QTYPE.A, QTYPE.AAAA):
                await self._chase(request, str(rr.rdata.label), msg)
        for template in rule.additional:
            msg.add_ar(_record(template, data, "additional", labels))
        for template in rule.authority:
            msg.add_auth(_record(template, data, "authority", labels))
        if rule.ede is not None:
            _edns.add_reply_option(msg, *_edns.ede(*rule.ede))
        return Reply(msg, self.name)

    async def _chase(self, request: Request, target: str, msg: DNSRecord) -> None:
        """A templated CNAME for an A/AAAA query: the target's records, looked up through the whole
        server, follow it (a failed lookup leaves the CNAME alone, as CoreDNS)."""
        try:
            found = await self.controller.resolve(target, request.qtype, request.proto)
        except Exception:
            return
        msg.header.tc = found.header.tc
        for rr in found.rr:
            msg.add_answer(rr)


def _record(template: Template, data: TemplateData, section: str, labels: tuple[str, ...]) -> RR:
    """Render `template` and read it as one resource record (RFC 1035 §5.1, origin the root, TTL
    3600 when none is written, as miekg/dns's NewRR); failures are counted and end in SERVFAIL."""
    try:
        text = template.render(data)
    except ExecError as e:
        TEMPLATE_FAILURES.labels(*labels, section, template.source).inc()
        raise PluginError(f"template: {section}: {e}") from None
    try:
        records = ZoneFileReader().read_text(text, ".", f"template {section}")
    except ZoneFileError as e:
        records, error = [], e.message
    else:
        error = "no resource record"
    if not records:
        RR_FAILURES.labels(*labels, section, template.source).inc()
        raise PluginError(f"template: {section}: {text!r}: {error}")
    first = records[0]
    return RR(first.owner, first.rtype, CLASS.IN, first.ttl, first.rdata)
