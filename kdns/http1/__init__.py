"""HTTP/1.1 over asyncio streams, the protocol done by h11 (RFC 9112): kdns's own small client (the
Kubernetes API, health's self-probe) and server (health, ready, metrics, explain).

h11 is sans-IO: it turns bytes into events and back, and leaves sockets, TLS and timeouts to us,
which asyncio's streams provide. It replaces aiohttp, whose import alone cost the process about
11 MiB of RSS.
"""

from __future__ import annotations

import asyncio

#: How long closing may wait for the peer (TLS close_notify) before the socket is simply dropped.
CLOSE_TIMEOUT = 1.0


async def close_stream(writer: asyncio.StreamWriter, *, clean: bool) -> None:
    """Close a connection: politely (TLS close_notify) after a complete exchange, else at once."""
    if clean:
        writer.close()
    else:
        writer.transport.abort()
    try:
        await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT)
    except TimeoutError:
        writer.transport.abort()  # the peer takes neither the rest of the data nor the close
    except OSError:
        pass  # the connection broke first: closed all the same
