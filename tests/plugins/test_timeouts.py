"""timeouts: CoreDNS's options and errors (unit), blocks sharing a listener must agree, and a real
kdns process closing idle TCP connections and connections past maxtcpqueries, counted by reason,
with new values applied on reload."""

from __future__ import annotations

import re
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import dns.message
import pytest

from kdns.corefile import CorefileError
from kdns.plugins import timeouts
from tests.support.dnsclient import framed, read_framed, send_framed
from tests.support.http import scrape, until, value
from tests.support.ports import free_port
from tests.support.process import KdnsProcess, run_kdns
from tests.support.units import context, directive

Kdns = Callable[..., KdnsProcess]
CLOSED = "kdns_tcp_connections_closed_total"


def settings(text: str) -> dict[str, float]:
    plugin = timeouts.setup(directive(text), context(text))
    return {s.name: s.value for s in plugin.listener_settings()}


def test_options() -> None:
    assert settings("timeouts {\n read 30s\n}") == {"read_timeout": 30.0}
    assert settings("timeouts {\n read 10\n write 1m\n idle 1h\n}") == {
        "read_timeout": 10.0, "write_timeout": 60.0, "idle_timeout": 3600.0}  # fmt: skip
    assert settings("timeouts {\n maxtcpqueries 128\n}") == {"max_tcp_queries": 128}
    assert settings("timeouts {\n maxtcpqueries -1\n idle 24h\n}") == {
        "max_tcp_queries": -1, "idle_timeout": 86400.0}  # fmt: skip


@pytest.mark.parametrize(("text", "message"), [  # CoreDNS's own checks (plugin/timeouts/timeouts.go)
    ("timeouts", "Corefile:2 - Error during parsing: 'timeouts': timeouts block with no timeouts specified"),
    ("timeouts {\n}", "timeouts block with no timeouts specified"),
    ("timeouts 5s {\n read 5s\n}", "wrong argument count"),
    ("timeouts {\n read 10s\n giraffe 30s\n}", "Corefile:4 - Error during parsing: 'giraffe': unknown"),
    ("timeouts {\n read 10s 20s\n}", "'read': wrong argument count"),
    ("timeouts {\n write snake\n}", "invalid write timeout 'snake'"),
    ("timeouts {\n idle 0s\n}", "timeout provided '0s' needs to be between 1 second and 24 hours"),
    ("timeouts {\n read 48h\n}", "needs to be between 1 second and 24 hours"),
    ("timeouts {\n read 500ms\n}", "needs to be between 1 second and 24 hours"),
    ("timeouts {\n maxtcpqueries 0\n}", "maxtcpqueries provided '0' needs to be -1 (unlimited)"),
    ("timeouts {\n maxtcpqueries -2\n}", "needs to be -1 (unlimited) or a positive number"),
    ("timeouts {\n maxtcpqueries snake\n}", "invalid value for maxtcpqueries 'snake'"),
    ("timeouts {\n idle 5s\n idle 6s\n}", "Corefile:4 - Error during parsing: 'idle': idle is set twice"),
])  # fmt: skip
def test_bad_options_name_the_line(text: str, message: str) -> None:
    with pytest.raises(CorefileError, match=re.escape(message)):
        timeouts.setup(directive(text), context(text))


def test_blocks_sharing_a_listener_must_agree(tmp_path: Path) -> None:
    """CoreDNS lets the last block's value win in silence; kdns names both lines."""
    path = tmp_path / "Corefile"
    port = free_port()
    path.write_text(
        f"example.org:{port} {{\n timeouts {{\n  idle 5s\n }}\n whoami\n}}\n"
        f"example.net:{port} {{\n timeouts {{\n  idle 6s\n  read 2s\n }}\n whoami\n}}\n"
    )
    r = run_kdns(["-conf", str(path)])
    assert r.returncode == 1
    assert (f"{path}:9 - Error during parsing: 'timeouts': idle 6s disagrees with idle 5s at {path}:3: "
            f"server blocks sharing a listener (port {port}) must set the same value") in r.stderr


def test_blocks_on_other_ports_or_agreeing_may_differ(kdns: Kdns) -> None:
    other = free_port()
    k = kdns(
        "example.org:{port} {\n bind 127.0.0.1\n timeouts {\n  idle 5s\n }\n whoami\n}\n"
        "example.net:{port} {\n bind 127.0.0.1\n timeouts {\n  idle 5s\n  read 2s\n }\n whoami\n}\n"
        f"example.com:{other} {{\n bind 127.0.0.1\n timeouts {{\n  idle 6s\n }}\n whoami\n}}\n"
    )
    assert "Error" not in k.logs()


def corefile(metrics: int, options: str) -> str:
    return (
        f".:{{port}} {{\n bind 127.0.0.1\n prometheus 127.0.0.1:{metrics}\n"
        f" timeouts {{\n{options}\n }}\n whoami\n}}\n"
    )


def query(n: int) -> bytes:
    return dns.message.make_query(f"q{n}.example.", "A", id=n).to_wire()


def closed(url: str, port: int, reason: str) -> float:
    return value(scrape(url)[1], CLOSED, server=f"dns://127.0.0.1:{port}", reason=reason)


def test_an_idle_connection_is_closed_after_idle(kdns: Kdns) -> None:
    m = free_port()
    url = f"http://127.0.0.1:{m}/metrics"
    k = kdns(corefile(m, "  idle 1s"))
    with socket.create_connection(("127.0.0.1", k.port), timeout=30) as s:
        send_framed(s, query(1))
        assert read_framed(s) is not None
        start = time.monotonic()
        assert read_framed(s) is None  # closed by the server, with no query in between
        assert time.monotonic() - start < 8  # generous: the default idle timeout is 10 s
    until(lambda: closed(url, k.port, "idle") == 1, "the idle close to be counted")


def test_maxtcpqueries_closes_after_that_many_answers_and_reload_applies(kdns: Kdns) -> None:
    m = free_port()
    url = f"http://127.0.0.1:{m}/metrics"
    k = kdns(corefile(m, "  maxtcpqueries 3"))

    def answers_on_one_connection(sent: int) -> int:
        with socket.create_connection(("127.0.0.1", k.port), timeout=10) as s:
            # Pipelined in one write (those past the limit are never read): sent one by one, a
            # query past the limit can meet the connection already closed (EPIPE).
            s.sendall(b"".join(framed(query(n)) for n in range(sent)))
            got = 0
            while read_framed(s) is not None:
                got += 1
            return got

    assert answers_on_one_connection(5) == 3
    until(lambda: closed(url, k.port, "maxtcpqueries") == 1, "the close to be counted")

    k.corefile_path.write_text(corefile(m, "  maxtcpqueries 4").replace("{port}", str(k.port)))
    k.signal(signal.SIGUSR1)
    until(lambda: "Reloading complete" in k.logs(), "the reload")
    assert answers_on_one_connection(6) == 4
    until(lambda: closed(url, k.port, "maxtcpqueries") == 2, "the second close to be counted")

    k.corefile_path.write_text(corefile(m, "  maxtcpqueries 0").replace("{port}", str(k.port)))
    k.signal(signal.SIGUSR1)
    until(lambda: "maxtcpqueries provided '0'" in k.logs(), "the rejected reload")
    assert answers_on_one_connection(6) == 4  # the running configuration stays
