"""TLS client settings for `tls://` upstreams (DNS over TLS, RFC 7858), as CoreDNS's forward sets them.

`tls [CERT KEY] [CA]` follows CoreDNS's pkg/tls NewTLSConfigFromArgs: no argument uses the system
CAs; one is a CA bundle; two are a client certificate and key (system CAs); three are certificate,
key and CA. The minimum protocol version is TLS 1.2, as CoreDNS sets it. The server certificate is
always verified: against `tls_servername` when given, else the name after `%` in the TO, else the
upstream's IP address (what Go does when no server name is configured).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TlsTarget:
    """How to open a TLS connection to one upstream."""

    context: ssl.SSLContext
    server_name: str  # checked against the certificate (DNS name or IP address) and sent as SNI


def client_context(files: tuple[str, ...]) -> ssl.SSLContext:
    """An SSL context for `tls FILES...` (0 to 3 paths); OSError / ssl.SSLError name a bad file."""
    cert = key = ca = None
    if len(files) == 1:
        (ca,) = files
    elif len(files) >= 2:
        cert, key, *rest = files
        ca = rest[0] if rest else None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert is not None:
        context.load_cert_chain(cert, key)
    return context


def server_name_of(ip: str, per_upstream: str, forward_level: str) -> str:
    """The name the certificate must carry (see the module docstring for the order)."""
    return forward_level or per_upstream or ip
