"""rewrite's `edns0` rules: set, replace, append or unset an EDNS0 option of the query (local,
nsid, subnet), optionally reverted in the reply; CoreDNS's semantics, including their quirks:

- every edns0 rule adds an OPT (payload 4096) to a query that has none, even when it then changes
  nothing;
- `append` of a local or nsid option adds it even when one with that code exists; of a subnet, or of
  a local option whose data is a variable, it does nothing then;
- `replace` changes only the first matching option, and does nothing when there is none.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from dnslib import DNSRecord

from kdns.plugins import _edns
from kdns.plugins.rewrite.state import Query, ResponseRule

SET, REPLACE, APPEND, UNSET = "set", "replace", "append", "unset"
ACTIONS = (SET, REPLACE, APPEND, UNSET)
# The variables a local option's data may name (`{server_ip}`/`{server_port}` need the address the
# query came in on, which kdns's requests do not carry).
VARIABLES = ("{qname}", "{qtype}", "{client_ip}", "{client_port}", "{protocol}")


@dataclass(frozen=True)
class RemoveOption(ResponseRule):
    """`revert` of an added option: the reply carries none with this code."""

    code: int

    def message(self, msg: DNSRecord) -> None:
        opts = _edns.options(msg)
        if opts is not None:
            for i, (code, _) in enumerate(opts):
                if code == self.code:
                    del opts[i]
                    _edns.set_options(msg, opts)
                    return


@dataclass(frozen=True)
class RestoreOption(ResponseRule):
    """`revert` of a changed option: the reply's option with this code gets the query's old data."""

    code: int
    data: bytes

    def message(self, msg: DNSRecord) -> None:
        opts = _edns.options(msg)
        if opts is not None:
            for i, (code, _) in enumerate(opts):
                if code == self.code:
                    opts[i] = (code, self.data)
                    _edns.set_options(msg, opts)
                    return


def _edit(
    query: Query, code: int, data: bytes, action: str, revert: bool, append_twice: bool
) -> list[ResponseRule] | None:
    """Set/replace/append option `code` with `data`. `append_twice`: append even when one exists."""
    opts = query.opt()
    for i, (c, old) in enumerate(opts):
        if c != code:
            continue
        if action in (SET, REPLACE):
            opts[i] = (code, data)
            return [RestoreOption(code, old)] if revert else []
        if not append_twice:
            return None
    if action in (SET, APPEND):
        opts.append((code, data))
        return [RemoveOption(code)] if revert else []
    return None


def _unset(query: Query, code: int) -> list[ResponseRule]:
    opts = query.opt()
    opts[:] = [(c, d) for c, d in opts if c != code]
    return []


@dataclass(frozen=True)
class LocalRule:
    """`edns0 local ACTION CODE DATA [revert]`; DATA is bytes (`0x…`: hex) or a `{variable}`."""

    mode: str
    action: str
    code: int
    data: bytes | str  # str: a variable's name
    revert: bool

    def apply(self, query: Query) -> list[ResponseRule] | None:
        if self.action == UNSET:
            return _unset(query, self.code)
        if isinstance(self.data, bytes):
            return _edit(query, self.code, self.data, self.action, self.revert, append_twice=True)
        data = variable(self.data, query)
        if data is None:
            return None
        return _edit(query, self.code, data, self.action, self.revert, append_twice=False)


@dataclass(frozen=True)
class NsidRule:
    """`edns0 nsid ACTION [revert]`: an empty NSID option (RFC 5001 §2.1, as a client asks)."""

    mode: str
    action: str
    revert: bool

    def apply(self, query: Query) -> list[ResponseRule] | None:
        if self.action == UNSET:
            return _unset(query, _edns.NSID)
        return _edit(query, _edns.NSID, b"", self.action, self.revert, append_twice=True)


@dataclass(frozen=True)
class SubnetRule:
    """`edns0 subnet ACTION V4LEN V6LEN [revert]`: Client Subnet (RFC 7871 §6) from the client's
    address, cut to the prefix length of its family."""

    mode: str
    action: str
    v4_len: int
    v6_len: int
    revert: bool

    def apply(self, query: Query) -> list[ResponseRule] | None:
        if self.action == UNSET:
            return _unset(query, _edns.SUBNET)
        data = self._option(query.client[0])
        return _edit(query, _edns.SUBNET, data, self.action, self.revert, append_twice=False)

    def _option(self, host: str) -> bytes:
        ip = client_ip(host)
        family, length = (1, self.v4_len) if ip.version == 4 else (2, self.v6_len)
        net = ipaddress.ip_network(f"{ip}/{length}", strict=False)
        # FAMILY, SOURCE PREFIX-LENGTH, SCOPE PREFIX-LENGTH 0, the address cut to whole octets.
        address = net.network_address.packed[: (length + 7) // 8]
        return family.to_bytes(2, "big") + bytes((length, 0)) + address


def variable(name: str, query: Query) -> bytes | None:
    """A variable's value in wire form, as CoreDNS's rewrite encodes it."""
    host, port = query.client
    if name == "{qname}":
        return query.name.encode()
    if name == "{qtype}":
        return query.qtype.to_bytes(2, "big")
    if name == "{client_ip}":
        return client_ip(host).packed
    if name == "{client_port}":
        return port.to_bytes(2, "big")
    if name == "{protocol}":
        return query.proto.encode()
    return None


def client_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The client's address; `::ffff:a.b.c.d` counts as IPv4, as Go's net.IP.To4 does."""
    ip = ipaddress.ip_address(host.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip
