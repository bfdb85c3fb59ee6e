"""Tokenizer for the Corefile (Caddyfile v1 syntax, as CoreDNS reads it).

Rules: tokens are split on whitespace; `#` starts a comment at the start of a token; `"…"` and
`` `…` `` quote (a quoted token may span lines; `\\"` escapes inside double quotes); `{` and `}`
are structure only when they stand alone, as in Caddy. `{$VAR}` / `{$VAR:default}` and
`{%VAR%}` are replaced from the environment in the whole text first, as CoreDNS does, so one
variable may expand to several tokens.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from kdns.corefile.errors import CorefileError

_ENV_RE = re.compile(r"\{\$([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}|\{%([A-Za-z_][A-Za-z0-9_]*)%\}")


@dataclass(frozen=True, slots=True)
class Token:
    text: str
    file: str
    line: int
    quoted: bool = False
    paste: int = 0  # which `import` pasted this token (0: none); lines compare only within a paste

    def same_line(self, other: Token) -> bool:
        return self.line == other.line and self.paste == other.paste and self.file == other.file


def substitute_env(text: str, env: Mapping[str, str]) -> str:
    """Replace `{$VAR}`, `{$VAR:default}` and `{%VAR%}`; unset variables become empty (as CoreDNS)."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        default = m.group(2) or ""
        return env.get(name, default)

    return _ENV_RE.sub(repl, text)


def tokenize(text: str, file: str = "Corefile", env: Mapping[str, str] | None = None) -> Iterator[Token]:
    """Yield tokens with the line they start on."""
    text = substitute_env(text, os.environ if env is None else env)
    nul = text.find("\0")
    if nul >= 0:  # a Corefile is text; a NUL would reach paths (open() raises ValueError on it)
        raise CorefileError("NUL character in the Corefile", file, text.count("\n", 0, nul) + 1)
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c in " \t\r":
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in '"`':
            start_line = line
            quote = c
            i += 1
            buf: list[str] = []
            while True:
                if i >= n:
                    raise CorefileError("unterminated quoted string", file, start_line)
                ch = text[i]
                if quote == '"' and ch == "\\" and i + 1 < n and text[i + 1] in '"\\':
                    buf.append(text[i + 1])
                    i += 2
                    continue
                if ch == quote:
                    i += 1
                    break
                if ch == "\n":
                    line += 1
                buf.append(ch)
                i += 1
            yield Token("".join(buf), file, start_line, quoted=True)
        else:
            start = i
            while i < n and text[i] not in " \t\r\n":
                i += 1
            yield Token(text[start:i], file, line)
