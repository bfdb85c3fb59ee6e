"""`explain [ADDRESS]` — `kdns explain` over HTTP (kdns's own directive; docs/plugins.md#explain).

`GET /explain?name=NAME[&type=TYPE][&namespace=NAMESPACE]` answers with the explanation as JSON
(kdns.explain.core): the server's reply to the name, asked through its real query path, and what
the kubernetes plugin's index says about it. A bad question is 400 with `{"error": "..."}`.

The default address is 127.0.0.1:8053, loopback only: an explanation shows Services, endpoints and
Pod names, so nothing about the cluster is exposed beyond the Pod unless the Corefile names a wider
address. `kdns explain NAME` inside the Pod (`kubectl exec`) asks this address by default.
"""

from __future__ import annotations

import dataclasses

from kdns.corefile.model import Directive
from kdns.explain.core import ExplainError, explain, parse_qtype
from kdns.http1.server import Request, Response
from kdns.plugin import Plugin, SetupContext
from kdns.plugins import _http
from kdns.plugins._args import expect_args

DEFAULT_ADDRESS = "127.0.0.1:8053"
PATH = "/explain"
_PARAMETERS = frozenset({"name", "type", "namespace"})


class Explain(_http.WithdrawnFirst):
    name = "explain"
    PATH = PATH

    async def handle(self, request: Request) -> Response:
        if request.method != "GET":
            return Response.json({"error": "only GET is served"}, 405, (("Allow", "GET"),))
        if not self.controller.serving:  # starting up: no listener answers questions yet
            return Response.json({"error": "kdns is starting: not serving DNS yet"}, 503)
        query = request.query
        try:
            unknown = sorted(set(query) - _PARAMETERS)
            if unknown:
                raise ExplainError(f"unknown parameter {unknown[0]!r} (name, type, namespace)")
            if not query.get("name"):
                raise ExplainError("missing parameter 'name'")
            qtype = parse_qtype(query.get("type") or "A")
            found = await explain(self.controller, query["name"], qtype, query.get("namespace") or None)
        except ExplainError as e:
            return Response.json({"error": str(e)}, 400)
        return Response.json(dataclasses.asdict(found))


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    args = expect_args(d, 0, 1)
    if d.children:
        raise d.error(f"unknown property '{d.children[0].name}'")
    return Explain(_http.parse_address(d, args[0] if args else DEFAULT_ADDRESS), ctx.controller, ctx.shared)
