"""The `kubernetes` directive's options (docs/dns-contract.md §12), parsed into one typed object."""

from __future__ import annotations

from dataclasses import dataclass

from kdns.corefile.model import Directive
from kdns.log import plugin_logger
from kdns.plugin import SetupContext
from kdns.plugins._args import (
    expect_args,
    parse_duration,
    parse_int,
    unknown_property,
    zones_or_default,
)

_log = plugin_logger("kubernetes")
PODS_MODES = ("disabled", "insecure", "verified")
REVERSE_SUFFIXES = ("in-addr.arpa.", "ip6.arpa.")
# docs/dns-contract.md §12: ttl 0..3600, default 5; startup_timeout default 5s.
DEFAULT_TTL = 5
MAX_TTL = 3600
DEFAULT_STARTUP_TIMEOUT = 5.0


def is_reverse_zone(zone: str) -> bool:
    return any(zone == s or zone.endswith("." + s) for s in REVERSE_SUFFIXES)


@dataclass(frozen=True)
class KubernetesOptions:
    zones: tuple[str, ...]
    endpoint: str | None = None
    tls: tuple[str, str, str] | None = None
    kubeconfig: str | None = None
    kubeconfig_context: str | None = None
    namespaces: frozenset[str] = frozenset()  # empty: all
    namespace_labels: str = ""
    labels: str = ""
    pods: str = "disabled"
    endpoint_pod_names: bool = False
    ttl: int = DEFAULT_TTL
    noendpoints: bool = False
    fallthrough: tuple[str, ...] | None = None  # None: off; a bare `fallthrough` means (".",)
    ignore_empty_service: bool = False
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT
    manifests: tuple[str, ...] = ()  # kdns-only: serve objects from files instead of the API

    @property
    def forward_zones(self) -> tuple[str, ...]:
        return tuple(z for z in self.zones if not is_reverse_zone(z))

    @property
    def primary_zone(self) -> str:
        """The first non-reverse zone: PTR targets are built in it (docs/dns-contract.md §12)."""
        return self.forward_zones[0]


def parse_options(d: Directive, ctx: SetupContext) -> KubernetesOptions:
    zones = zones_or_default(d, d.args, ctx.block.zones)
    if not any(not is_reverse_zone(z) for z in zones):
        raise d.error("non-reverse zone name must be used")
    values: dict[str, object] = {"zones": zones}
    for c in d.children:
        args = c.args
        if c.name == "endpoint":
            urls = expect_args(c, 1)
            if len(urls) > 1:
                _log.warning("multiple endpoints are deprecated; only %s is used", urls[0])
            values["endpoint"] = urls[0]
        elif c.name == "tls":
            cert, key, ca = expect_args(c, 3, 3)
            values["tls"] = (cert, key, ca)
        elif c.name == "kubeconfig":
            expect_args(c, 1, 2)
            values["kubeconfig"] = args[0]
            values["kubeconfig_context"] = args[1] if len(args) > 1 else None
        elif c.name == "namespaces":
            values["namespaces"] = frozenset(a.lower() for a in expect_args(c, 1))
        elif c.name in ("namespace_labels", "labels"):
            values[c.name] = " ".join(expect_args(c, 1))
        elif c.name == "pods":
            (mode,) = expect_args(c, 1, 1)
            if mode not in PODS_MODES:
                raise c.error(f"pods must be one of {', '.join(PODS_MODES)}, not '{mode}'")
            values["pods"] = mode
        elif c.name == "endpoint_pod_names":
            expect_args(c, 0, 0)
            values["endpoint_pod_names"] = True
        elif c.name == "ttl":
            (text,) = expect_args(c, 1, 1)
            values["ttl"] = parse_int(c, text, 0, MAX_TTL, "ttl")
        elif c.name == "noendpoints":
            expect_args(c, 0, 0)
            values["noendpoints"] = True
        elif c.name == "fallthrough":
            values["fallthrough"] = zones_or_default(c, args, (".",))
        elif c.name == "ignore":
            if args != ("empty_service",):
                raise c.error("ignore takes exactly one argument: empty_service")
            values["ignore_empty_service"] = True
        elif c.name == "startup_timeout":
            (text,) = expect_args(c, 1, 1)
            values["startup_timeout"] = parse_duration(c, text, "startup_timeout")
        elif c.name == "manifests":
            values["manifests"] = expect_args(c, 1)
        elif c.name in ("apiserver_qps", "apiserver_burst", "apiserver_max_inflight"):
            expect_args(c, 1, 1)
            _log.warning("%s is accepted for compatibility and has no effect in kdns", c.name)
        elif c.name in ("multicluster", "zonal"):
            raise c.error(f"'{c.name}' is not supported by kdns")
        else:
            raise unknown_property(d, c)
    if values.get("namespaces") and values.get("namespace_labels"):
        raise d.error("namespaces and namespace_labels cannot both be set")
    return KubernetesOptions(**values)  # type: ignore[arg-type]
