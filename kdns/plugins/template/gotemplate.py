"""A safe renderer for the part of Go's text/template that CoreDNS template plugin users write.

Supported: text with `{{ … }}` actions, trim markers (`{{- `, ` -}}`), comments (`{{/* … */}}`),
pipelines (`a | b`: the value goes in as the last argument), parentheses, field chains (`.Name`,
`.Group.a`, `.Question.Name`), method calls with arguments (`.Meta "x"`), string (`"…"`, `` `…` ``)
and integer literals, and the functions `index`, `len`, `slice`, `print`, `printf`, `println` and
CoreDNS's `parseInt` (strconv.ParseUint). Everything else Go accepts — `if`, `range`, `with`,
`define`, `template`, variables (`$x`), other functions, float, boolean, character and nil
literals — is refused when the Corefile is read (TemplateError), never guessed at. Nothing is
evaluated as Python: the template is parsed into a small tree, and the tree is walked over the
query's data, which exposes only the fields listed in `Fields`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Union

# Go's text/template prints a map lookup of a missing key this way (missingkey=default).
NO_VALUE = "<no value>"
KEYWORDS = ("if", "else", "end", "range", "with", "define", "template", "block", "break", "continue")


class TemplateError(Exception):
    """The template cannot be used: a syntax error, or syntax kdns does not support."""


class ExecError(Exception):
    """The template failed on this query's data (Go's execution errors: bad index, parseInt…)."""


# --- data the templates see -------------------------------------------------------------------------


class Struct:
    """A Go struct the template may read: `fields` are its exported fields (name → value or
    method). `go_type` names it in errors, as Go's messages do."""

    go_type = "struct"
    fields: Mapping[str, object]

    def __init__(self, **fields: object) -> None:
        self.fields = fields

    def text(self) -> str:
        raise ExecError(f"printing a {self.go_type} is not supported by kdns")


@dataclass(frozen=True)
class Method:
    """A method of a Struct, called with the arguments written after it (`.Meta "name"`)."""

    call: Callable[..., object]
    arity: int


# --- syntax tree ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """`.A.B`: a chain of field names read from `.` (empty chain: `.` itself)."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class Literal:
    value: str | int


@dataclass(frozen=True)
class Call:
    """A function call, or a field chain given arguments (a method call)."""

    func: str | Field
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Pipeline:
    commands: tuple[Node, ...]


Node = Union[Field, Literal, Call, Pipeline]  # noqa: UP007 - a recursive alias needs the old form


@dataclass(frozen=True)
class Template:
    """A parsed template: text pieces and actions, in order."""

    source: str
    parts: tuple[str | Pipeline, ...]

    def render(self, data: Struct) -> str:
        out = []
        for part in self.parts:
            out.append(part if isinstance(part, str) else _text(_evaluate(part, data, None)))
        return "".join(out)


# --- parsing ----------------------------------------------------------------------------------------

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>"(?:[^"\\\n]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<char>'(?:[^'\\]|\\.)*')
    | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+|\.)
    | (?P<number>[-+]?(?:0[xXoObB][0-9a-fA-F_]+|[0-9][0-9_]*)(?:\.[0-9]*)?(?:[eEpP][-+]?[0-9]+)?i?)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<var>\$[A-Za-z0-9_]*)
    | (?P<punct>:=|=|\||\(|\)|,)
    )""",
    re.X,
)
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"'}
_ESCAPE = re.compile(
    r"\\(?:([abfnrtv\\\"])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([0-7]{3}))"
)


def parse(source: str, functions: Sequence[str], fields: Mapping[str, object]) -> Template:
    """Parse `source`; `functions` are the names callable, `fields` the top-level fields of `.`
    (checked here: Go would fail on every query)."""
    parts: list[str | Pipeline] = []
    pos = 0
    trim_next = False
    for m in _ACTION.finditer(source):
        text = source[pos : m.start()]
        if trim_next:
            text = text.lstrip()
        if m.group(1):
            text = text.rstrip()
        if text:
            parts.append(text)
        body = m.group(2)
        trim_next = bool(m.group(3))
        pos = m.end()
        if body.strip().startswith("/*"):
            if not body.strip().endswith("*/"):
                raise TemplateError("unclosed comment")
            continue
        parts.append(_Parser(body, functions, fields).pipeline_all())
    rest = source[pos:]
    if "{{" in rest:
        raise TemplateError("unclosed action")
    if trim_next:
        rest = rest.lstrip()
    if rest:
        parts.append(rest)
    return Template(source, tuple(parts))


class _Parser:
    def __init__(self, body: str, functions: Sequence[str], fields: Mapping[str, object]) -> None:
        self.tokens = self._lex(body)
        self.i = 0
        self.functions = functions
        self.fields = fields

    @staticmethod
    def _lex(body: str) -> list[tuple[str, str]]:
        tokens, pos = [], 0
        while body[pos:].strip():
            m = _TOKEN.match(body, pos)
            if m is None or m.end() == pos:
                raise TemplateError(f"unexpected {body[pos:].strip()[:10]!r} in action")
            kind = m.lastgroup
            assert kind is not None
            tokens.append((kind, m.group(kind)))
            pos = m.end()
        return tokens

    def pipeline_all(self) -> Pipeline:
        if not self.tokens:
            raise TemplateError("missing value for command")
        p = self._pipeline()
        if self.i != len(self.tokens):
            raise TemplateError(f"unexpected {self.tokens[self.i][1]!r} in operand")
        return p

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _pipeline(self) -> Pipeline:
        commands = [self._command()]
        while (tok := self._peek()) is not None and tok[1] == "|":
            self.i += 1
            commands.append(self._command())
        for n, command in enumerate(commands):
            if isinstance(command, Call) and isinstance(command.func, str):
                _check_arity(command.func, len(command.args) + (n > 0))
        return Pipeline(tuple(commands))

    def _command(self) -> Node:
        operands: list[Node] = []
        while (tok := self._peek()) is not None and tok[1] not in ("|", ")"):
            operands.append(self._operand())
        if not operands:
            raise TemplateError("missing value for command")
        head, args = operands[0], tuple(operands[1:])
        if isinstance(head, Call) and not head.args and isinstance(head.func, str):
            return Call(head.func, args)  # a function name, then its arguments
        if args:
            if isinstance(head, Field) and head.names:
                return Call(head, args)  # a method given arguments
            raise TemplateError("can't give argument to non-function")
        return head

    def _operand(self) -> Node:
        kind, text = self.tokens[self.i]
        self.i += 1
        if kind == "field":
            names = tuple(text.split(".")[1:]) if text != "." else ()
            if names and names[0] not in self.fields:
                raise TemplateError(f"can't evaluate field {names[0]} in type *template.templateData")
            return Field(names)
        if kind in ("string", "raw"):
            return Literal(_unquote(text))
        if kind == "number":
            return Literal(_integer(text))
        if kind == "punct" and text == "(":
            inner = self._pipeline()
            if self._peek() != ("punct", ")"):
                raise TemplateError("unclosed left paren")
            self.i += 1
            return inner
        if kind == "ident":
            if text in KEYWORDS:
                raise TemplateError(f"{{{{{text}}}}} is not supported by kdns (no control structures)")
            if text in ("true", "false", "nil"):
                raise TemplateError(f"the literal {text} is not supported by kdns")
            if text not in self.functions:
                raise TemplateError(f'function "{text}" not defined')
            return Call(text, ())  # as an argument (not first): called with no arguments, as Go does
        if kind == "var":
            raise TemplateError(f"variables ({text}) are not supported by kdns")
        if kind == "char":
            raise TemplateError(f"character constants ({text}) are not supported by kdns")
        raise TemplateError(f"unexpected {text!r} in operand")


def _check_arity(name: str, count: int) -> None:
    """Functions have fixed argument counts (Go checks them when the call runs; they never change)."""
    low, high = ARITY[name]
    if count < low or (high is not None and count > high):
        want = str(low) if low == high else f"at least {low}"
        raise TemplateError(f"wrong number of args for {name}: want {want} got {count}")


def _unquote(text: str) -> str:
    if text.startswith("`"):
        return text[1:-1]

    def one(m: re.Match[str]) -> str:
        simple, x, u, big_u, octal = m.groups()
        if simple:
            return _ESCAPES[simple]
        if octal:
            return chr(int(octal, 8))
        return chr(int(x or u or big_u, 16))

    body = text[1:-1]
    if re.search(r"\\(?![abfnrtv\\\"]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3})", body):
        raise TemplateError(f"invalid syntax in string {text}")
    return _ESCAPE.sub(one, body)


def _integer(text: str) -> int:
    body = text.lstrip("+-")
    if "." in body or body.endswith("i") or (not body.lower().startswith("0x") and re.search("[eEpP]", body)):
        raise TemplateError(f"the number {text} is not supported by kdns (integers only)")
    try:
        value = int(body.replace("_", ""), 0) if body[:2].lower() in ("0x", "0o", "0b") else int(body, 10)
    except ValueError:
        if re.fullmatch(r"0[0-7_]+", body):  # Go: a leading 0 is octal
            value = int(body.replace("_", ""), 8)
        else:
            raise TemplateError(f"bad number syntax: {text!r}") from None
    return -value if text.startswith("-") else value


# --- evaluation -------------------------------------------------------------------------------------


def _evaluate(node: Node, dot: Struct, piped: object | None, has_piped: bool = False) -> object:
    if isinstance(node, Pipeline):
        value: object = None
        for n, command in enumerate(node.commands):
            value = _evaluate(command, dot, value, has_piped=n > 0)
        return value
    if isinstance(node, Call):
        args = [_evaluate(a, dot, None) for a in node.args]
        if has_piped:
            args.append(piped)
        if isinstance(node.func, Field):
            target = _field(node.func, dot, call=True)
            if not isinstance(target, Method):
                raise ExecError(f"{'.'.join(node.func.names)} is not a method but has arguments")
            if len(args) != target.arity:
                raise ExecError(f"wrong number of args: want {target.arity} got {len(args)}")
            return target.call(*args)
        return FUNCTIONS[node.func](*args)
    if has_piped:
        raise ExecError("can't give argument to non-function")
    if isinstance(node, Literal):
        return node.value
    value = _field(node, dot, call=False)
    if isinstance(value, Method):
        if value.arity:
            raise ExecError(f"wrong number of args: want {value.arity} got 0")
        return value.call()
    return value


def _field(node: Field, dot: Struct, call: bool) -> object:
    value: object = dot
    for name in node.names:
        if isinstance(value, Struct):
            if name not in value.fields:
                raise ExecError(f"can't evaluate field {name} in type {value.go_type}")
            value = value.fields[name]
        elif isinstance(value, Mapping):
            value = value.get(name, NO_VALUE)
        elif value == NO_VALUE:
            return NO_VALUE
        else:
            raise ExecError(f"can't evaluate field {name} in type {_go_type(value)}")
    return value


def _go_type(value: object) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, list):
        return "[]string"
    if isinstance(value, Mapping):
        return "map[string]string"
    return value.go_type if isinstance(value, Struct) else type(value).__name__


def _text(value: object) -> str:
    """fmt.Sprint of one value, as text/template prints it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + " ".join(_text(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{_text(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, Struct):
        return value.text()
    if value is None:
        return NO_VALUE
    raise ExecError(f"cannot print a {type(value).__name__}")


# --- functions --------------------------------------------------------------------------------------


def _index(item: object, *keys: object) -> object:
    for key in keys:
        if isinstance(item, list):
            if not isinstance(key, int) or isinstance(key, bool):
                raise ExecError(f"error calling index: cannot index slice/array with type {_go_type(key)}")
            if not 0 <= key < len(item):
                raise ExecError(f"error calling index: index out of range: {key}")
            item = item[key]
        elif isinstance(item, Mapping):
            if not isinstance(key, str):
                raise ExecError(f"error calling index: value has type {_go_type(key)}; should be string")
            item = item.get(key, "")  # index gives the zero value for a missing key
        else:
            raise ExecError(f"error calling index: can't index item of type {_go_type(item)}")
    return item


def _len(item: object) -> int:
    if isinstance(item, str | list | Mapping):
        return len(item)
    raise ExecError(f"error calling len: len of type {_go_type(item)}")


def _slice(item: object, *indexes: object) -> object:
    if not isinstance(item, str | list):
        raise ExecError(f"error calling slice: can't slice item of type {_go_type(item)}")
    if len(indexes) > 2 or not all(isinstance(i, int) and not isinstance(i, bool) for i in indexes):
        raise ExecError("error calling slice: bad indexes")
    bounds = [int(i) for i in indexes if isinstance(i, int)]  # checked just above
    low, high = ([*bounds, len(item)] if bounds else [0, len(item)])[:2]
    if not 0 <= low <= high <= len(item):
        raise ExecError(f"error calling slice: index out of range: {high}")
    return item[low:high]


def _parse_int(s: object, base: object, bits: object) -> int:
    """strconv.ParseUint(s, base, bitSize): base 0 reads a 0x/0o/0b/0 prefix; bitSize 0 is 64."""
    if not isinstance(s, str) or not isinstance(base, int) or not isinstance(bits, int):
        raise ExecError("error calling parseInt: wrong type for value; expected string, int, int")
    fail = f'error calling parseInt: strconv.ParseUint: parsing "{s}"'
    if bits == 0:
        bits = 64
    if not (base == 0 or 2 <= base <= 36) or not 0 < bits <= 64:
        raise ExecError(f"{fail}: invalid base {base} or bit size {bits}")
    text = s
    if base == 0:
        base = 10
        lower = s.lower()
        if lower.startswith(("0x", "0o", "0b")):
            base, text = {"x": 16, "o": 8, "b": 2}[lower[1]], s[2:]
        elif s.startswith("0") and len(s) > 1:
            base, text = 8, s[1:]
        text = text.replace("_", "")
    if not text or not all(c.isascii() and c.isalnum() for c in text):
        raise ExecError(f"{fail}: invalid syntax")
    try:
        value = int(text, base)
    except ValueError:
        raise ExecError(f"{fail}: invalid syntax") from None
    if value >= 1 << bits:
        raise ExecError(f"{fail}: value out of range")
    return value


def _sprint(*args: object) -> str:
    """fmt.Sprint: spaces between operands when neither side is a string."""
    out = ""
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out += " "
        out += _text(arg)
    return out


_VERB = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d+))?([svdxXoqc%])|%")


def _sprintf(fmt: object, *args: object) -> str:
    """fmt.Sprintf for the verbs %s %v %d %x %X %o %q %c %% with width, precision, `-` and `0`."""
    if not isinstance(fmt, str):
        raise ExecError("error calling printf: the format is not a string")
    queue = list(args)

    def one(m: re.Match[str]) -> str:
        flags, width, precision, verb = m.groups()
        if verb is None:
            raise ExecError(f"printf: unsupported verb in {m.string!r} (kdns: s v d x X o q c)")
        if verb == "%":
            return "%"
        if not queue:
            return f"%!{verb}(MISSING)"
        arg = queue.pop(0)
        text = _format(verb, arg, precision)
        if width and len(text) < int(width):
            pad = int(width) - len(text)
            if "-" in flags:
                return text + " " * pad
            if "0" in flags and verb in "dxXo" and isinstance(arg, int):
                sign = "-" if text.startswith("-") else ""
                return sign + "0" * pad + text[len(sign) :]
            return " " * pad + text
        return text

    out = _VERB.sub(one, fmt)
    if queue:
        out += "%!(EXTRA " + ", ".join(f"{_go_type(a)}={_text(a)}" for a in queue) + ")"
    return out


def _format(verb: str, arg: object, precision: str | None) -> str:
    if verb in "sv" or (verb == "q" and isinstance(arg, str)):
        text = _text(arg)
        if precision is not None and isinstance(arg, str):
            text = text[: int(precision)]
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"' if verb == "q" else text
    if isinstance(arg, int) and not isinstance(arg, bool):
        if verb == "c":
            return chr(arg)
        return {"d": str(arg), "x": f"{arg:x}", "X": f"{arg:X}", "o": f"{arg:o}", "q": repr(chr(arg))}[verb]
    if isinstance(arg, str) and verb in "xX":
        return arg.encode().hex() if verb == "x" else arg.encode().hex().upper()
    return f"%!{verb}({_go_type(arg)}={_text(arg)})"


FUNCTIONS: dict[str, Callable[..., object]] = {
    "index": _index,
    "len": _len,
    "slice": _slice,
    "print": _sprint,
    "printf": _sprintf,
    "println": lambda *args: " ".join(_text(a) for a in args) + "\n",
    "parseInt": _parse_int,
}
# (fewest, most) arguments of each function; None: any number.
ARITY: dict[str, tuple[int, int | None]] = {
    "index": (1, None), "len": (1, 1), "slice": (1, 3), "print": (0, None), "printf": (1, None),
    "println": (0, None), "parseInt": (3, 3),
}  # fmt: skip
