"""Corefile parser: tokens → server blocks → directives (with nested blocks), plus snippets/import.

Follows Caddyfile v1 as CoreDNS uses it: a server block is `KEY[,] [KEY…] { directive… }` (the braces
may be left out when the file holds a single block); a directive's arguments are the tokens on its
line; `{` at the end of that line opens its block. `(name) { … }` defines a snippet at top level;
`import NAME|GLOB` pastes a snippet or other files' tokens in place.
"""

from __future__ import annotations

import dataclasses
import glob
import ipaddress
import itertools
import os
from collections.abc import Mapping
from pathlib import Path

from kdns.corefile.errors import CorefileError
from kdns.corefile.lexer import Token, tokenize
from kdns.corefile.model import Corefile, Directive, ServerAddress, ServerBlock
from kdns.protocol import names

_SUPPORTED_SCHEMES = ("dns",)
_MAX_IMPORT_DEPTH = 10
_paste_ids = itertools.count(1)


def parse_file(path: str, env: Mapping[str, str] | None = None) -> Corefile:
    """Read and parse a Corefile from disk; a missing file is a CorefileError, not an OSError."""
    try:
        source = Path(path).read_text()
    except OSError as e:
        raise CorefileError(f"cannot read Corefile: {e.strerror}", path) from e
    except UnicodeDecodeError as e:
        raise CorefileError(f"cannot read Corefile: not UTF-8 text (octet {e.start})", path) from e
    return parse_corefile(source, path, env)


def parse_corefile(source: str, file: str = "Corefile", env: Mapping[str, str] | None = None) -> Corefile:
    tokens = list(tokenize(source, file, env))
    snippets: dict[str, list[Token]] = {}
    tokens = _extract_snippets(tokens, snippets)
    tokens = _expand_imports(tokens, snippets, os.path.dirname(file) or ".", env, 0)
    blocks = _Parser(tokens, file).server_blocks()
    _check_duplicate_keys(blocks)
    return Corefile(tuple(blocks), source, file, Corefile.digest(source))


def _is_open(t: Token) -> bool:
    return t.text == "{" and not t.quoted


def _is_close(t: Token) -> bool:
    return t.text == "}" and not t.quoted


def _matching_close(tokens: list[Token], open_index: int) -> int:
    depth = 0
    for i in range(open_index, len(tokens)):
        if _is_open(tokens[i]):
            depth += 1
        elif _is_close(tokens[i]):
            depth -= 1
            if depth == 0:
                return i
    t = tokens[open_index]
    raise CorefileError("unexpected end of file: missing '}'", t.file, t.line)


def _extract_snippets(tokens: list[Token], snippets: dict[str, list[Token]]) -> list[Token]:
    """Remove top-level `(name) { … }` definitions, remembering their bodies."""
    out: list[Token] = []
    i = 0
    depth = 0
    while i < len(tokens):
        t = tokens[i]
        if (
            depth == 0
            and not t.quoted
            and t.text.startswith("(")
            and t.text.endswith(")")
            and i + 1 < len(tokens)
            and _is_open(tokens[i + 1])
        ):
            end = _matching_close(tokens, i + 1)
            name = t.text[1:-1]
            if name in snippets:
                raise CorefileError(f"redeclaration of snippet '{name}'", t.file, t.line)
            snippets[name] = tokens[i + 2 : end]
            i = end + 1
            continue
        if _is_open(t):
            depth += 1
        elif _is_close(t):
            depth -= 1
        out.append(t)
        i += 1
    return out


def _expand_imports(
    tokens: list[Token],
    snippets: Mapping[str, list[Token]],
    base_dir: str,
    env: Mapping[str, str] | None,
    depth: int,
) -> list[Token]:
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        t = tokens[i]
        prev = tokens[i - 1] if i else None
        starts_line = prev is None or not prev.same_line(t) or _is_open(prev) or _is_close(prev)
        if t.text == "import" and not t.quoted and starts_line:
            if depth >= _MAX_IMPORT_DEPTH:
                raise CorefileError("import nested too deeply (a cycle?)", t.file, t.line, "import")
            args = list(itertools.takewhile(t.same_line, tokens[i + 1 :]))
            if len(args) != 1:
                raise CorefileError("import takes exactly one argument", t.file, t.line, "import")
            target = args[0].text
            pasted = snippets[target] if target in snippets else _import_files(target, base_dir, env, t)
            paste = next(_paste_ids)
            pasted = [dataclasses.replace(x, paste=paste) for x in pasted]
            out.extend(_expand_imports(pasted, snippets, base_dir, env, depth + 1))
            i += 1 + len(args)
            continue
        out.append(t)
        i += 1
    return out


def _import_files(pattern: str, base_dir: str, env: Mapping[str, str] | None, at: Token) -> list[Token]:
    full = pattern if os.path.isabs(pattern) else os.path.join(base_dir, pattern)
    matches = sorted(glob.glob(full))
    if not matches and not glob.has_magic(full):
        raise CorefileError(f"import: no snippet or file named '{pattern}'", at.file, at.line, "import")
    tokens: list[Token] = []
    for path in matches:
        try:
            tokens.extend(tokenize(Path(path).read_text(), path, env))
        except OSError as e:
            raise CorefileError(
                f"import: cannot read {path}: {e.strerror}", at.file, at.line, "import"
            ) from e
        except UnicodeDecodeError as e:  # a glob that matched a binary file
            raise CorefileError(f"import: {path} is not UTF-8 text", at.file, at.line, "import") from e
    return tokens


class _Parser:
    def __init__(self, tokens: list[Token], file: str) -> None:
        self.tokens = tokens
        self.file = file
        self.i = 0

    def server_blocks(self) -> list[ServerBlock]:
        blocks: list[ServerBlock] = []
        while self.i < len(self.tokens):
            blocks.append(self._server_block(single=not blocks))
        return blocks

    def _server_block(self, single: bool) -> ServerBlock:
        first = self.tokens[self.i]
        keys: list[Token] = []
        continued = False  # the previous key token ended with a comma: keys go on on the next line
        while self.i < len(self.tokens) and not _is_open(self.tokens[self.i]):
            t = self.tokens[self.i]
            if _is_close(t):
                raise CorefileError("unexpected '}'", t.file, t.line)
            if keys and not t.same_line(keys[-1]) and not continued:
                break  # a new line without a comma ends the keys: brace-less single block
            keys.extend(dataclasses.replace(t, text=k) for k in t.text.split(",") if k)
            continued = t.text.endswith(",")
            self.i += 1
        addresses = tuple(_parse_address(k) for k in keys)
        if self.i < len(self.tokens) and _is_open(self.tokens[self.i]):
            end = _matching_close(self.tokens, self.i)
            body = self.tokens[self.i + 1 : end]
            self.i = end + 1
        else:
            if not single:
                raise CorefileError("expected '{' after server block keys", first.file, first.line)
            body = self.tokens[self.i :]
            self.i = len(self.tokens)
        return ServerBlock(addresses, tuple(_directives(body)), first.file, first.line)


def _directives(tokens: list[Token]) -> list[Directive]:
    """Split a block body into directives: name + same-line args + optional `{…}` children."""
    out: list[Directive] = []
    i = 0
    while i < len(tokens):
        head = tokens[i]
        if _is_open(head) or _is_close(head):
            raise CorefileError(f"unexpected '{head.text}'", head.file, head.line)
        j = i + 1
        args: list[str] = []
        while j < len(tokens) and tokens[j].same_line(head) and not _is_open(tokens[j]):
            if _is_close(tokens[j]):
                raise CorefileError("unexpected '}'", tokens[j].file, tokens[j].line, head.text)
            args.append(tokens[j].text)
            j += 1
        children: tuple[Directive, ...] = ()
        has_block = False
        if j < len(tokens) and _is_open(tokens[j]):
            end = _matching_close(tokens, j)
            children = tuple(_directives(tokens[j + 1 : end]))
            has_block = True
            j = end + 1
        out.append(Directive(head.text.lower(), tuple(args), children, head.file, head.line, has_block))
        i = j
    return out


def _parse_address(key: Token) -> ServerAddress:
    text = key.text
    scheme = "dns"
    if "://" in text:
        scheme, _, text = text.partition("://")
        scheme = scheme.lower()
        if scheme not in _SUPPORTED_SCHEMES:
            raise CorefileError(f"unsupported scheme '{scheme}://' in '{key.text}'", key.file, key.line)
    zone, port = _split_port(text, key)
    return ServerAddress(_normalize_zone(zone, key), port, scheme)


def _split_port(text: str, key: Token) -> tuple[str, int | None]:
    if "/" in text:  # CIDR zones such as 10.0.0.0/24:53 (v6 CIDRs hold colons; take the last one)
        addr, _, rest = text.partition("/")
        prefix, _, port_text = rest.partition(":")
        return f"{addr}/{prefix}", _port(port_text, key) if port_text else None
    if text.count(":") == 1:
        zone, _, port_text = text.partition(":")
        return zone or ".", _port(port_text, key)
    return text or ".", None


def _port(text: str, key: Token) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise CorefileError(f"invalid port '{text}' in '{key.text}'", key.file, key.line)
    return int(text)


def _normalize_zone(zone: str, key: Token) -> str:
    if "/" in zone:
        return reverse_zone_for_cidr(zone, key)
    try:  # escaped text as kdns writes every name, so a key with odd octets is one name, or an error
        return names.canonical(zone)
    except names.BadName as e:
        raise CorefileError(f"invalid zone '{zone}' in '{key.text}': {e}", key.file, key.line) from None


def reverse_zone_for_cidr(cidr: str, key: Token) -> str:
    """`10.0.0.0/8` → `10.in-addr.arpa.`; only octet (v4) or nibble (v6) boundaries are accepted."""
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError as e:
        raise CorefileError(f"invalid CIDR zone '{cidr}'", key.file, key.line) from e
    step = 8 if net.version == 4 else 4
    if net.prefixlen % step:
        raise CorefileError(
            f"CIDR zone '{cidr}' must end on an {'octet' if step == 8 else 'nibble'} boundary",
            key.file,
            key.line,
        )
    labels = net.network_address.reverse_pointer.split(".")
    keep = net.prefixlen // step
    suffix = labels[-2:]  # in-addr.arpa / ip6.arpa
    host_labels = labels[:-2]
    return ".".join(host_labels[len(host_labels) - keep :] + suffix) + "."


def _check_duplicate_keys(blocks: list[ServerBlock]) -> None:
    seen: set[tuple[str, int | None]] = set()
    for b in blocks:
        for a in b.addresses:
            k = (a.zone, a.port)
            if k in seen:
                raise CorefileError(f"duplicate server block key '{a}'", b.file, b.line)
            seen.add(k)
