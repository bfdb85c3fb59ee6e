"""Hostile TCP clients against the real process (RFC 7766): each has a defined outcome, and a
well-formed query right after it (over UDP and over a new TCP connection) is answered correctly.

- a length prefix larger than what follows: no reply; the connection is closed when the client
  closes its side, or after READ_TIMEOUT (the first query's deadline) when it keeps it open;
- bytes dribbled one a second (slowloris): the server closes the connection before the message is
  complete, so a dribbler holds a connection for a bounded time;
- thousands of idle connections: the server holds at most MAX_CONNECTIONS of them (file
  descriptors stay bounded) and keeps answering;
- 10,000 pipelined queries on one connection: every one answered, in any order (§6.2.1.1), none lost;
- empty frames and responses inside a connection: no reply, and the connection goes on serving.
(A client that never reads its replies: tests/server/test_tcp_limits.py.)
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from kdns.server.limits import LISTENER_DEFAULTS
from tests.server.test_hostile_packets import COREFILE, SERVICE_IP, WEB, assert_serves, serving
from tests.support.process import KdnsProcess
from tests.support.rawdns import assert_reply, frame, header, question, rcode_of, read_frame, wire_name

READ_TIMEOUT = LISTENER_DEFAULTS.read_timeout  # a connection's first query arrives within it
MAX_CONNECTIONS = LISTENER_DEFAULTS.tcp_connections

NOERROR, NXDOMAIN = 0, 3
Kdns = Callable[..., KdnsProcess]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KdnsProcess]:
    yield from serving(tmp_path_factory)


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def closed_by_server(s: socket.socket, within: float) -> bool:
    """Does the server close `s` (EOF or reset) within `within` seconds, sending nothing?"""
    s.settimeout(within)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def good_query(qid: int) -> bytes:
    return header(qid) + question(WEB)


def test_length_prefix_larger_than_the_message_then_half_close(server: KdnsProcess) -> None:
    with connect(server.port) as s:
        s.sendall(struct.pack("!H", 200) + good_query(0xB001))  # 200 promised, 47 sent
        s.shutdown(socket.SHUT_WR)
        assert closed_by_server(s, within=5), "no reply, and the connection must end"
    assert_serves(server.port)


@pytest.mark.slow
def test_length_prefix_larger_than_the_message_held_open(server: KdnsProcess) -> None:
    with connect(server.port) as s:
        s.sendall(struct.pack("!H", 200) + good_query(0xB002))
        assert_serves(server.port)  # meanwhile, everyone else is served
        assert closed_by_server(s, within=READ_TIMEOUT + 5), "a stalled message holds the connection"
    assert_serves(server.port)


@pytest.mark.slow
def test_slowloris_dribbling_one_byte_a_second_is_cut_off(server: KdnsProcess) -> None:
    """A 60-octet message at one octet a second would take a minute; the server gives a message
    READ_TIMEOUT to arrive, so the connection ends first."""
    name = wire_name(b"slow" * 3, b"default", b"svc", b"cluster", b"local")
    message = frame(header(0xB003) + question(name))
    assert len(message) > 2 * READ_TIMEOUT + 10
    with connect(server.port) as s:
        sent = 0
        closed = False
        while sent < len(message) and not closed:
            try:
                s.sendall(message[sent : sent + 1])
                sent += 1
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            closed = closed_by_server(s, within=1.0)
            if sent == 5:
                assert_serves(server.port)  # the dribbler holds nobody else up
        assert closed, f"the server took all {sent} octets dribbled over {sent} s"
        assert sent < len(message)
    assert_serves(server.port)


def hold_idle(port: int, count: int) -> list[socket.socket]:
    """`count` connections that never send, once the server has had time to accept them."""
    idle = [connect(port) for _ in range(count)]
    time.sleep(1.0)
    return idle


@pytest.mark.slow
def test_thousands_of_idle_connections(kdns: Kdns) -> None:
    """3 × MAX_CONNECTIONS connections that never send: new clients are still answered, and the
    server's open descriptors stay near MAX_CONNECTIONS (it closes the longest idle)."""
    k = kdns(COREFILE)
    assert k.proc is not None
    idle = hold_idle(k.port, 3 * MAX_CONNECTIONS)
    try:
        descriptors = len(os.listdir(f"/proc/{k.proc.pid}/fd"))
        assert descriptors < MAX_CONNECTIONS + 100, f"{descriptors} descriptors open"
        for i in range(10):
            with connect(k.port) as s:
                s.sendall(frame(good_query(0xB100 + i)))
                assert_reply(read_frame(s), 0xB100 + i, NOERROR)
        assert_serves(k.port)
    finally:
        for s in idle:
            s.close()
    assert_serves(k.port)


@pytest.mark.slow
def test_evicting_idle_connections_logs_no_traceback(kdns: Kdns) -> None:
    k = kdns(COREFILE)
    idle = hold_idle(k.port, MAX_CONNECTIONS + 20)
    try:
        assert_serves(k.port)
    finally:
        for s in idle:
            s.close()
    assert "Traceback" not in k.logs()


@pytest.mark.slow
def test_ten_thousand_pipelined_queries_on_one_connection(server: KdnsProcess) -> None:
    """Sent without waiting, read as they come: every ID answered once, with the right answer —
    the Service's address, or NXDOMAIN for a name that does not exist (a third of them, each
    different, so they go through the plugin chain rather than the fast path)."""
    count = 10_000
    expect: dict[int, int] = {}
    queries = []
    for qid in range(count):
        if qid % 3:
            queries.append(frame(good_query(qid)))
            expect[qid] = NOERROR
        else:
            name = wire_name(f"n{qid}".encode(), b"default", b"svc", b"cluster", b"local")
            queries.append(frame(header(qid) + question(name)))
            expect[qid] = NXDOMAIN
    with connect(server.port, timeout=30) as s:
        sender = threading.Thread(target=s.sendall, args=(b"".join(queries),), daemon=True)
        sender.start()
        seen: dict[int, int] = {}
        while len(seen) < count:
            reply = read_frame(s)
            assert reply is not None, f"connection ended after {len(seen)} of {count} replies"
            qid = struct.unpack_from("!H", reply)[0]
            assert qid not in seen, f"ID {qid} answered twice"
            seen[qid] = rcode_of(reply)
            if expect[qid] == NOERROR:
                assert reply.endswith(bytes(map(int, SERVICE_IP.split(".")))), "not the Service's address"
        sender.join(10)
    assert seen == expect
    assert_serves(server.port)


def test_empty_frames_and_responses_get_no_reply_and_the_connection_serves_on(server: KdnsProcess) -> None:
    response = bytearray(good_query(0xB201))
    response[2] |= 0x80
    with connect(server.port) as s:
        s.sendall(frame(b"") + frame(b"\x00" * 5) + frame(bytes(response)) + frame(good_query(0xB202)))
        assert_reply(read_frame(s), 0xB202, NOERROR)
    assert_serves(server.port)

