"""`whoami` — answers any name with the client's address (A or AAAA) and port (SRV in additional).

CoreDNS's built-in configuration when no Corefile is found; handy for checking a listener works.
"""

from __future__ import annotations

from dnslib import AAAA, QTYPE, RR, SRV, A, DNSLabel

from kdns.corefile.model import Directive
from kdns.plugin import Handler, Plugin, SetupContext
from kdns.plugins._args import expect_args
from kdns.protocol import names
from kdns.request import Reply, Request


class WhoAmI(Plugin):
    name = "whoami"

    async def serve(self, request: Request, next_: Handler) -> Reply:
        msg = request.reply(aa=True)
        host, port = request.client
        # Names from the question's labels, never from its text: a label holding a dot (or the root
        # name, whose text is ".") must come back as asked.
        qname = request.owner
        if ":" in host:
            msg.add_ar(RR(qname, QTYPE.AAAA, ttl=0, rdata=AAAA(host)))
        else:
            msg.add_ar(RR(qname, QTYPE.A, ttl=0, rdata=A(host)))
        # Owner `_udp.<qname>` / `_tcp.<qname>` for the SRV, as CoreDNS writes it; left out when that
        # is longer than a name may be (RFC 1035 §2.3.4): CoreDNS then fails to pack the reply and
        # sends nothing, and here any plugin that packs it (cache, rewrite) would fail.
        srv_labels = (f"_{request.proto}".encode(), *request.query.labels)
        if len(names.to_wire(srv_labels)) <= names.MAX_NAME:
            msg.add_ar(RR(DNSLabel(srv_labels), QTYPE.SRV, ttl=0, rdata=SRV(0, 0, port, qname)))
        return Reply(msg, self.name)


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    expect_args(d, 0, 0)
    return WhoAmI()
