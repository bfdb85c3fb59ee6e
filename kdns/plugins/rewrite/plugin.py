"""The rewrite plugin: its rules change the question for the plugins after it, then its response
rules change their reply on the way back, and the client gets its own question back."""

from __future__ import annotations

from collections.abc import Sequence

from dnslib import QTYPE, RCODE, DNSRecord

from kdns.plugin import Controller, Handler, Plugin, PluginError
from kdns.plugins import _edns
from kdns.plugins._requests import InvalidName, with_options, with_question
from kdns.plugins.rewrite.rules import RcodeResponse
from kdns.plugins.rewrite.state import STOP, Query, ResponseRule, Rule
from kdns.protocol.message import parse_message
from kdns.request import Reply, Request


class Rewrite(Plugin):
    name = "rewrite"

    def __init__(self, rules: Sequence[Rule], controller: Controller) -> None:
        self.rules = tuple(rules)
        self.controller = controller

    async def serve(self, request: Request, next_: Handler) -> Reply:
        query = Query.of(request, _edns.options(request.message))
        responses: list[ResponseRule] = []
        applied = False
        for rule in self.rules:
            found = rule.apply(query)
            if found is None:
                continue
            applied = True
            responses += found
            if rule.mode == STOP:
                break
        if not applied:
            return await next_(request)
        inner = self._inner(request, query)
        try:
            reply = await next_(inner)
        except Exception:
            # CoreDNS writes the failure itself, through its response rules: only an rcode rule can
            # make that differ from the SERVFAIL the server answers (and the errors plugin logs).
            if not any(isinstance(r, RcodeResponse) for r in responses):
                raise
            msg = request.reply(RCODE.SERVFAIL)
            await self._respond(msg, responses, query)
            return Reply(msg, self.name)
        # A copy: the records may also be held by a cache behind us (CoreDNS copies too).
        msg = parse_message(bytes(reply.message.pack()))
        msg.questions = [request.message.q]
        await self._respond(msg, responses, query)
        if request.edns is None:  # an OPT we added to the query is not the client's (RFC 6891 §7)
            msg.ar = [rr for rr in msg.ar if rr.rtype != QTYPE.OPT]
        return Reply(msg, reply.plugin)

    @staticmethod
    def _inner(request: Request, query: Query) -> Request:
        """The request the later plugins see."""
        inner = request
        if (query.name, query.qtype, query.qclass) != (request.qname, request.qtype, request.qclass):
            try:
                inner = with_question(request, query.name, query.qtype, query.qclass)
            except InvalidName:
                raise PluginError(f"invalid name after rewrite: {query.name}") from None
        if query.options_changed and query.options is not None:
            inner = with_options(inner, query.options)
        return inner

    async def _respond(self, msg: DNSRecord, responses: list[ResponseRule], query: Query) -> None:
        """The response rules, last first (CoreDNS's order), on every record, then the message."""
        if not responses:
            return
        rules = responses[::-1]
        for rr in (*msg.auth, *msg.rr, *msg.ar):
            if rr.rtype != QTYPE.OPT:
                for rule in rules:
                    rule.record(rr)
        for rule in rules:
            rule.message(msg)
        for rule in rules:
            await rule.resolve(msg, query.qtype, query.proto, self.controller.resolve)
