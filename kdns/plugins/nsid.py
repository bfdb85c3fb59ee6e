"""`nsid [DATA...]` — name this server in replies to clients that ask (RFC 5001 NSID).

As CoreDNS's nsid: when the query's OPT carries an NSID option, the reply's OPT carries one with
DATA (the arguments joined by spaces; default the host name, in Kubernetes the pod's name), which
replaces any NSID a later plugin or an upstream put there. Queries without the option, and replies
to them, are untouched. The reply has an OPT exactly when the query had one (kdns always mirrors it).
Not transparent to the server's fast path: its replay cache does not key on EDNS options, so with
nsid in a block every reply takes the plugin chain.
"""

from __future__ import annotations

import socket

from kdns.corefile.model import Directive
from kdns.plugin import Handler, Plugin, SetupContext
from kdns.plugins import _edns
from kdns.request import Reply, Request


class Nsid(Plugin):
    name = "nsid"

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def serve(self, request: Request, next_: Handler) -> Reply:
        asked = request.edns is not None and any(code == _edns.NSID for code, _ in request.edns.options)
        reply = await next_(request)
        if asked:
            opts = _edns.options(reply.message)
            if opts is not None:
                mine = [(code, self.data if code == _edns.NSID else data) for code, data in opts]
                if all(code != _edns.NSID for code, _ in opts):
                    mine.append((_edns.NSID, self.data))
                _edns.set_options(reply.message, mine)
        return reply


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    if d.children:
        raise d.error(f"unknown property '{d.children[0].name}'")
    data = " ".join(d.args) if d.args else (socket.gethostname() or "localhost")
    return Nsid(data.encode())
