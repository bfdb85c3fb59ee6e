"""The plugin registry: which directives kdns implements, and the one order they run in.

As in CoreDNS (plugin.cfg), execution order is fixed here, not by the order of lines in the
Corefile: CoreDNS's order, with kdns's own directives (KDNS_ONLY) placed in it. Each implemented
plugin is a module `kdns.plugins.<name>` exposing `setup(directive, ctx) -> Plugin`; a directive is
implemented exactly when that module exists, and modules are imported only when a Corefile uses
them.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable

from kdns.corefile.model import Directive
from kdns.plugin import Plugin, SetupContext

# CoreDNS's plugin.cfg order, all of it, so that a directive CoreDNS knows but kdns does not implement
# gets "not implemented" rather than "unknown directive". This is CoreDNS v1.14.7's order (its
# development branch has the same). kind and kubeadm ship v1.11–v1.12, whose order differs in three
# moves that matter here: there acl ran before any, chaos, loadbalance and cache, and cache before
# rewrite and autopath. v1.14.2 moved acl after rewrite (#7882: a rewritten name bypassed the ACL),
# v1.14.7 moved acl after autopath (#8290) and cache after both and after acl (#8289: blocked clients
# got cached answers). kdns takes the fixed order: kind's Corefile uses none of acl, rewrite or
# autopath, and an ACL that a rewrite can bypass is a bug, not a contract. Consequences: the cache
# holds replies under the rewritten name and below rewrite's TTL/rcode changes; ANY and CH TXT
# queries answered by any/chaos are not subject to acl. (tls also moved, after dnssec; kdns serves
# plain DNS only.) The names added since v1.12 (proxyproto, quic, grpc_server, https, https3, shed,
# nomad) are known, not implemented.
COREDNS_ORDER: tuple[str, ...] = (
    "root", "metadata", "geoip", "cancel", "proxyproto", "quic", "grpc_server", "https", "https3",
    "timeouts", "multisocket", "reload", "nsid", "bufsize", "bind", "debug", "trace", "ready", "health",
    "pprof", "shed", "prometheus", "errors", "log", "dnstap", "local", "dns64", "any", "chaos",
    "loadbalance", "tsig", "rewrite", "autopath", "acl", "cache", "header", "dnssec", "tls", "minimal",
    "template", "transfer", "hosts", "route53", "azure", "clouddns", "k8s_external", "kubernetes", "file",
    "auto", "secondary", "etcd", "loop", "forward", "grpc", "erratic", "whoami", "on", "sign", "view",
    "nomad",
)  # fmt: skip

# kdns's own directives, none of CoreDNS's, and the directive each follows in the order. Neither is
# in the query path, so their places change nothing: `explain` serves HTTP and sits with the other
# HTTP endpoints; `limits` bounds the listeners, as `timeouts` does, and sits beside it.
KDNS_ONLY: dict[str, str] = {"limits": "timeouts", "explain": "prometheus"}
ORDER: tuple[str, ...] = tuple(
    name
    for coredns in COREDNS_ORDER
    for name in (coredns, *(own for own, after in KDNS_ONLY.items() if after == coredns))
)

# Directives kdns does not implement but may ignore (with a warning), because they cannot change any
# answer: each only exposes or tunes the process. Every other unimplemented directive is a Corefile
# error, as CoreDNS treats a directive it does not know: ignoring a `rewrite`, `dns64` or `dnstap`
# would silently serve something other than what the Corefile says.
IGNORABLE: dict[str, str] = {
    "debug": "debug logging and no panic recovery; kdns logs at its own level and always recovers",
    "pprof": "a Go profiling endpoint; there is no Go runtime to profile",
    "trace": "exports timing spans to a tracing collector; replies are the same without them",
    "multisocket": "more SO_REUSEPORT sockets for throughput; one socket answers the same",
}


def is_implemented(name: str) -> bool:
    """A directive is implemented when its module `kdns.plugins.<name>` exists."""
    return name in ORDER and importlib.util.find_spec(f"kdns.plugins.{name}") is not None


def implemented_in_order() -> tuple[str, ...]:
    return tuple(name for name in ORDER if is_implemented(name))


SetupFunc = Callable[[Directive, SetupContext], Plugin]


def rank(name: str) -> int:
    """Position of a directive in the execution order."""
    return ORDER.index(name)


def is_known(name: str) -> bool:
    return name in ORDER


def is_ignorable(name: str) -> bool:
    """Not implemented, and safe to skip with a warning (see IGNORABLE)."""
    return name in IGNORABLE and not is_implemented(name)


def setup_function(name: str) -> SetupFunc:
    """Import `kdns.plugins.<name>` and return its `setup`."""
    module = importlib.import_module(f"kdns.plugins.{name}")
    setup: SetupFunc = module.setup
    return setup
