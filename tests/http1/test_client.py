"""kdns.http1.client against raw loopback servers that answer with scripted bytes: body framings,
early closes, timeouts, and proxies (CONNECT tunnels and absolute-form requests)."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from kdns.http1 import client as http
from tests.support import objects as o
from tests.support.apiserver import ApiServer
from tests.support.ports import free_port
from tests.support.proxy import ForwardProxy

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Raw = Callable[[Script], Awaitable["RawServer"]]


class RawServer:
    """Answers each connection with `script`; records each request head it read."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.heads: list[bytes] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.heads.append(await reader.readuntil(b"\r\n\r\n"))
        try:
            await self.script(reader, writer)
        finally:
            writer.close()


@pytest.fixture
async def raw() -> AsyncIterator[Raw]:
    servers: list[asyncio.Server] = []

    async def start(script: Script) -> RawServer:
        raw = RawServer(script)
        servers.append(await asyncio.start_server(raw._serve, "127.0.0.1", raw.port))
        return raw

    yield start
    for server in servers:
        server.close()


def replying(data: bytes, *, hang: bool = False) -> Script:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        if hang:  # until the client gives up
            await reader.read()

    return script


async def fetch(
    url: str,
    *,
    read_timeout: float = 5.0,
    ssl_context: ssl.SSLContext | None = None,
    proxy: http.Proxy | None = None,
) -> tuple[int, dict[str, str], bytes]:
    async with http.get(
        url, connect_timeout=5, read_timeout=read_timeout, ssl_context=ssl_context, proxy=proxy
    ) as r:
        return r.status, r.headers, await r.read()


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nRetry-After: 3\r\n\r\nhello world",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nRetry-After: 3\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nRetry-After: 3\r\nConnection: close\r\n\r\nhello world",
    ],
    ids=["content-length", "chunked", "until-close-after-100"],
)
async def test_body_framings(raw: Raw, reply: bytes) -> None:
    server = await raw(replying(reply))
    status, headers, body = await fetch(server.url + "/p?q=1")
    assert (status, headers["retry-after"], body) == (200, "3", b"hello world")
    head = server.heads[0].decode()
    assert head.startswith("GET /p?q=1 HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{server.port}\r\n" in head.lower() and "connection: close" in head.lower()
    assert "accept-encoding" not in head.lower()  # bodies come unencoded


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"", "connection closed before the response ended"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf", "connection closed before the response ended"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "incomplete chunked read"),
        (b"NOT HTTP AT ALL\r\n\r\n", "illegal status line"),
    ],
)
async def test_broken_responses_are_http_errors(raw: Raw, reply: bytes, error: str) -> None:
    server = await raw(replying(reply))
    with pytest.raises(http.HttpError, match=error):
        await fetch(server.url)


async def test_read_timeout_bounds_each_wait(raw: Raw) -> None:
    silent = await raw(replying(b"", hang=True))
    with pytest.raises(TimeoutError):
        await fetch(silent.url, read_timeout=0.2)
    stalled = await raw(
        replying(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n", hang=True)
    )
    async with http.get(stalled.url, connect_timeout=5, read_timeout=0.2) as r:
        assert await r.read_chunk() == b"ab"
        with pytest.raises(TimeoutError):
            await r.read_chunk()


async def test_tls_handshake_that_never_ends_is_a_connect_timeout() -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # the ClientHello, then nothing until the client gives up

    port = free_port()
    server = await asyncio.start_server(mute, "127.0.0.1", port)
    try:
        with pytest.raises(http.HttpError, match=f"connect to 127.0.0.1:{port}: timed out after 0.2s"):
            async with http.get(f"https://127.0.0.1:{port}/", connect_timeout=0.2, read_timeout=5):
                pass
    finally:
        server.close()


@pytest.fixture
async def proxy() -> AsyncIterator[ForwardProxy]:
    async with ForwardProxy() as p:
        yield p


async def test_https_through_a_connect_tunnel(tmp_path: Path, proxy: ForwardProxy) -> None:
    with ApiServer(tls=True, workdir=tmp_path) as api:
        api.add(o.service("web"))
        ctx = ssl.create_default_context(cafile=str(api.ca_path))
        via = http.Proxy.parse(f"http://user:p%40ss@127.0.0.1:{proxy.port}")
        status, _, body = await fetch(api.url + "/api/v1/services", ssl_context=ctx, proxy=via)
    assert status == 200 and b'"web"' in body
    credentials = base64.b64encode(b"user:p@ss").decode()
    assert proxy.heads[0].startswith(f"CONNECT 127.0.0.1:{api.port} HTTP/1.1\r\n")
    assert f"Proxy-Authorization: Basic {credentials}\r\n" in proxy.heads[0]


async def test_http_through_a_proxy_in_absolute_form(tmp_path: Path, proxy: ForwardProxy) -> None:
    with ApiServer(workdir=tmp_path) as api:
        api.add(o.service("web"))
        via = http.Proxy.parse(f"http://127.0.0.1:{proxy.port}")
        status, _, body = await fetch(api.url + "/api/v1/services", proxy=via)
    assert status == 200 and b'"web"' in body
    assert proxy.heads[0].startswith(f"GET {api.url}/api/v1/services HTTP/1.1\r\n")


def test_proxy_and_url_errors() -> None:
    for bad in ("https://127.0.0.1:3128", "socks5://127.0.0.1:1080", "127.0.0.1:3128"):
        with pytest.raises(ValueError):
            http.Proxy.parse(bad)
    with pytest.raises(ValueError):
        http.Origin.split("http://127.0.0.1:99999")
