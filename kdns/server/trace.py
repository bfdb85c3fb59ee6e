"""Questions the server asks itself: through a dispatcher, exactly as a client's query would go.

`ask` is CoreDNS's re-entry (an ExternalName or template CNAME chased through the whole server).
`trace` is for `kdns explain`, which must show the real answer, not a recomputed one: it sends the
question as an EDNS client over TCP would (so nothing is truncated and Extended DNS Errors come
back), and learns which server block and plugin wrote the reply through the dispatcher's observer
interface. Its query carries a client port no other query has at that moment, which is how the
observer tells it from the rest of the traffic; registering as a fast-path observer too keeps the
fast path on for everyone else meanwhile.
"""

from __future__ import annotations

import itertools
import secrets
import struct

from dnslib import DNSQuestion, DNSRecord

from kdns.observe import FastStats, Outcome, Served
from kdns.plugin import Traced
from kdns.protocol import names
from kdns.protocol.edns import OUR_UDP_SIZE
from kdns.protocol.wire import HEADER, RR_FIXED
from kdns.server.dispatch import Dispatcher

_RD = 0x0100
_TYPE_OPT, _CLASS_IN = 41, 1
# Client ports for traced queries, cycling through 1..65535 (port 0 is `ask`'s).
_client_ports = itertools.cycle(range(1, 0x10000))


async def ask(dispatcher: Dispatcher, qname: str, qtype: int, proto: str = "udp") -> DNSRecord:
    """The reply to a plain query (no EDNS) for `qname`, as the server writes it."""
    query = DNSRecord(q=DNSQuestion(qname, qtype))  # DNSRecord.question() wants a type name, not a number
    wire = await dispatcher.handle(bytes(query.pack()), proto, ("127.0.0.1", 0))
    return DNSRecord.parse(wire) if wire else query.reply()


def query_wire(labels: tuple[bytes, ...], qtype: int, qid: int) -> bytes:
    """A recursive IN query for `labels` with an OPT (RFC 6891 §6.1.2: root owner, our UDP size)."""
    header = HEADER.pack(qid, _RD, 1, 0, 0, 1)
    question = names.to_wire(labels) + struct.pack("!HH", qtype, _CLASS_IN)
    return header + question + b"\x00" + RR_FIXED.pack(_TYPE_OPT, OUR_UDP_SIZE, 0, 0)


async def trace(dispatcher: Dispatcher, qname: str, qtype: int) -> Traced:
    """Ask `qname` (escaped text) and say who answered. Raises names.BadName for a bad name."""
    labels = names.from_text(qname)
    client = ("127.0.0.1", next(_client_ports))
    seen: list[Outcome] = []

    def observe(outcome: Outcome, proto: str, peer: tuple[str, int]) -> None:
        if peer == client:
            seen.append(outcome)

    def ignore(info: Served, stats: FastStats) -> None:
        """Traced queries never take the fast path; registering keeps it on for the others."""

    dispatcher.observers.append(observe)
    dispatcher.fast_observers.append(ignore)
    try:
        wire = await dispatcher.handle(query_wire(labels, qtype, secrets.randbelow(0x10000)), "tcp", client)
    finally:
        dispatcher.observers.remove(observe)
        dispatcher.fast_observers.remove(ignore)
    outcome = seen[0] if seen else None
    if outcome is not None:
        chain = outcome.chain  # None: the server answered by itself (REFUSED…)
        plugin = outcome.reply.plugin
    else:  # dropped by a plugin (acl): observers hear nothing, but the name went to its block
        routed = dispatcher.routes.match(names.to_text(labels).lower())
        chain, plugin = (routed[1] if routed is not None else None), ""
    return Traced(
        wire=wire,
        plugin=plugin,
        block=chain.plugins if chain is not None else (),
        zones=chain.zones if chain is not None else (),
        listener=dispatcher.label,
    )
