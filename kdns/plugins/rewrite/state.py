"""The question as rewrite's rules change it, and the interfaces of rules and response rules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from dnslib import DNSRecord

from kdns.request import Request

STOP, CONTINUE = "stop", "continue"
# Runs a new query through the whole server (CoreDNS's upstream.Lookup): the cname rule's lookups.
Resolver = Callable[[str, int, str], Awaitable[DNSRecord]]


@dataclass
class Query:
    """What the rules read and change, in CoreDNS's terms: the question (`name` as written, absolute),
    the EDNS options (None: no OPT) and the client. Rules run one after the other on one Query."""

    name: str
    qtype: int
    qclass: int
    options: list[tuple[int, bytes]] | None
    client: tuple[str, int]
    proto: str
    options_changed: bool = field(default=False)

    @classmethod
    def of(cls, request: Request, options: list[tuple[int, bytes]] | None) -> Query:
        return cls(request.qname, request.qtype, request.qclass, options, request.client, request.proto)

    @property
    def lower(self) -> str:
        """The name lower-cased: what every match compares with (CoreDNS's state.Name())."""
        return self.name.lower()

    def opt(self) -> list[tuple[int, bytes]]:
        """The options to edit; an OPT is added when there was none (CoreDNS's setupEdns0Opt)."""
        if self.options is None:
            self.options = []
        self.options_changed = True
        return self.options


class ResponseRule:
    """A change to the reply, undoing or following a rule's change to the query. CoreDNS applies
    these to every record (authority, answer, additional), the rules in reverse order."""

    def record(self, rr: Any) -> None:
        """Change one record (not the OPT)."""

    def message(self, msg: DNSRecord) -> None:
        """Change the message itself (rcode, the OPT's options), once per reply."""

    async def resolve(self, msg: DNSRecord, qtype: int, proto: str, lookup: Resolver) -> None:
        """Change the message with the help of new lookups (the cname rule)."""


class Rule(Protocol):
    """One rewrite line (or block). `apply` changes `query` and returns the response rules that go
    with the change, or None when the rule does not apply (CoreDNS's RewriteIgnored)."""

    @property
    def mode(self) -> str:
        """`stop` or `continue`: whether the rules after this one still run once it applied."""

    def apply(self, query: Query) -> list[ResponseRule] | None: ...
