"""A rewrite line → one rule, with CoreDNS's argument rules and error texts (plugin/rewrite's
newRule and the parsers of each rule type)."""

from __future__ import annotations

from kdns.corefile.model import Directive
from kdns.plugins._regex import compile_go_regexp
from kdns.plugins._text import qclass_number, qtype_number, rcode_number
from kdns.plugins.rewrite import edns0
from kdns.plugins.rewrite.rules import (
    ClassRule,
    CnameRule,
    CnameTarget,
    MatchRule,
    NameResponse,
    NameRule,
    RcodeResponse,
    TtlResponse,
    TypeRule,
    ValueResponse,
    suffix_auto,
)
from kdns.plugins.rewrite.state import CONTINUE, STOP, ResponseRule, Rule
from kdns.plugins.rewrite.strings import (
    EXACT,
    MATCH_TYPES,
    REGEX,
    SUFFIX,
    RegexRewriter,
    check_groups,
    name_match,
    normalize,
)

_MAX_TTL = 2**31 - 1  # an unbounded `MIN-` range ends here (CoreDNS)


def rule_tokens(d: Directive) -> list[str]:
    """The rule's words: the arguments, or, when there are fewer than two, every word of the block
    after them (CoreDNS reads `rewrite stop { name … \\n answer … }` as one line)."""
    args = list(d.args)
    if d.children and len(args) >= 2:
        raise d.error("a rewrite rule takes its words either on the line or in a block, not both")
    if len(args) < 2:
        for child in d.children:
            if child.children:
                raise d.error(f"unexpected block after '{child.name}'")
            args += [child.name, *child.args]
    return args


def parse_rule(d: Directive) -> Rule:
    args = rule_tokens(d)
    if not args:
        raise d.error("no rule type specified for rewrite")
    mode = STOP
    first = args[0].lower()
    if first in (STOP, CONTINUE):
        if len(args) < 2:
            raise d.error(f"{first} rule must begin with a rule type")
        mode, args = first, args[1:]
    kind, rest = args[0].lower(), args[1:]
    if kind == "answer":
        raise d.error("response rewrites must begin with a name rule")
    if kind == "name":
        return _name_rule(d, mode, rest)
    if kind in ("type", "class"):
        if len(rest) != 2:
            raise d.error(f"{kind} rules must have exactly two arguments")
        lookup, what = (qtype_number, "type") if kind == "type" else (qclass_number, "class")
        old, new = (lookup(a.upper()) for a in rest)
        for text, number in zip(rest, (old, new), strict=True):
            if number is None:
                raise d.error(f'invalid {what} "{text.upper()}"')
        assert old is not None and new is not None
        return TypeRule(mode, old, new) if kind == "type" else ClassRule(mode, old, new)
    if kind == "edns0":
        return _edns0_rule(d, mode, rest)
    if kind == "ttl":
        return _ttl_rule(d, mode, rest)
    if kind == "rcode":
        return _rcode_rule(d, mode, rest)
    if kind == "cname":
        return _cname_rule(d, mode, rest)
    raise d.error(f'invalid rule type "{args[0]}"')


# --- name --------------------------------------------------------------------------------------------


def _name_rule(d: Directive, mode: str, args: list[str]) -> Rule:
    if len(args) < 2:
        raise d.error("too few arguments for a name rule")
    if len(args) == 2:
        kind, old, new = EXACT, args[0], args[1]
    else:
        kind, old, new = args[0].lower(), args[1], args[2]
    if kind not in MATCH_TYPES:
        raise d.error(
            "name rule supports only exact, prefix, suffix, substring, and regex name matching, "
            f"received: {kind}"
        )
    auto, static = _answer_rules(d, kind, args[3:]) if len(args) > 3 else (False, ())
    replacement = normalize(new)
    if kind == REGEX:
        match = name_match(d, kind, old, "name")
        assert match.regex is not None
        check_groups(d, match.regex, new)
        return NameRule(mode, match, replacement, auto, static)
    match = name_match(d, kind, old, "name")
    if kind == EXACT:
        # CoreDNS compiles an exact rule's TO as a regex and refuses it when that fails.
        check_groups(d, compile_go_regexp(d, replacement, "regex matching pattern"), match.text)
        return NameRule(mode, match, replacement, True, static)
    if kind == SUFFIX:
        answers = (*suffix_auto(match.text, replacement), *static) if auto else static
        return NameRule(mode, match, replacement, False, answers)
    return NameRule(mode, match, replacement, auto, static)


def _answer_rules(d: Directive, kind: str, args: list[str]) -> tuple[bool, tuple[ResponseRule, ...]]:
    """`answer auto | answer name FROM TO | answer value FROM TO`, repeated; after the first, the
    word `answer` may be left out (CoreDNS's parseAnswerRules)."""
    if len(args) < 2:
        raise d.error(f"invalid arguments for {kind} rule")
    auto, rules, names, i, last = False, [], 0, 0, ""
    while i < len(args):
        if not last and args[i] != "answer":
            raise d.error(f"exceeded the number of arguments for a non-answer rule argument for {kind} rule")
        if args[i] == "answer":
            i += 1
        if i == len(args):
            raise d.error(f"type missing for answer rule for {kind} rule")
        last = args[i]
        i += 1
        if last == "auto":
            auto = True
            continue
        if last not in ("name", "value"):
            raise d.error(f'invalid type "{last}" for answer rule for {kind} rule')
        if len(args) - i < 2:
            raise d.error(f"{last} answer rule for {kind} rule: 2 arguments required")
        pattern = compile_go_regexp(d, args[i], f"{last} answer rule for {kind} rule: regex matching pattern")
        check_groups(d, pattern, args[i + 1])
        rewriter = RegexRewriter(pattern, normalize(args[i + 1]))
        rules.append(NameResponse(rewriter) if last == "name" else ValueResponse(rewriter))
        names += last == "name"
        i += 2
    if auto and names:
        raise d.error("auto name answer rule cannot be combined with explicit name anwer rules")
    return auto, tuple(rules)


# --- ttl, rcode, cname ------------------------------------------------------------------------------


def _match_and_value(d: Directive, args: list[str], values: int, rule: str) -> tuple[str, str, list[str]]:
    """`[TYPE] NAME VALUE…`: the match type (default exact), the name, and the `values` last words."""
    if len(args) == values + 1:
        return EXACT, args[0], args[1:]
    if len(args) == values + 2:
        return args[0].lower(), args[1], args[2:]
    if len(args) <= values:
        raise d.error(f"too few ({len(args)}) arguments for a {rule} rule")
    raise d.error(f"many few arguments for a {rule} rule")  # sic: CoreDNS's wording


def _ttl_rule(d: Directive, mode: str, args: list[str]) -> Rule:
    if len(args) < 2:
        raise d.error(f"too few ({len(args)}) arguments for a ttl rule")
    kind, name, (value,) = _match_and_value(d, args, 1, "ttl")
    low, high = _ttl_range(d, value)
    return MatchRule(mode, name_match(d, kind, name, "ttl"), TtlResponse(low, high))


def _ttl_range(d: Directive, text: str) -> tuple[int, int]:
    """`SECONDS`, `MIN-MAX`, `MIN-` or `-MAX` (CoreDNS's isValidTTL)."""
    parts = text.split("-")
    try:
        if len(parts) == 1:
            low = high = _uint32(parts[0])
        elif len(parts) == 2 and parts != ["", ""]:
            low = _uint32(parts[0]) if parts[0] else 0
            high = _uint32(parts[1]) if parts[1] else _MAX_TTL
        else:
            raise ValueError(text)
    except ValueError:
        raise d.error(f"invalid TTL '{text}' for a ttl rule") from None
    if low > high:
        raise d.error(f"invalid TTL '{text}' for a ttl rule")
    return low, high


def _uint32(text: str) -> int:
    if not text.isdigit() or int(text) >= 2**32:
        raise ValueError(text)
    return int(text)


def _rcode_rule(d: Directive, mode: str, args: list[str]) -> Rule:
    if len(args) < 3:
        raise d.error(f"too few ({len(args)}) arguments for a rcode rule")
    kind, name, (old_text, new_text) = _match_and_value(d, args, 2, "rcode")
    old, new = _rcode(old_text), _rcode(new_text)
    if old is None:
        raise d.error(f"invalid matching RCODE '{old_text}' for a rcode rule")
    if new is None:
        raise d.error(f"invalid replacement RCODE '{new_text}' for a rcode rule")
    return MatchRule(mode, name_match(d, kind, name, "rcode"), RcodeResponse(old, new))


def _rcode(text: str) -> int | None:
    """A number 0..23 or a mnemonic (CoreDNS's isValidRCode)."""
    if text.isdigit() and int(text) <= 23:
        return int(text)
    return rcode_number(text.upper())


def _cname_rule(d: Directive, mode: str, args: list[str]) -> Rule:
    if len(args) == 2:
        kind, old, new = EXACT, args[0].lower(), args[1].lower()
    elif len(args) == 3:
        kind, old, new = args[0].lower(), args[1].lower(), args[2].lower()
        if kind not in MATCH_TYPES:
            raise d.error(f"unknown cname rewrite type: {kind}")
    else:
        raise d.error(f"too few ({len(args)}) arguments for a cname rule")
    if kind == EXACT:
        old, new = normalize(old), normalize(new)
    regex = compile_go_regexp(d, old, "cname rewrite regex pattern") if kind == REGEX else None
    return CnameRule(mode, CnameTarget(kind, old, new, regex))


# --- edns0 -------------------------------------------------------------------------------------------


def _edns0_rule(d: Directive, mode: str, args: list[str]) -> Rule:
    if len(args) < 2:
        raise d.error("too few arguments for an EDNS0 rule")
    kind, action = args[0].lower(), args[1].lower()
    if action not in edns0.ACTIONS:
        raise d.error(f'invalid action: "{action}"')
    if action == edns0.UNSET:
        return _edns0_unset(d, mode, kind, args)
    revert = args[-1] == "revert"
    if revert:
        args = args[:-1]
    if kind == "local":
        if len(args) != 4:
            raise d.error("EDNS0 local rules require three or four args")
        code, data = _option_code(d, args[2]), args[3]
        if data.startswith("{") and data.endswith("}"):
            return edns0.LocalRule(mode, action, code, _variable(d, data), revert)
        return edns0.LocalRule(mode, action, code, _option_data(d, data), revert)
    if kind == "nsid":
        if len(args) != 2:
            raise d.error("EDNS0 NSID rules can accept no more than one arg")
        return edns0.NsidRule(mode, action, revert)
    if kind == "subnet":
        if len(args) != 4:
            raise d.error("EDNS0 subnet rules require three or four args")
        v4, v6 = _go_uint(d, args[2], 2**16), _go_uint(d, args[3], 2**16)
        if v4 > 32:
            raise d.error(f"invalid IPv4 bit mask length {v4}")
        if v6 > 128:
            raise d.error(f"invalid IPv6 bit mask length {v6}")
        return edns0.SubnetRule(mode, action, v4, v6, revert)
    raise d.error(f'invalid rule type "{kind}"')


def _edns0_unset(d: Directive, mode: str, kind: str, args: list[str]) -> Rule:
    if kind == "local":
        if len(args) != 3:
            raise d.error("local unset action requires exactly two arguments")
        return edns0.LocalRule(mode, edns0.UNSET, _option_code(d, args[2]), b"", False)
    if kind in ("nsid", "subnet"):
        if len(args) != 2:
            raise d.error(f"{kind} unset action requires exactly one argument")
        if kind == "nsid":
            return edns0.NsidRule(mode, edns0.UNSET, False)
        return edns0.SubnetRule(mode, edns0.UNSET, 0, 0, False)
    raise d.error(f'invalid rule type "{kind}"')


def _option_code(d: Directive, text: str) -> int:
    return _go_uint(d, text, 2**16)


def _go_uint(d: Directive, text: str, limit: int) -> int:
    """Go's strconv.ParseUint(text, 0, …): decimal, 0x/0o/0b prefixes, a leading 0 for octal."""
    try:
        if not text or not (text.replace("_", "").isalnum() and text.isascii()):
            raise ValueError(text)
        digits = text.replace("_", "")
        if digits[:2].lower() in ("0x", "0o", "0b"):
            value = int(digits, 0)
        elif len(digits) > 1 and digits.startswith("0"):
            value = int(digits[1:], 8)
        else:
            value = int(digits, 10)
    except ValueError:
        raise d.error(f'strconv.ParseUint: parsing "{text}": invalid syntax') from None
    if not 0 <= value < limit:
        raise d.error(f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


def _option_data(d: Directive, text: str) -> bytes:
    if text.startswith("0x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            raise d.error(f"invalid hex data {text!r}") from None
    return text.encode()


def _variable(d: Directive, text: str) -> str:
    if text in edns0.VARIABLES:
        return text
    if text in ("{server_ip}", "{server_port}"):
        raise d.error(f"variable {text} is not supported by kdns (requests do not carry the local address)")
    raise d.error(f"unsupported variable name {text!r} (kdns has no metadata plugin for label variables)")
