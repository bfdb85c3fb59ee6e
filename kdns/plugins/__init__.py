"""The plugin registry: which directives kdns implements, and the one order they run in.

As in CoreDNS (plugin.cfg), execution order is fixed here, not by the order of lines in the
Corefile. Each implemented plugin is a module `kdns.plugins.<name>` exposing
`setup(directive, ctx) -> Plugin`; a directive is implemented exactly when that module exists, and
modules are imported only when a Corefile uses them.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable

from kdns.corefile.model import Directive
from kdns.plugin import Plugin, SetupContext

# CoreDNS's plugin.cfg order (v1.12–1.14), all of it, so that a directive CoreDNS knows but kdns does
# not implement gets a warning rather than "unknown directive".
COREDNS_ORDER: tuple[str, ...] = (
    "root", "metadata", "geoip", "cancel", "tls", "timeouts", "multisocket", "reload", "nsid",
    "bufsize", "bind", "debug", "trace", "ready", "health", "pprof", "prometheus", "errors", "log",
    "dnstap", "local", "dns64", "acl", "any", "chaos", "loadbalance", "tsig", "cache", "rewrite",
    "header", "dnssec", "autopath", "minimal", "template", "transfer", "hosts", "route53", "azure",
    "clouddns", "k8s_external", "kubernetes", "file", "auto", "secondary", "etcd", "loop", "forward",
    "grpc", "erratic", "whoami", "on", "sign", "view",
)  # fmt: skip


def is_implemented(name: str) -> bool:
    """A directive is implemented when its module `kdns.plugins.<name>` exists."""
    return name in COREDNS_ORDER and importlib.util.find_spec(f"kdns.plugins.{name}") is not None


def implemented_in_order() -> tuple[str, ...]:
    return tuple(name for name in COREDNS_ORDER if is_implemented(name))


SetupFunc = Callable[[Directive, SetupContext], Plugin]


def rank(name: str) -> int:
    """Position of a directive in the execution order."""
    return COREDNS_ORDER.index(name)


def is_known(name: str) -> bool:
    return name in COREDNS_ORDER


def setup_function(name: str) -> SetupFunc:
    """Import `kdns.plugins.<name>` and return its `setup`."""
    module = importlib.import_module(f"kdns.plugins.{name}")
    setup: SetupFunc = module.setup
    return setup
