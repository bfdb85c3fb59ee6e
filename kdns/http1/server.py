"""A small HTTP/1.1 server for kdns's side listeners: probes, scrapes and explanations.

One handler answers every request with a whole body (no streaming). Connections are kept alive
between requests (RFC 9112 §9.3) unless the client asks otherwise. What a peer cannot do to a
listener kubelet's probes depend on: hold it with a slow or silent connection (each request must
arrive within REQUEST_TIMEOUT, an idle connection closes after it, and a reply must be taken within
WRITE_TIMEOUT), or send a huge head or body (431/413, then close). A request h11 cannot parse gets
400 and the connection closes, as a malformed request must (RFC 9112 §2.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Self
from urllib.parse import parse_qsl, unquote, urlsplit

import h11

from kdns.http1 import close_stream
from kdns.log import core_logger

READ_SIZE = 64 * 1024
#: Largest request head (request line and headers); a probe or a scrape sends a few hundred bytes.
MAX_HEAD = 8 * 1024
#: Largest request body read (and dropped: no handler takes one) before answering 413.
MAX_BODY = 64 * 1024
#: A request must arrive whole within this, and an idle kept-alive connection closes after it.
REQUEST_TIMEOUT = 10.0
#: A client must take the reply within this (a /metrics body is tens of KiB).
WRITE_TIMEOUT = 10.0
#: After an error reply, how long the rest of a bad request is read and dropped before closing.
LINGER_TIMEOUT = 1.0

_log = core_logger()


@dataclass(frozen=True, slots=True)
class Request:
    """What handlers look at: the method, the decoded path, and the query (first value per name)."""

    method: str
    path: str
    query: Mapping[str, str]

    @classmethod
    def parse(cls, method: bytes, target: bytes) -> Self:
        parts = urlsplit(target.decode("ascii", "replace"))  # origin form, or absolute form from a proxy
        query: dict[str, str] = {}
        for name, value in parse_qsl(parts.query, keep_blank_values=True):
            query.setdefault(name, value)
        return cls(method.decode("ascii", "replace"), unquote(parts.path), query)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(cls, text: str, status: int = 200) -> Self:
        return cls(status, text.encode())

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: tuple[tuple[str, str], ...] = ()) -> Self:
        return cls(status, json.dumps(obj).encode(), "application/json; charset=utf-8", headers)


Handler = Callable[[Request], Awaitable[Response]]


class Server:
    """Listens on one address and hands every request to `handler`."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str | None, port: int) -> None:
        """Listen (host None: every address, as Go's ":port"); raises OSError (address in use…)."""
        self._server = await asyncio.start_server(self._connection, host, port, reuse_address=True)

    async def close(self) -> None:
        """Stop listening and drop every connection (a request in flight is not answered)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        clean = False
        try:
            while True:
                try:
                    async with asyncio.timeout(REQUEST_TIMEOUT):
                        request = await _receive(conn, reader)
                except TimeoutError:
                    break  # idle, or too slow to send a request
                except h11.RemoteProtocolError as exc:
                    status = exc.error_status_hint
                    if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                        text = f"{status} {_reason(status)}\n".encode()
                        reply = Response(status, text, headers=(("Connection", "close"),))
                        await _send(conn, writer, "GET", reply)
                        await _linger(reader, writer)
                    break
                if request is None:  # the client closed
                    break
                await _send(conn, writer, request.method, await self._answer(request))
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break  # Connection: close, or HTTP/1.0
                conn.start_next_cycle()
            clean = True
        except (OSError, TimeoutError):
            pass  # the client went away, or does not take its reply
        except h11.LocalProtocolError:  # a handler's reply h11 refuses to send (a bad header…)
            _log.error("HTTP reply not sent", exc_info=True)
        finally:
            self._connections.discard(task)
            await close_stream(writer, clean=clean)

    async def _answer(self, request: Request) -> Response:
        try:
            return await self._handler(request)
        except Exception:
            _log.error("HTTP %s %s failed", request.method, request.path, exc_info=True)
            return Response.text("500 Internal Server Error\n", 500)


async def _receive(conn: h11.Connection, reader: asyncio.StreamReader) -> Request | None:
    """The next request, read whole (a body is dropped); None when the client closed first."""
    request: Request | None = None
    size = 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(READ_SIZE))
        elif isinstance(event, h11.Request):
            request = Request.parse(event.method, event.target)
        elif isinstance(event, h11.Data):
            size += len(event.data)
            if size > MAX_BODY:
                raise h11.RemoteProtocolError("request body too large", error_status_hint=413)
        elif isinstance(event, h11.EndOfMessage):
            assert request is not None
            return request
        elif isinstance(event, h11.ConnectionClosed):
            return None


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Close in stages after an error reply (RFC 9112 §9.6): half-close, then drop what the client
    still sends for a moment, so unread bytes do not turn the close into a reset that loses the reply."""
    writer.write_eof()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(LINGER_TIMEOUT):
            while await reader.read(READ_SIZE):
                pass


async def _send(conn: h11.Connection, writer: asyncio.StreamWriter, method: str, response: Response) -> None:
    """Send a whole reply (no body for HEAD: RFC 9110 §9.3.2)."""
    headers = [
        ("Content-Type", response.content_type),
        ("Content-Length", str(len(response.body))),
        *response.headers,
    ]
    events: list[h11.Event] = [
        h11.Response(status_code=response.status, headers=headers, reason=_reason(response.status))
    ]
    if method != "HEAD" and response.body:
        events.append(h11.Data(data=response.body))
    events.append(h11.EndOfMessage())
    data = b"".join(conn.send(event) or b"" for event in events)
    async with asyncio.timeout(WRITE_TIMEOUT):
        writer.write(data)
        await writer.drain()


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
