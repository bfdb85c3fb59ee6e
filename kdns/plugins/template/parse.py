"""A template line and its block → TemplateRule, with CoreDNS's options and error texts."""

from __future__ import annotations

from collections.abc import Sequence

from dnslib import RCODE

from kdns.corefile.model import Directive
from kdns.plugins._args import expect_args, parse_int, unknown_property, zones_or_default
from kdns.plugins._regex import GoRegexp, compile_go_regexp
from kdns.plugins._text import qclass_number, qtype_number, rcode_number
from kdns.plugins.template.data import FIELDS
from kdns.plugins.template.gotemplate import FUNCTIONS, Template, TemplateError, parse
from kdns.plugins.template.plugin import TemplateRule

_MATCH_ALL = ".*"


def parse_template(d: Directive, block_zones: Sequence[str]) -> TemplateRule:
    args = expect_args(d, 2)
    qclass = qclass_number(args[0])  # exact spelling, as CoreDNS looks them up
    if qclass is None:
        raise d.error(f"invalid query class {args[0]}")
    qtype = qtype_number(args[1])
    if qtype is None:
        raise d.error(f"invalid RR class {args[1]}")  # sic: CoreDNS's message
    zones = zones_or_default(d, args[2:], block_zones)
    regexes: list[GoRegexp] = []
    sections: dict[str, list[Template]] = {"answer": [], "additional": [], "authority": []}
    rcode, ede, fallthrough = RCODE.NOERROR, None, None
    for child in d.children:
        name = child.name
        if name == "match":
            regexes += [compile_go_regexp(child, r, "regex") for r in expect_args(child, 1)]
        elif name in sections:
            sections[name] += [_template(child, text) for text in expect_args(child, 1)]
        elif name == "rcode":
            text = expect_args(child, 1, 1)[0]
            number = rcode_number(text)
            if number is None:
                raise child.error(f"unknown rcode {text}")
            rcode = number
        elif name == "ederror":
            ede_args = expect_args(child, 1, 2)
            code = parse_int(child, ede_args[0], 0, 65535, "extended DNS error code")
            ede = (code, ede_args[1] if len(ede_args) == 2 else "")
        elif name == "fallthrough":
            fallthrough = zones_or_default(child, child.args, (".",))
        elif name == "upstream":
            pass  # deprecated, no effect in CoreDNS either: CNAME targets are always looked up
        elif name in ("var", "expr"):
            raise child.error(f"'{name}' (expr-lang expressions) is not supported by kdns")
        else:
            raise unknown_property(d, child)
    if not regexes:
        regexes.append(compile_go_regexp(d, _MATCH_ALL))
    return TemplateRule(qclass, qtype, zones, tuple(regexes), tuple(sections["answer"]),
                        tuple(sections["additional"]), tuple(sections["authority"]), rcode, ede,
                        fallthrough)  # fmt: skip


def _template(line: Directive, text: str) -> Template:
    try:
        return parse(text, tuple(FUNCTIONS), dict.fromkeys(FIELDS))
    except TemplateError as e:
        raise line.error(f"could not compile template: {text}, template: {line.name}: {e}") from None
