"""`forward FROM TO... { ... }` → ForwardConfig, with CoreDNS's defaults and limits (plugin/forward/setup.go).

TO is `IP`, `IP:PORT`, `[IPv6]:PORT`, any of those behind `dns://`, or a resolv.conf-style file whose
`nameserver` lines are used on port 53 (CoreDNS: parse.HostPortOrFile); or `tls://IP[%NAME][:PORT]`
for DNS over TLS (RFC 7858, port 853 by default; NAME is that upstream's certificate name). Other
transports (`https://`, `grpc://`, `quic://`) and hostnames are refused with a clear error rather
than half-supported.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass, field, replace

from kdns.corefile.model import Directive
from kdns.plugins._args import (
    expect_args,
    normalize_zone,
    parse_duration,
    parse_int,
    unknown_property,
    zones_or_default,
)
from kdns.plugins._resolvconf import read_nameservers
from kdns.plugins.forward.tls import client_context

DNS_PORT = 53
TLS_PORT = 853  # RFC 7858 §3.1
MAX_TLS_FILES = 3  # tls [CERT KEY] [CA]
MAX_UPSTREAMS = 15  # CoreDNS forward: "more than 15 TOs configured"
POLICIES = ("random", "round_robin", "sequential")
# Options CoreDNS has that kdns refuses on purpose, with the reason shown to the user.
_UNSUPPORTED = {
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
    tls: bool = False  # tls:// (DNS over TLS)
    server_name: str = ""  # the `%NAME` of `tls://IP%NAME`: this upstream's certificate name

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
    tls_servername: str = ""  # the certificate name of every tls:// upstream
    # For tls:// upstreams: from the `tls` option, else the system CAs (CoreDNS's default).
    tls_context: ssl.SSLContext | None = field(default=None, compare=False)


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
        elif name == "tls":
            cfg = replace(cfg, tls_context=_tls_context(child, expect_args(child, 0, MAX_TLS_FILES)))
        elif name == "tls_servername":
            cfg = replace(cfg, tls_servername=expect_args(child, 1, 1)[0])
        else:
            raise unknown_property(d, child)
    return _check_tls(d, cfg)


def _tls_context(child: Directive, files: tuple[str, ...]) -> ssl.SSLContext:
    try:
        return client_context(files)
    except (OSError, ssl.SSLError, ValueError) as e:
        raise child.error(f"could not load TLS files {' '.join(files)}: {e}") from None


def _check_tls(d: Directive, cfg: ForwardConfig) -> ForwardConfig:
    """One certificate name per upstream (CoreDNS refuses both levels at once); tls:// upstreams
    without a `tls` option verify with the system CAs."""
    for u in cfg.upstreams:
        if u.server_name and cfg.tls_servername:
            raise d.error(
                f"both forward ('{cfg.tls_servername}') and proxy level ('{u.server_name}') TLS "
                f"servernames are set for upstream proxy '{u.label}'"
            )
    if cfg.tls_context is None and any(u.tls for u in cfg.upstreams):
        cfg = replace(cfg, tls_context=client_context(()))
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
            domain = normalize_zone(child, args.pop(0))
        else:
            raise child.error(f"unexpected '{word}' (want: health_check DURATION [no_rec] [domain FQDN])")
    return HealthCheckConfig(interval, rd, domain)


def parse_to(d: Directive, text: str) -> list[Upstream]:
    """One TO argument → its upstream(s)."""
    rest, scheme = text, "dns"
    if "://" in text:
        scheme, rest = text.split("://", 1)
        scheme = scheme.lower()
        if scheme not in ("dns", "tls"):
            raise d.error(
                f"'{text}': transport '{scheme}' is not supported (IP[:PORT], dns:// or tls:// only)"
            )
    if not rest:
        raise d.error(f"invalid address: '{text}'")
    if scheme == "tls":
        return [_tls_upstream(d, text, rest)]
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


def _tls_upstream(d: Directive, text: str, rest: str) -> Upstream:
    """`tls://IP[%NAME][:PORT]` (IPv6 in brackets: `tls://[2001:db8::1%NAME]:853`), CoreDNS's form."""
    name = ""
    if "%" in rest:  # CoreDNS splitZone: the name ends at the port's colon, the bracket stays
        at = rest.rindex("%")
        host_part, name = rest[:at], rest[at + 1 :]
        port_part = ""
        if ":" in name:
            colon = name.rindex(":")
            name, port_part = name[:colon], name[colon:]
        name = name.rstrip("]")
        rest = host_part + ("]" if host_part.startswith("[") else "") + port_part
    host, port = _split_host_port(rest)
    if not _is_ip(host) or "%" in host:
        raise d.error(f"'{text}': a tls:// upstream must be an IP address (hostnames are not supported)")
    return Upstream(host, TLS_PORT if port is None else parse_int(d, port, 1, 65535, "port"), True, name)


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
