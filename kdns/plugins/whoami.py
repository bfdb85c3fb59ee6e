"""`whoami` — answers any name with the client's address (A or AAAA) and port (SRV in additional).

CoreDNS's built-in configuration when no Corefile is found; handy for checking a listener works.
"""

from __future__ import annotations

from dnslib import AAAA, QTYPE, RR, SRV, A

from kdns.corefile.model import Directive
from kdns.plugin import Handler, Plugin, SetupContext
from kdns.plugins._args import expect_args
from kdns.request import Reply, Request


class WhoAmI(Plugin):
    name = "whoami"

    async def serve(self, request: Request, next_: Handler) -> Reply:
        msg = request.reply(aa=True)
        host, port = request.client
        qname = request.qname
        # Owner `_udp.<qname>` / `_tcp.<qname>` for the SRV, as CoreDNS writes it.
        if ":" in host:
            msg.add_ar(RR(qname, QTYPE.AAAA, ttl=0, rdata=AAAA(host)))
        else:
            msg.add_ar(RR(qname, QTYPE.A, ttl=0, rdata=A(host)))
        msg.add_ar(RR(f"_{request.proto}.{qname}", QTYPE.SRV, ttl=0, rdata=SRV(0, 0, port, qname)))
        return Reply(msg, self.name)


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    expect_args(d, 0, 0)
    return WhoAmI()
