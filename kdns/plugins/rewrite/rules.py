"""rewrite's rules for the question (name, type, class) and for the reply (ttl, rcode, cname), with
the response rules that go with them; CoreDNS's plugin/rewrite semantics, rule by rule."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dnslib import CNAME, QTYPE, DNSLabel, DNSRecord

from kdns.plugin import PluginError
from kdns.plugins._regex import GoRegexp, expand_groups, submatches
from kdns.plugins.rewrite.state import Query, Resolver, ResponseRule
from kdns.plugins.rewrite.strings import (
    EXACT,
    PREFIX,
    REGEX,
    SUBSTRING,
    SUFFIX,
    NameMatch,
    RemapRewriter,
    StringRewriter,
    SuffixRewriter,
)
from kdns.protocol import names

# --- response rules ---------------------------------------------------------------------------------


def _text(label: DNSLabel) -> str:
    """A name in a reply as kdns's escaped text, the form the question side rewrites
    (kdns.protocol.names): a label holding a dot or any octet stays one label."""
    return names.to_text(label.label)


def _label(text: str) -> DNSLabel:
    """Rewritten escaped text back to labels; text that is no domain name fails the query, as a
    rewritten question does."""
    try:
        return DNSLabel(names.from_text(text))
    except names.BadName:
        raise PluginError(f"invalid name after rewrite: {text}") from None

# Record types whose value is a name that `answer value` rewrites (CoreDNS's getRecordValueForRewrite),
# with the dnslib attribute holding it.
_VALUE_FIELDS = {
    QTYPE.CNAME: "label", QTYPE.PTR: "label", QTYPE.NS: "label", QTYPE.DNAME: "label", QTYPE.MX: "label",
    QTYPE.SRV: "target", QTYPE.SOA: "mname", QTYPE.NAPTR: "replacement",
}  # fmt: skip


@dataclass(frozen=True)
class NameResponse(ResponseRule):
    """Record owners through `rewriter` (`answer name`, and `answer auto`)."""

    rewriter: StringRewriter

    def record(self, rr: Any) -> None:
        name = _text(rr.rname)
        new = self.rewriter.rewrite(name)
        if new != name:
            rr.rname = _label(new)


@dataclass(frozen=True)
class ValueResponse(ResponseRule):
    """Names in the data of CNAME, DNAME, SOA (MNAME), SRV, MX, NAPTR, NS and PTR (`answer value`)."""

    rewriter: StringRewriter

    def record(self, rr: Any) -> None:
        attr = _VALUE_FIELDS.get(rr.rtype)
        if attr is None:
            return
        value = _text(getattr(rr.rdata, attr))
        new = self.rewriter.rewrite(value)
        if new != value:
            setattr(rr.rdata, attr, _label(new))


@dataclass(frozen=True)
class TtlResponse(ResponseRule):
    """Every record's TTL clamped into [low, high]."""

    low: int
    high: int

    def record(self, rr: Any) -> None:
        rr.ttl = min(max(int(rr.ttl), self.low), self.high)


@dataclass(frozen=True)
class RcodeResponse(ResponseRule):
    old: int
    new: int

    def message(self, msg: DNSRecord) -> None:
        if _full_rcode(msg) == self.old:
            _set_rcode(msg, self.new)


def _full_rcode(msg: DNSRecord) -> int:
    """Header rcode plus the OPT's upper 8 bits (RFC 6891 §6.1.3)."""
    opt = next((rr for rr in msg.ar if rr.rtype == QTYPE.OPT), None)
    upper = (int(opt.ttl) >> 24) & 0xFF if opt is not None else 0
    return int(msg.header.rcode) | upper << 4


def _set_rcode(msg: DNSRecord, rcode: int) -> None:
    msg.header.rcode = rcode & 0xF
    opt = next((rr for rr in msg.ar if rr.rtype == QTYPE.OPT), None)
    if opt is not None:
        opt.ttl = (int(opt.ttl) & 0x00FFFFFF) | (rcode >> 4) << 24
    # Without an OPT an extended rcode (BADSIG…) cannot be sent; its lower 4 bits are what is left.


# --- name rules -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NameRule:
    """`name [TYPE] FROM TO [answer …]`: the question's name is replaced when it matches.

    `auto` (answer auto; always for exact) maps the new name and its subdomains back to the old one
    in owners and values of the reply; `static` are the explicit `answer name|value` rules (suffix's
    auto is static too: the reverse suffix mapping)."""

    mode: str
    match: NameMatch
    replacement: str
    auto: bool
    static: tuple[ResponseRule, ...]

    def apply(self, query: Query) -> list[ResponseRule] | None:
        old = query.lower
        new = self._rewrite(old)
        if new is None:
            return None
        query.name = new
        if not self.auto:
            return list(self.static)
        back = RemapRewriter(new, old)
        return [NameResponse(back), ValueResponse(back), *self.static]

    def _rewrite(self, name: str) -> str | None:
        kind, text, rep = self.match.kind, self.match.text, self.replacement
        if not self.match.matches(name):
            return None
        if kind == EXACT:
            return rep
        if kind == PREFIX:
            return rep + name[len(text) :]
        if kind == SUFFIX:
            return name[: -len(text)] + rep
        if kind == SUBSTRING:
            return name.replace(text, rep)
        assert kind == REGEX and self.match.regex is not None
        m = self.match.regex.search(name)
        assert m is not None
        return expand_groups(rep, submatches(m))


def suffix_auto(suffix: str, replacement: str) -> tuple[ResponseRule, ...]:
    """A suffix rule's `answer auto`: the reply's names get the original suffix back."""
    back = SuffixRewriter(replacement, suffix)
    return NameResponse(back), ValueResponse(back)


@dataclass(frozen=True)
class TypeRule:
    """`type FROM TO`: the question's type."""

    mode: str
    old: int
    new: int

    def apply(self, query: Query) -> list[ResponseRule] | None:
        if query.qtype != self.old:
            return None
        query.qtype = self.new
        return []


@dataclass(frozen=True)
class ClassRule:
    """`class FROM TO`: the question's class."""

    mode: str
    old: int
    new: int

    def apply(self, query: Query) -> list[ResponseRule] | None:
        if query.qclass != self.old:
            return None
        query.qclass = self.new
        return []


@dataclass(frozen=True)
class MatchRule:
    """`ttl …` and `rcode …`: for matching names, a change to the reply only."""

    mode: str
    match: NameMatch
    response: ResponseRule

    def apply(self, query: Query) -> list[ResponseRule] | None:
        return [self.response] if self.match.matches(query.lower) else None


# --- cname ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CnameTarget(ResponseRule):
    """The first CNAME in the answer whose target `target_for` maps gets the new target; the answer
    keeps the CNAMEs up to it, and the rest is replaced by a lookup of the new target (same qtype)."""

    kind: str
    old: str
    new: str
    regex: GoRegexp | None

    def target_for(self, target: str) -> str | None:
        if self.kind == EXACT:
            return self.new if target == self.old else None
        if self.kind == PREFIX:
            return self.new + target[len(self.old) :] if target.startswith(self.old) else None
        if self.kind == SUFFIX:
            return target[: -len(self.old)] + self.new if target.endswith(self.old) else None
        if self.kind == SUBSTRING:
            return target.replace(self.old, self.new) if self.old in target else None
        assert self.regex is not None
        m = self.regex.search(target)
        return None if m is None else expand_groups(self.new, submatches(m))

    async def resolve(self, msg: DNSRecord, qtype: int, proto: str, lookup: Resolver) -> None:
        for i, rr in enumerate(msg.rr):
            if rr.rtype != QTYPE.CNAME:
                continue
            target = _text(rr.rdata.label)
            new = self.target_for(target)
            if new is None:
                continue
            try:
                found = await lookup(new, qtype, proto)
            except Exception:  # CoreDNS logs the failed lookup and leaves the reply as it was
                return
            kept = [r for r in msg.rr[: i + 1] if r.rtype == QTYPE.CNAME]
            kept[-1].rdata = CNAME(_label(new))
            msg.rr = kept + list(found.rr)
            msg.header.tc = found.header.tc
            return


@dataclass(frozen=True)
class CnameRule:
    """`cname [TYPE] FROM TO`: applies to every query (CoreDNS's rule always reports a rewrite)."""

    mode: str
    response: CnameTarget

    def apply(self, query: Query) -> list[ResponseRule] | None:
        return [self.response]
