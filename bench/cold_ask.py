"""The in-process cost of a cold ask: kdns's server built in this process from a Corefile, and each
distinct question of a dnsperf file asked once (cold: nothing answered it before) and then once
more (warm), timing the server's CPU per question around the call that turns query bytes into
reply bytes. No sockets, no client: what remains is kdns's own work per question.

Run by bench/churn.py with the kdns under test on PYTHONPATH (its --kdns-root), by path and with
`python -P` so that nothing of bench/ shadows a module kdns imports:

    PYTHONPATH=KDNS_ROOT python -P bench/cold_ask.py --corefile C --queries Q --out samples.json

It imports only kdns and dnspython; `start_server` is the one function that knows kdns's internals.
Writes per-question CPU and wall nanoseconds (cold and warm) and the reply rcodes to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import dns.message

Answer = Callable[[bytes], Awaitable[bytes | None]]


async def start_server(corefile: Path, port: int) -> tuple[Answer, Callable[[], Awaitable[None]]]:
    """kdns's server from `corefile`, as `python -m kdns` starts it (plugins started, kubernetes
    synced), and how one UDP query's bytes become the reply's bytes there: the fast path's replay
    when it has the question, else the dispatcher (what a listener does per datagram). Returns
    that, and the server's shutdown."""
    from kdns.corefile import parse_file
    from kdns.server.runtime import Runtime

    try:  # since issue #12 the CLI hands the Runtime its plan builder (kdns/server/ names no plugin)
        from kdns.plan import build_plan
    except ImportError:
        runtime = Runtime(str(corefile), port)  # type: ignore[arg-type]  # an older checkout
    else:
        runtime = Runtime(str(corefile), build_plan, port)
    await runtime.start(parse_file(str(corefile)))
    dispatcher = next(iter(runtime.listeners.values())).slot.dispatcher
    client = ("127.0.0.1", 53000)

    async def answer(wire: bytes) -> bytes | None:
        replay = dispatcher.fast_reply(wire, "udp", client)
        return replay if replay is not None else await dispatcher.handle(wire, "udp", client)

    return answer, runtime.shutdown


def distinct_questions(path: Path) -> list[tuple[str, str]]:
    """The file's (name, qtype) lines, each once, in first-seen order."""
    lines = (line.split() for line in path.read_text().splitlines())
    return list(dict.fromkeys((parts[0], parts[1]) for parts in lines if len(parts) == 2))


async def measure(corefile: Path, queries: Path, port: int) -> dict[str, object]:
    t0 = time.monotonic()
    answer, shutdown = await start_server(corefile, port)
    started = time.monotonic() - t0
    questions = distinct_questions(queries)
    wires = [
        dns.message.make_query(name, qtype, use_edns=-1, id=i & 0xFFFF).to_wire()
        for i, (name, qtype) in enumerate(questions)
    ]
    out: dict[str, object] = {"questions": len(questions), "start_seconds": started}
    for label in ("cold", "warm"):
        cpu: list[int] = []
        wall: list[int] = []
        rcodes: Counter[int] = Counter()
        for wire in wires:
            c0, w0 = time.process_time_ns(), time.perf_counter_ns()
            reply = await answer(wire)
            cpu.append(time.process_time_ns() - c0)
            wall.append(time.perf_counter_ns() - w0)
            rcodes[reply[3] & 0x0F if reply and len(reply) >= 12 else -1] += 1
        out[label] = {"cpu_ns": cpu, "wall_ns": wall, "rcodes": dict(rcodes)}
    await shutdown()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/cold_ask.py", description=__doc__.split("\n")[0])
    ap.add_argument("--corefile", type=Path, required=True)
    ap.add_argument("--queries", type=Path, required=True)
    ap.add_argument("--port", type=int, default=0, help="the server's default port (listeners open)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    result = asyncio.run(measure(args.corefile, args.queries, args.port))
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
