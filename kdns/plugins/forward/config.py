"""`forward FROM TO... { ... }` → ForwardConfig, with CoreDNS's defaults and limits (plugin/forward/setup.go).

TO is `IP`, `IP:PORT`, `[IPv6]:PORT`, any of those behind `dns://`, or a resolv.conf-style file whose
`nameserver` lines are used on port 53 (CoreDNS: parse.HostPortOrFile). Other transports (`tls://`,
`https://`, `grpc://`) and hostnames are refused with a clear error rather than half-supported.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from kdns.corefile.model import Directive
from kdns.plugins._args import (
    expect_args,
    normalize_zone,
    parse_duration,
    parse_int,
    unknown_property,
    zones_or_default,
)
from kdns.plugins.forward.resolvconf import read_nameservers

DNS_PORT = 53
MAX_UPSTREAMS = 15  # CoreDNS forward: "more than 15 TOs configured"
POLICIES = ("random", "round_robin", "sequential")
# Options CoreDNS has that kdns refuses on purpose, with the reason shown to the user.
_UNSUPPORTED = {
    "tls": "DNS-over-TLS upstreams are not supported by kdns (plain DNS only)",
    "tls_servername": "DNS-over-TLS upstreams are not supported by kdns (plain DNS only)",
    "doh_method": "DNS-over-HTTPS upstreams are not supported by kdns (plain DNS only)",
    "next": "not supported by kdns (one forward per server block, so there is no next forward to try)",
    "failover": "not supported by kdns",
    "max_idle_conns": "not supported by kdns (idle connections are only limited by `expire`)",
    "max_connect_attempts": "not supported by kdns",
    "failfast_all_unhealthy_upstreams": "not supported by kdns",
    "resolver": "not supported by kdns (hostname upstreams are not supported)",
}


@dataclass(frozen=True, slots=True)
class Upstream:
    host: str
    port: int

    @property
    def label(self) -> str:
        """`host:port` as CoreDNS writes it in logs and the `to` metric label."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class HealthCheckConfig:
    interval: float = 0.5  # CoreDNS default
    recursion_desired: bool = True
    domain: str = "."


@dataclass(frozen=True, slots=True)
class ForwardConfig:
    from_zone: str
    upstreams: tuple[Upstream, ...]
    ignored: tuple[str, ...] = ()
    force_tcp: bool = False
    prefer_udp: bool = False
    expire: float = 10.0  # CoreDNS default connection expiry
    max_fails: int = 2
    policy: str = "random"
    health: HealthCheckConfig = HealthCheckConfig()
    max_concurrent: int = 0  # 0: no limit


def parse(d: Directive) -> ForwardConfig:
    args = expect_args(d, 2)
    from_zone = zones_or_default(d, args[:1], ())[0]
    upstreams: list[Upstream] = []
    for to in args[1:]:
        upstreams.extend(parse_to(d, to))
    if not upstreams:
        raise d.error("no nameservers found")
    if len(upstreams) > MAX_UPSTREAMS:
        raise d.error(f"more than {MAX_UPSTREAMS} TOs configured: {len(upstreams)}")
    cfg = ForwardConfig(from_zone, tuple(upstreams))
    for child in d.children:
        name = child.name
        if name in _UNSUPPORTED:
            raise child.error(_UNSUPPORTED[name])
        if name == "except":
            cfg = replace(cfg, ignored=zones_or_default(child, expect_args(child, 1), ()))
        elif name == "force_tcp":
            expect_args(child, 0, 0)
            cfg = replace(cfg, force_tcp=True)
        elif name == "prefer_udp":
            expect_args(child, 0, 0)
            cfg = replace(cfg, prefer_udp=True)
        elif name == "expire":
            cfg = replace(cfg, expire=parse_duration(child, expect_args(child, 1, 1)[0]))
        elif name == "max_fails":
            max_fails = parse_int(child, expect_args(child, 1, 1)[0], 0, 2**32 - 1, "max_fails")
            cfg = replace(cfg, max_fails=max_fails)
        elif name == "policy":
            policy = expect_args(child, 1, 1)[0]
            if policy not in POLICIES:
                raise child.error(f"unknown policy '{policy}' (want {'|'.join(POLICIES)})")
            cfg = replace(cfg, policy=policy)
        elif name == "health_check":
            cfg = replace(cfg, health=_parse_health(child))
        elif name == "max_concurrent":
            limit = parse_int(child, expect_args(child, 1, 1)[0], 0, 2**31 - 1, "max_concurrent")
            cfg = replace(cfg, max_concurrent=limit)
        else:
            raise unknown_property(d, child)
    return cfg


def _parse_health(child: Directive) -> HealthCheckConfig:
    """`health_check DURATION [no_rec] [domain FQDN]`."""
    args = list(expect_args(child, 1, 4))
    interval = parse_duration(child, args.pop(0), "health_check interval")
    if interval <= 0:
        raise child.error("health_check interval must be positive")
    rd, domain = True, "."
    while args:
        word = args.pop(0)
        if word == "no_rec":
            rd = False
        elif word == "domain" and args:
            domain = normalize_zone(args.pop(0))
        else:
            raise child.error(f"unexpected '{word}' (want: health_check DURATION [no_rec] [domain FQDN])")
    return HealthCheckConfig(interval, rd, domain)


def parse_to(d: Directive, text: str) -> list[Upstream]:
    """One TO argument → its upstream(s)."""
    rest = text
    if "://" in text:
        scheme, rest = text.split("://", 1)
        if scheme.lower() != "dns":
            raise d.error(f"'{text}': transport '{scheme}' is not supported (plain DNS only: IP[:PORT] or dns://)")
    if not rest:
        raise d.error(f"invalid address: '{text}'")
    host, port = _split_host_port(rest)
    if _is_ip(host):
        if port is None:
            return [Upstream(_strip_zone(host), DNS_PORT)]
        return [Upstream(_strip_zone(host), parse_int(d, port, 1, 65535, "port"))]
    try:
        servers = read_nameservers(rest)
    except FileNotFoundError:
        raise d.error(f"not an IP address or file: '{rest}'") from None
    except (OSError, ValueError) as e:
        raise d.error(f"reading '{rest}': {e}") from None
    return [Upstream(s, DNS_PORT) for s in servers]


def _split_host_port(text: str) -> tuple[str, str | None]:
    """`1.2.3.4:53` / `[::1]:53` / `[::1]` / `::1` / `1.2.3.4` / a path."""
    if text.startswith("["):
        host, sep, after = text[1:].partition("]")
        if sep and (not after or after.startswith(":")):
            return host, after[1:] or None
        return text, None
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, port
    return text, None


def _strip_zone(host: str) -> str:
    return host.split("%", 1)[0]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(_strip_zone(host))
    except ValueError:
        return False
    return True
