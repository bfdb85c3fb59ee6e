"""The typed result of parsing a Corefile. Plugins read their own directives from it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from kdns.corefile.errors import CorefileError


@dataclass(frozen=True, slots=True)
class Directive:
    """One line of a server block (`name args…`), with the lines of its `{}` block as children."""

    name: str
    args: tuple[str, ...]
    children: tuple[Directive, ...] = ()
    file: str = "Corefile"
    line: int = 0
    has_block: bool = False

    def error(self, message: str) -> CorefileError:
        """An error pointing at this directive, for plugins' setup code to raise."""
        return CorefileError(message, self.file, self.line, self.name)


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """One key of a server block: `[dns://]zone[:port]`, zone normalised to lower-case FQDN."""

    zone: str
    port: int | None
    scheme: str = "dns"

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"{self.scheme}://{self.zone}{port}"


@dataclass(frozen=True, slots=True)
class ServerBlock:
    addresses: tuple[ServerAddress, ...]
    directives: tuple[Directive, ...]
    file: str = "Corefile"
    line: int = 0

    @property
    def zones(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(a.zone for a in self.addresses))

    def find(self, name: str) -> list[Directive]:
        return [d for d in self.directives if d.name == name]


@dataclass(frozen=True, slots=True)
class Corefile:
    blocks: tuple[ServerBlock, ...]
    source: str = ""
    file: str = "Corefile"
    sha512: str = field(default="")

    @staticmethod
    def digest(source: str) -> str:
        """The SHA-512 the reload plugin compares and reports (as CoreDNS does)."""
        return hashlib.sha512(source.encode()).hexdigest()
