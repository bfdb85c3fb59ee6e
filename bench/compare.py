"""Do two servers give the same answers? Asked the way dnsperf asks (UDP, no EDNS), compared on
what a client acts on: rcode, the AA bit and the answer section (owner, TTL, type, rdata, order
ignored). Authority is left out on purpose: the SOA serial differs by design (kdns uses the index's
serial, the zone a constant).

A truncated reply is not the answer a client ends up with: when either server sets TC, both are
asked again over TCP, as the client would, and those answers are compared. How they truncate is a
known difference in policy, counted apart: when only the additional section (SRV glue) overflows
512 bytes, kdns sets TC as CoreDNS does (miekg/dns `Truncate` sets it whenever records are left
out) while knotd leaves it clear (RFC 2181 §9: not for extra information).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import dns.flags
import dns.message
import dns.rcode

from bench.servers import ask

Question = tuple[str, str]  # (name, qtype) as in a dnsperf line


@dataclass(frozen=True)
class Mismatch:
    question: Question
    left: str
    right: str


@dataclass
class Agreement:
    asked: int
    mismatches: list[Mismatch]
    tc_differs: list[Question]  # same data, only the TC bit differs (see the module docstring)


def answer_key(reply: dns.message.Message) -> str:
    aa = "AA" if reply.flags & dns.flags.AA else "-"
    rrs = sorted(rr.lower() for rrset in reply.answer for rr in rrset.to_text().splitlines())
    return " | ".join([dns.rcode.to_text(reply.rcode()), aa, *rrs])


def read_questions(path: str) -> list[Question]:
    out = []
    with open(path) as f:
        for line in f:
            name, _, qtype = line.strip().partition(" ")
            if name:
                out.append((name, qtype))
    return out


def sample(questions: Sequence[Question], count: int, seed: int = 7) -> list[Question]:
    """`count` distinct questions, drawn reproducibly."""
    distinct = list(dict.fromkeys(questions))
    return random.Random(seed).sample(distinct, min(count, len(distinct)))


def compare(left_port: int, right_port: int, questions: Sequence[Question]) -> Agreement:
    result = Agreement(len(questions), [], [])
    for q in questions:
        left, right = (ask(port, *q) for port in (left_port, right_port))
        if (left.flags | right.flags) & dns.flags.TC:
            if (left.flags ^ right.flags) & dns.flags.TC:
                result.tc_differs.append(q)
            left, right = (ask(port, *q, tcp=True) for port in (left_port, right_port))
        lkey, rkey = answer_key(left), answer_key(right)
        if lkey != rkey:
            result.mismatches.append(Mismatch(q, lkey, rkey))
    return result
