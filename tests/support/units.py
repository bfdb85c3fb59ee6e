"""Inputs for plugin unit tests, built with the real parsers: a Directive from Corefile text, a
SetupContext around it, and a Request from a question."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from dnslib import EDNS0, DNSRecord

from kdns.corefile import Directive, parse_corefile
from kdns.corefile.model import Corefile
from kdns.log import setup_logging
from kdns.plugin import Plugin, ReloadObserver, SetupContext, Traced
from kdns.request import Request


class StaticSource:
    """An object source that is always synced: the test fills the index itself."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def synced(self) -> bool:
        return True

    async def wait_synced(self, timeout: float) -> bool:
        return True


class FakeController:
    """Records what plugins ask of the server instead of doing it."""

    def __init__(self, plugins: Sequence[Plugin] = (), config_path: str = "Corefile") -> None:
        self.config_path = config_path
        self.reload_observers: list[ReloadObserver] = []
        self.reloads = 0
        self.fatals: list[str] = []
        self.serving = True
        self._plugins = list(plugins)

    def request_reload(self) -> None:
        self.reloads += 1

    def fatal(self, message: str) -> None:
        self.fatals.append(message)

    def plugins(self) -> Sequence[Plugin]:
        return self._plugins

    async def resolve(self, qname: str, qtype: int, proto: str = "udp") -> DNSRecord:
        raise NotImplementedError

    async def trace(self, qname: str, qtype: int) -> Traced:
        raise NotImplementedError

    def serves(self, qname: str) -> bool:
        return True


def corefile(body: str, key: str = ".") -> Corefile:
    return parse_corefile(f"{key} {{\n{body}\n}}\n")


def directive(line: str) -> Directive:
    """The first directive of a one-block Corefile whose body is `line` (may span lines, `{}`)."""
    return corefile(line).blocks[0].directives[0]


def context(
    body: str, key: str = ".", controller: Any = None, shared: dict[str, Any] | None = None
) -> SetupContext:
    cf = corefile(body, key)
    return SetupContext(
        cf.blocks[0], cf, controller or FakeController(), shared if shared is not None else {}
    )


def request(
    name: str = "example.org.",
    qtype: str = "A",
    *,
    proto: str = "udp",
    client: tuple[str, int] = ("127.0.0.1", 40000),
    edns: int | None = 1232,
    do: bool = False,
    zone: str = ".",
) -> Request:
    """A parsed query as the dispatcher would hand it to a chain."""
    msg = DNSRecord.question(name, qtype)
    if edns is not None:
        msg.add_ar(EDNS0(udp_len=edns, flags="do" if do else ""))
    request = Request.from_wire(bytes(msg.pack()), proto, client, "dns://:53")
    request.zone = zone
    return request


@contextlib.contextmanager
def kdns_log(level: int = logging.DEBUG) -> Iterator[io.StringIO]:
    """kdns's log lines, formatted as the server prints them, collected while the block runs."""
    buf = io.StringIO()
    root = logging.getLogger("kdns")
    saved = (root.handlers[:], root.level, root.propagate)
    with contextlib.redirect_stderr(buf):
        setup_logging(level)
    try:
        yield buf
    finally:
        root.handlers[:], root.level, root.propagate = saved
