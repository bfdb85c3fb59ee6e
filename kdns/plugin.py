"""The plugin contract, modelled on CoreDNS: each plugin is middleware around the next one.

A plugin's `serve` either answers (returns a Reply) or calls `next_` and may change what comes back
(cache, loadbalance) or only observe it (log, prometheus). Raising is how a plugin reports failure:
the server turns it into SERVFAIL, and the errors plugin logs it on the way out.

`serve_now` is the same middleware without awaiting: the server asks it first for a question its
fast path does not hold, so a question answered from memory costs no task and no coroutine chain.
A plugin that cannot say without awaiting returns None there, and the server runs `serve`.

This module, kdns.observe and the Reply a plugin returns are all the server knows of plugins: it
never imports one, nor names one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from dnslib import DNSRecord

from kdns.corefile.model import Corefile, Directive, ServerBlock
from kdns.observe import Traffic
from kdns.request import Reply, Request

Handler = Callable[[Request], Awaitable[Reply]]
# serve_now's next: the reply of the plugins after, or None when one of them must await.
NowHandler = Callable[[Request], Reply | None]
# Told the outcome of loading a configuration: (True, corefile) once it serves (at start and after
# each reload), (False, None) when a reload was rejected and the old configuration kept running.
ReloadObserver = Callable[[bool, Corefile | None], None]


class NoNextPlugin(Exception):
    """A plugin passed the query on (e.g. fallthrough) and nothing came after it: SERVFAIL, as CoreDNS."""


class PluginError(Exception):
    """A plugin could not answer (upstream down, not synced…): the server answers SERVFAIL, with an
    Extended DNS Error (RFC 8914) of `info_code` whose EXTRA-TEXT is `reason` (default: the message)
    when the client sent EDNS. The message is what the errors plugin logs, for operators; the reason
    is what the client reads."""

    def __init__(self, message: str, info_code: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.info_code = info_code  # RFC 8914 §4.1 Other Error unless the plugin knows better
        self.reason = reason or message


@dataclass(frozen=True, slots=True)
class Traced:
    """One question run through the server as a client's (`kdns explain`): the reply's bytes, and
    who wrote them."""

    wire: bytes | None  # None: no reply at all (a plugin chose silence: acl's `drop`)
    plugin: str  # the plugin that wrote the reply; "" when the server itself did (or none is known)
    block: tuple[Plugin, ...]  # the plugins of the server block the name went to; () when none
    zones: tuple[str, ...]  # that block's zones
    listener: str  # the listener whose configuration answered, as metrics name it: "dns://:53"


class Controller(Protocol):
    """What plugins may ask of the running server (implemented by kdns.server.runtime.Runtime)."""

    config_path: str
    # Appended to by plugins that report on configuration loads (reload: its log line and metrics).
    reload_observers: list[ReloadObserver]
    # True once listeners answer queries; stays True through reloads (the old configuration serves).
    serving: bool

    def request_reload(self) -> None:
        """Re-read the Corefile and apply it if it parses and sets up (reload plugin, SIGUSR1)."""

    def fatal(self, message: str) -> None:
        """Log `message` and exit non-zero (loop plugin)."""

    def plugins(self) -> Sequence[Plugin]:
        """Every plugin of the newest configuration: the one being started (at start-up, or by a
        reload until it is applied or rejected), else the running one (ready plugin)."""

    async def resolve(self, qname: str, qtype: int, proto: str = "udp") -> DNSRecord:
        """Run a new query through the whole server, as CoreDNS's re-entry does (ExternalName chase)."""

    async def trace(self, qname: str, qtype: int) -> Traced:
        """Ask the server `qname` (escaped text) like an EDNS client over TCP, and say who answered
        (the explain plugin). Raises kdns.protocol.names.BadName for a name that cannot be asked."""

    def serves(self, qname: str) -> bool:
        """Would `resolve` reach a server block for `qname` (lower-case)? When not, it answers
        REFUSED, which needs no asking (and leaves a reply that may be reused)."""


@dataclass(frozen=True, slots=True)
class ListenerSetting:
    """A bound of the listeners a server block is served on (timeouts, limits): `name` is a field of
    kdns.server.limits.ListenerLimits, `where` the Corefile line that set it (blocks sharing a
    listener must agree, kdns.plan says where they do not)."""

    name: str
    value: float
    where: Directive


@dataclass
class SetupContext:
    """What a plugin's setup function may read: its server block, the whole Corefile, shared state.

    `shared` lives as long as the process (it survives reloads), for resources that must not be
    re-created on every reload, such as HTTP listeners keyed by address.
    """

    block: ServerBlock
    corefile: Corefile
    controller: Controller
    shared: dict[str, Any] = field(default_factory=dict)
    dns_port: int = 53
    # This block's plugins in execution order, appended to as they are set up: complete once
    # `start()` runs. A plugin that works with another of its block (autopath and k8s_external use
    # the kubernetes plugin's data) keeps this list and finds the other there at start, as CoreDNS's
    # plugins do with dnsserver.GetConfig(c).Handler(name) in OnStartup.
    block_plugins: list[Plugin] = field(default_factory=list)


def find_plugin(plugins: Sequence[Plugin], name: str) -> Plugin | None:
    """The first plugin called `name` among `plugins`, if any."""
    return next((p for p in plugins if p.name == name), None)


class Plugin:
    """Base class. Override `serve` to sit in the query path; `start`/`stop` for background work."""

    name: ClassVar[str] = ""
    # Plugins that only run beside the server (health, ready, reload) set this to False so the chain
    # skips them on the hot path.
    in_query_path: ClassVar[bool] = True
    # A plugin that answers (or passes on) classes other than IN (chaos; forward) sets this: the
    # server refuses other classes unless a chain on the listener has one (CoreDNS's EnableChaos).
    answers_other_classes: ClassVar[bool] = False
    # A plugin that logs the failures of the plugins after it (errors) sets this; without one in the
    # chain, failures are logged at debug level only.
    reports_failures: ClassVar[bool] = False

    async def serve(self, request: Request, next_: Handler) -> Reply:
        return await next_(request)

    def serve_now(self, request: Request, next_now: NowHandler) -> Reply | None:
        """`serve`'s reply without awaiting anything, or None when this plugin cannot give it so (the
        server then runs `serve`). It must be exactly what `serve` would return, and may not depend on
        the client (`request.client` is unknown here): its reply becomes a template every client gets.
        By default a plugin transparent for the name passes it on, and any other needs `serve`."""
        return next_now(request) if self.transparent_for(request.qname_lower) else None

    def transparent_for(self, qname: str) -> bool:
        """True when this plugin passes the reply to `qname` (lower-case) from later plugins through
        unchanged (it may observe it through dispatcher observers). The server's fast path answers a
        question from cached bytes only when every plugin in front of the answering one says so."""
        return not self.in_query_path

    async def start(self) -> None:
        """Called once the whole server is configured, before listeners open; may wait (sync)."""

    async def stop(self) -> None:
        """Called on shutdown or when a reload replaces this plugin instance."""

    def ready(self) -> bool | None:
        """True/False for plugins with a readiness to report (the `ready` plugin asks); None otherwise."""
        return None

    async def on_shutdown(self) -> None:
        """Called first on SIGTERM, before listeners stop (health's lameduck waits here)."""

    def listen_hosts(self) -> Sequence[str]:
        """Addresses the block's listeners bind instead of every interface (bind); () for most."""
        return ()

    def listener_settings(self) -> Sequence[ListenerSetting]:
        """Bounds for the block's listeners (timeouts, limits); () for most."""
        return ()

    def observe(self, traffic: Traffic) -> None:
        """Called with each listener's traffic whenever a configuration is applied (prometheus)."""
