"""Name matching and string rewriting, shared by rewrite's name, ttl, rcode and cname rules.

Names are compared lower-cased, as CoreDNS's rules compare state.Name(); FROM and TO of the non-regex
match types are lower-cased and made absolute when parsed (CoreDNS's plugin.Name.Normalize).
"""

from __future__ import annotations

from dataclasses import dataclass

from kdns.corefile.model import Directive
from kdns.plugins._regex import GoRegexp, compile_go_regexp, expand_groups, submatches

EXACT, PREFIX, SUFFIX, SUBSTRING, REGEX = "exact", "prefix", "suffix", "substring", "regex"
MATCH_TYPES = (EXACT, PREFIX, SUFFIX, SUBSTRING, REGEX)


def normalize(name: str) -> str:
    """Lower-case and absolute (CoreDNS's plugin.Name.Normalize, miekg's dns.Fqdn)."""
    name = name.lower()
    return name if name.endswith(".") else name + "."


@dataclass(frozen=True)
class NameMatch:
    """`[exact|prefix|suffix|substring|regex] FROM`: whether a (lower-cased) name matches."""

    kind: str
    text: str  # normalized, or the regex pattern as written
    regex: GoRegexp | None = None

    def matches(self, name: str) -> bool:
        if self.kind == EXACT:
            return name == self.text
        if self.kind == PREFIX:
            return name.startswith(self.text)
        if self.kind == SUFFIX:
            return name.endswith(self.text)
        if self.kind == SUBSTRING:
            return self.text in name
        assert self.regex is not None
        return self.regex.search(name) is not None


def name_match(d: Directive, kind: str, text: str, rule: str) -> NameMatch:
    """Parse FROM for match type `kind`; the error names the rule, as CoreDNS's do."""
    if kind == REGEX:
        return NameMatch(kind, text, compile_go_regexp(d, text, f"regex pattern in a {rule} rule"))
    if kind not in MATCH_TYPES:
        raise d.error(f"{rule} rule supports only exact, prefix, suffix, substring, and regex name matching")
    return NameMatch(kind, normalize(text))


class StringRewriter:
    def rewrite(self, text: str) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class RegexRewriter(StringRewriter):
    """The first match of `pattern` turns the whole string into `replacement` with `{N}` filled."""

    pattern: GoRegexp
    replacement: str

    def rewrite(self, text: str) -> str:
        m = self.pattern.search(text)
        return text if m is None else expand_groups(self.replacement, submatches(m))


@dataclass(frozen=True)
class RemapRewriter(StringRewriter):
    """`orig` and its subdomains: `orig` → `replacement`, `x.orig` → `x.replacement` (answer auto)."""

    orig: str
    replacement: str

    def rewrite(self, text: str) -> str:
        if text == self.orig:
            return self.replacement
        cut = len(text) - len(self.orig)
        if cut > 0 and text[cut - 1] == "." and text[cut:] == self.orig:
            return text[:cut] + self.replacement
        return text


@dataclass(frozen=True)
class SuffixRewriter(StringRewriter):
    suffix: str
    replacement: str

    def rewrite(self, text: str) -> str:
        return text[: -len(self.suffix)] + self.replacement if text.endswith(self.suffix) else text


def check_groups(d: Directive, pattern: GoRegexp, replacement: str) -> None:
    """CoreDNS refuses a replacement that uses more distinct `{N}` (N ≤ 100) than the pattern has
    groups."""
    used = sum(1 for i in range(101) if "{" + str(i) + "}" in replacement)
    if used > pattern.groups:
        raise d.error(
            f"the rewrite regex pattern ({replacement}) uses more subexpressions than its corresponding "
            f"matching regex pattern ({pattern.pattern})"
        )
