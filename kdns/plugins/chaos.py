"""`chaos [VERSION] [AUTHORS...]` — the server's version, authors and host name as CH TXT records.

As CoreDNS's chaos plugin: a TXT query in class CH for `version.bind.` or `version.server.` gets
VERSION (default `kdns-<version>`), `hostname.bind.` or `id.server.` the host name (the pod's name in
Kubernetes), `authors.bind.` one record per author in random order; TTL 0, owner spelled as asked,
AA=0. Every other query goes to the next plugin. Each string is cut to 255 octets (one
character-string, RFC 1035 §3.3.14). CoreDNS's default authors are its maintainers (its OWNERS
files); kdns has no such list, so without AUTHORS `authors.bind.` has no records (NOERROR).

A block with chaos opens the listener to non-IN classes (kdns.server.dispatch), as in CoreDNS.
"""

from __future__ import annotations

import random
import socket
from typing import ClassVar

from dnslib import CLASS, QTYPE, RR, TXT

from kdns import __version__
from kdns.corefile.model import Directive
from kdns.plugin import Handler, NowHandler, Plugin, SetupContext
from kdns.request import Reply, Request

_MAX_STRING = 255
_VERSION_NAMES = ("version.bind.", "version.server.")
_HOSTNAME_NAMES = ("hostname.bind.", "id.server.")
_AUTHORS_NAME = "authors.bind."


def _trim(text: str) -> bytes:
    return text.encode()[:_MAX_STRING]


class Chaos(Plugin):
    name = "chaos"
    answers_other_classes: ClassVar[bool] = True

    def __init__(self, version: str, authors: tuple[str, ...], rng: random.Random | None = None) -> None:
        self.version = _trim(version)
        self.authors = tuple(_trim(a) for a in authors)
        self.rng = rng or random.Random()

    async def serve(self, request: Request, next_: Handler) -> Reply:
        reply = self._answer(request)
        return reply if reply is not None else await next_(request)

    def serve_now(self, request: Request, next_now: NowHandler) -> Reply | None:
        reply = self._answer(request)
        return reply if reply is not None else next_now(request)

    def _answer(self, request: Request) -> Reply | None:
        """The CH TXT reply for one of the names this plugin answers, else None (passed on)."""
        if request.qclass != CLASS.CH or request.qtype != QTYPE.TXT:
            return None
        name = request.qname_lower
        if name in _VERSION_NAMES:
            texts = [self.version]
        elif name in _HOSTNAME_NAMES:
            texts = [_trim(socket.gethostname() or "localhost")]
        elif name == _AUTHORS_NAME:
            texts = self.rng.sample(self.authors, len(self.authors))
        else:
            return None
        msg = request.reply()
        for text in texts:
            msg.add_answer(RR(request.owner, QTYPE.TXT, CLASS.CH, 0, TXT([text])))
        return Reply(msg, self.name)

    def transparent_for(self, qname: str) -> bool:
        # Its replies carry no `reuse`, so they are never replayed, and its names never reach a later
        # plugin (in serve or serve_now); everything else passes untouched.
        return True


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    if d.children:
        raise d.error(f"unknown property '{d.children[0].name}'")
    version = d.args[0] if d.args else f"kdns-{__version__}"
    authors = tuple(sorted(set(d.args[1:])))  # CoreDNS de-duplicates and sorts them
    return Chaos(version, authors)
