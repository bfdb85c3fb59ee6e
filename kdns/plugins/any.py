"""`any` — answer ANY queries with one short HINFO record instead of everything (RFC 8482 §4.2).

As CoreDNS's any plugin: for qtype ANY, whatever the name, the reply is NOERROR with the single
record `<qname> 8482 IN HINFO "ANY obsoleted" "See RFC 8482"` (owner spelled as asked, AA=0);
every other query goes to the next plugin.
"""

from __future__ import annotations

from dnslib import QTYPE, RD, RR

from kdns.corefile.model import Directive
from kdns.plugin import Handler, NowHandler, Plugin, SetupContext
from kdns.plugins._args import expect_args
from kdns.request import Reply, Request

TTL = 8482  # CoreDNS's choice, after the RFC's number
# HINFO RDATA (RFC 1035 §3.3.2): CPU and OS as two character-strings (dnslib has no HINFO class).
_HINFO = RD(b"\x0dANY obsoleted\x0cSee RFC 8482")


class Any(Plugin):
    name = "any"

    async def serve(self, request: Request, next_: Handler) -> Reply:
        if request.qtype != QTYPE.ANY:
            return await next_(request)
        return self._hinfo(request)

    def serve_now(self, request: Request, next_now: NowHandler) -> Reply | None:
        return self._hinfo(request) if request.qtype == QTYPE.ANY else next_now(request)

    def _hinfo(self, request: Request) -> Reply:
        msg = request.reply()
        msg.add_answer(RR(request.owner, QTYPE.HINFO, ttl=TTL, rdata=_HINFO))
        return Reply(msg, self.name)

    def transparent_for(self, qname: str) -> bool:
        # Other queries pass untouched, and the ANY replies written here are never replayed (no
        # `reuse`), nor can a later plugin's be: ANY never reaches one, in serve or serve_now.
        return True


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    expect_args(d, 0, 0)
    if d.children:
        raise d.error(f"unknown property '{d.children[0].name}'")
    return Any()
