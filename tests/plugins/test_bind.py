"""bind: addresses, interface names and `except` (unit, with this machine's `lo`), and a real kdns
process listening on exactly the addresses asked for."""

from __future__ import annotations

import socket
from collections.abc import Callable

import dns.exception
import pytest

from kdns import netif
from kdns.corefile import CorefileError
from kdns.corefile.model import Directive
from kdns.plugins import bind
from tests.support.dnsclient import ask, rcode
from tests.support.http import until
from tests.support.process import KdnsProcess

Kdns = Callable[..., KdnsProcess]
INTERFACES = {"lo": ["127.0.0.1", "::1"], "dummy0": ["169.254.20.10", "fe80::1%dummy0"]}


def d(*args: str, children: tuple[Directive, ...] = ()) -> Directive:
    return Directive("bind", tuple(args), children, "Corefile", 2, bool(children))


def hosts(directive: Directive) -> tuple[str, ...]:
    plugin = bind.setup(directive, None)  # type: ignore[arg-type]
    assert isinstance(plugin, bind.Bind)
    return plugin.hosts


def test_addresses_and_interface_names() -> None:
    assert bind.resolve(d(), ["10.96.0.10", "lo", "2001:DB8::1", "dummy0"], INTERFACES) == [
        "10.96.0.10", "127.0.0.1", "::1", "2001:db8::1", "169.254.20.10", "fe80::1%dummy0"]
    with pytest.raises(CorefileError, match=r"Corefile:2 - .*not a valid IP address or interface name"):
        bind.resolve(d(), ["eth9"], INTERFACES)


def test_this_machines_loopback_and_except() -> None:
    assert "127.0.0.1" in netif.addresses_by_interface()["lo"]
    assert "127.0.0.1" in hosts(d("lo"))
    except_v4 = Directive("except", ("127.0.0.1",), (), "Corefile", 3)
    assert "127.0.0.1" not in hosts(d("lo", children=(except_v4,)))
    assert hosts(d("127.0.0.1", "127.0.0.2", "127.0.0.1")) == ("127.0.0.1", "127.0.0.2")


@pytest.mark.parametrize(("directive", "message"), [
    (d(), "wrong argument count"),
    (d("lo", children=(Directive("except", (), (), "Corefile", 3),)), "Corefile:3 - .*wrong argument count"),
    (d("lo", children=(Directive("only", ("lo",), (), "Corefile", 3),)), "invalid option 'only'"),
])
def test_errors_name_the_line(directive: Directive, message: str) -> None:
    with pytest.raises(CorefileError, match=message):
        hosts(directive)


def test_listens_on_the_bound_addresses_only(kdns: Kdns) -> None:
    corefile = (".:{port} {\n  bind 127.0.0.2 127.0.0.3\n  bind lo {\n    except 127.0.0.1 ::1\n  }\n"
                "  whoami\n}\n")
    k = kdns(corefile, wait_tcp=False)
    for host in ("127.0.0.2", "127.0.0.3"):
        until(lambda h=host: _listening(h, k.port), f"kdns listening on {host}")  # type: ignore[misc]
        assert rcode(ask(k.port, "example.org", "A", host=host)) == "NOERROR"
    with pytest.raises(dns.exception.Timeout):
        ask(k.port, "example.org", "A", host="127.0.0.1", timeout=1)


def _listening(host: str, port: int) -> bool:
    with socket.create_connection((host, port), timeout=0.2):
        return True
