"""Regular expressions written in a Corefile, with Go's syntax and guarantees.

CoreDNS compiles these with Go's regexp package, whose syntax is RE2's: no backreferences or
lookaround, `(?P<name>…)` groups, leftmost-first matching. kdns uses RE2 itself (google-re2), so a
pattern means the same here and every match runs in linear time: a regex evaluated for every query
cannot be made to backtrack for ever by a crafted name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, cast

import re2

from kdns.corefile.model import Directive

# CoreDNS's rewrite and template refuse longer patterns (compiling a huge one costs memory).
MAX_PATTERN_LENGTH = 10000

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print its own copy of each syntax error on stderr


class Match(Protocol):
    def group(self, index: int | str, /) -> str | None: ...
    def groups(self) -> tuple[str | None, ...]: ...


class GoRegexp(Protocol):
    """The part of a compiled pattern kdns uses (re2's API follows Python's `re`)."""

    pattern: str
    groups: int
    groupindex: Mapping[str, int]

    def search(self, text: str, /) -> Match | None: ...


def compile_go_regexp(d: Directive, pattern: str, what: str = "regex pattern") -> GoRegexp:
    """Compile `pattern`, or raise the directive's error: too long, or not valid RE2 syntax."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise d.error(f"{what} too long: {len(pattern)} > {MAX_PATTERN_LENGTH}")
    try:
        return cast(GoRegexp, re2.compile(pattern, _OPTIONS))
    except re2.error as e:
        reason = e.args[0].decode(errors="replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        raise d.error(f"invalid {what} {pattern!r}: {reason}") from None


def submatches(m: Match) -> list[str]:
    """Go's FindStringSubmatch: the whole match, then each group ("" for a group that took no part)."""
    return [m.group(0) or "", *(g or "" for g in m.groups())]


def expand_groups(template: str, groups: list[str]) -> str:
    """Replace `{0}`, `{1}`… with the submatches, as CoreDNS's rewrite does (plain text otherwise)."""
    for i, value in enumerate(groups):
        template = template.replace("{" + str(i) + "}", value)
    return template
