"""TCP clients that hold connections or never read cannot lock the others out.

Regression: 2,000 idle TCP connections held ~1,030 sockets and every new connection was closed at
once until the 10 s idle timeout; a client that never read its replies was never closed.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable

import dns.message
import pytest

from kdns.server.limits import LISTENER_DEFAULTS
from tests.support.dnsclient import ask, rcode
from tests.support.http import scrape, value
from tests.support.ports import free_port
from tests.support.process import KdnsProcess


@pytest.mark.slow
def test_idle_connections_do_not_lock_out_new_clients(kdns: Callable[..., KdnsProcess]) -> None:
    # Held connections that would time out only after a minute: new clients get in by eviction.
    server = kdns(".:{port} {\n bind 127.0.0.1\n timeouts {\n  read 60s\n }\n whoami\n}\n")
    idle: list[socket.socket] = []
    try:
        for _ in range(2 * LISTENER_DEFAULTS.tcp_connections):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        time.sleep(0.5)  # let the server accept them all
        start = time.monotonic()
        for i in range(20):  # new clients, well inside the read timeout of the held ones
            assert rcode(ask(server.port, f"new{i}.example.", tcp=True, timeout=2)) == "NOERROR"
        assert time.monotonic() - start < 60
        assert rcode(ask(server.port, "udp.still.works.")) == "NOERROR"
    finally:
        for s in idle:
            s.close()


@pytest.mark.slow
def test_a_client_that_never_reads_is_closed(kdns: Callable[..., KdnsProcess]) -> None:
    """The client keeps sending (so it is never idle) but never reads: once its replies cannot be
    delivered for the write timeout (`timeouts { write }`), the server closes the connection, and
    counts it."""
    m = free_port()
    server = kdns(
        ".:{port} {\n bind 127.0.0.1\n timeouts {\n  write 2s\n }\n"
        f" prometheus 127.0.0.1:{m}\n whoami\n}}\n"
    )
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", server.port))
    s.settimeout(1.0)
    give_up = time.monotonic() + 60  # filling the socket buffers takes most of it
    closed = False
    with s:
        sent = 0
        while time.monotonic() < give_up and not closed:
            q = dns.message.make_query(f"q{sent}.example.", "A").to_wire()
            try:
                s.send(struct.pack("!H", len(q)) + q)
                sent += 1
            except TimeoutError:
                pass  # the server stopped reading us (back-pressure): keep trying
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            # Meanwhile everyone else is served.
            if sent == 1000:
                assert rcode(ask(server.port, "other.client.", tcp=True)) == "NOERROR"
    assert closed, f"still open after {sent} queries never read"
    assert rcode(ask(server.port, "after.example.", tcp=True)) == "NOERROR"
    samples = scrape(f"http://127.0.0.1:{m}/metrics")[1]
    label = {"server": f"dns://127.0.0.1:{server.port}", "reason": "slow_reader"}
    assert value(samples, "kdns_tcp_connections_closed_total", **label) == 1
