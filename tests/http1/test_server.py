"""kdns.http1.server on a real loopback socket, spoken to with raw bytes: keep-alive, close, bad
requests, limits, the read timeout, handler failures, and shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from kdns.http1 import server as http_server
from kdns.http1.server import Request, Response, Server
from tests.support.ports import free_port

seen: list[Request] = []


async def handler(request: Request) -> Response:
    seen.append(request)
    if request.path == "/boom":
        raise RuntimeError("handler bug")
    return Response.text(f"{request.method} {request.path}")


@pytest.fixture
async def port() -> AsyncIterator[int]:
    seen.clear()
    server, port = Server(handler), free_port()
    await server.start("127.0.0.1", port)
    yield port
    await server.close()


async def exchange(port: int, data: bytes) -> bytes:
    """Send `data`, then read until the server closes (bounded: a server that never closes fails)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def get(path: str, *headers: str, version: str = "1.1") -> bytes:
    lines = [f"GET {path} HTTP/{version}", "Host: x", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_keep_alive_until_the_client_asks_to_close(port: int) -> None:
    out = await exchange(port, get("/a") + get("/b?x=1") + get("/c", "Connection: close") + get("/never"))
    assert out.count(b"HTTP/1.1 200 OK\r\n") == 3 and out.endswith(b"GET /c")
    assert [r.path for r in seen] == ["/a", "/b", "/c"]  # nothing read after Connection: close
    assert (await exchange(port, get("/old", version="1.0"))).endswith(b"GET /old")  # 1.0: closes


async def test_query_path_and_head(port: int) -> None:
    await exchange(port, get("/p%20q?name=web&name=db&empty=&plus=a+b", "Connection: close"))
    assert seen[0] == Request("GET", "/p q", {"name": "web", "empty": "", "plus": "a b"})
    out = await exchange(port, b"HEAD /h HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"Content-Length: 7\r\n" in out and out.endswith(b"\r\n\r\n")  # length of GET's body, no body


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", b"400 Bad Request"),
        (b"GET / HTTP/1.1\r\n\r\n", b"400 Bad Request"),  # HTTP/1.1 without Host (RFC 9112 §3.2)
        (  # h11 bounds the head it buffers: a head still unfinished past MAX_HEAD
            get("/", "X-Big: " + "a" * (http_server.READ_SIZE + http_server.MAX_HEAD)),
            b"431 Request Header Fields Too Large",
        ),
        (
            b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (http_server.MAX_BODY + 1)
            + b"a" * (http_server.MAX_BODY + 1),
            b"413 Request Entity Too Large",
        ),
    ],
)
async def test_bad_requests_are_answered_then_closed(port: int, request_bytes: bytes, status: bytes) -> None:
    out = await exchange(port, request_bytes + get("/after"))
    assert out.startswith(b"HTTP/1.1 " + status) and b"connection: close" in out.lower()
    assert not any(r.path == "/after" for r in seen)


async def test_a_failing_handler_is_a_500_and_the_connection_goes_on(port: int) -> None:
    out = await exchange(port, get("/boom") + get("/ok", "Connection: close"))
    assert out.startswith(b"HTTP/1.1 500 Internal Server Error") and out.endswith(b"GET /ok")


async def test_silent_and_slow_clients_are_dropped(port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_server, "REQUEST_TIMEOUT", 0.2)
    assert await exchange(port, b"") == b""  # connected, said nothing: closed
    assert await exchange(port, b"GET /slow HTTP/1.1\r\nHost: x\r\n") == b""  # head never finished
    out = await exchange(port, get("/idle"))  # answered, then idle on a kept-alive connection
    assert out.endswith(b"GET /idle")


async def test_close_drops_kept_alive_connections() -> None:
    server, port = Server(handler), free_port()
    await server.start("127.0.0.1", port)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(get("/a"))
    assert (await reader.readuntil(b"GET /a")).startswith(b"HTTP/1.1 200")
    await server.close()
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)
