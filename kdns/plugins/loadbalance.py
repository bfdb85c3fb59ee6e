"""`loadbalance [round_robin]` — spread clients over a name's addresses by shuffling them per reply.

As CoreDNS's round_robin policy: only NOERROR replies that are not zone transfers are touched; in
each of ANSWER, AUTHORITY and ADDITIONAL, CNAMEs go first (glibc's stub resolver wants the chain
before the addresses), then every other type in its original order, then the A/AAAA records
shuffled, then the MX records shuffled. A reply prepared in wire form (the kubernetes plugin's)
already has that order; its runs of A/AAAA and MX records are shuffled as bytes.
"""

from __future__ import annotations

import random
from typing import Any

from dnslib import QTYPE, RCODE, DNSRecord

from kdns.corefile.model import Directive
from kdns.plugin import Handler, NowHandler, Plugin, SetupContext
from kdns.plugins._args import expect_args
from kdns.protocol.wire import shuffled, skip_name
from kdns.request import Reply, Request

_ADDRESS = (QTYPE.A, QTYPE.AAAA)
_TRANSFERS = (QTYPE.AXFR, QTYPE.IXFR)


def round_robin(records: list[Any], rng: random.Random) -> list[Any]:
    """CNAMEs, then the rest, then shuffled addresses, then shuffled MX (CoreDNS roundRobin)."""
    cname, rest, address, mx = [], [], [], []
    for rr in records:
        if rr.rtype == QTYPE.CNAME:
            cname.append(rr)
        elif rr.rtype in _ADDRESS:
            address.append(rr)
        elif rr.rtype == QTYPE.MX:
            mx.append(rr)
        else:
            rest.append(rr)
    rng.shuffle(address)
    rng.shuffle(mx)
    return cname + rest + address + mx


def shuffle_reply(message: DNSRecord, rng: random.Random) -> bool:
    """Reorder a reply's sections in place when CoreDNS would (NOERROR, not AXFR/IXFR): True then."""
    if message.header.rcode != RCODE.NOERROR or (message.questions and message.q.qtype in _TRANSFERS):
        return False
    message.rr = round_robin(message.rr, rng)
    message.auth = round_robin(message.auth, rng)
    message.ar = round_robin(message.ar, rng)
    return True


def _is_transfer(wire: bytes) -> bool:
    """Is this the reply to an AXFR or IXFR (the question's QTYPE)?"""
    return int.from_bytes(wire[skip_name(wire, 12) : skip_name(wire, 12) + 2], "big") in _TRANSFERS


class LoadBalance(Plugin):
    name = "loadbalance"

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()

    async def serve(self, request: Request, next_: Handler) -> Reply:
        return self._shuffle(await next_(request))

    def serve_now(self, request: Request, next_now: NowHandler) -> Reply | None:
        reply = next_now(request)
        return None if reply is None else self._shuffle(reply)

    def _shuffle(self, reply: Reply) -> Reply:
        """This reply shuffled, and marked so that the server's replays of it shuffle too (the
        shuffle is a property of the reply's template, kdns.server.fastpath)."""
        if reply.wire is not None:  # a prepared reply: its runs are moved as bytes, nothing re-packed
            if not reply.rcode and not _is_transfer(reply.wire):
                reply.wire = shuffled(reply.wire, self.rng)
                reply.shuffle = True
        elif shuffle_reply(reply.message, self.rng):
            reply.shuffle = True
        return reply

    def transparent_for(self, qname: str) -> bool:
        # What it does to a reply, the server's replay of that reply does too (Reply.shuffle).
        return True


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    args = expect_args(d, 0, 1)
    if args and args[0] != "round_robin":
        raise d.error(f"unknown policy: {args[0]} (kdns supports round_robin; weighted is not supported)")
    if d.children:
        raise d.error(f"unknown property '{d.children[0].name}' (prefer and limit_answers are not supported)")
    return LoadBalance()
