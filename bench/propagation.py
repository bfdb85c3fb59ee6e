"""Propagation latency: from a write to the API server to the changed DNS answer (issue #3).

One command, from the checkout root: `.venv/bin/python -m bench.propagation` (options: --help).

The test API server (tests/support/apiserver.py) runs in a child process with a writer that, at a
fixed rate (1, 100, 1000 events/s by default, ~10 s each), updates one object per event: either a
Service's ClusterIP (`--kinds service`) or the only endpoint of a headless Service's EndpointSlice
(`--kinds slice`, the common case: pods coming and going). Each event gets a fresh address that
encodes its number. kdns, a subprocess on loopback following that API server, is asked for the
changed name every --interval (1 ms) from the moment the write returned, until the answer holds the
event's address or a later one of the same name; the latency is the time from just before the write
to the reply that showed it. An event whose answer does not show up within --timeout is lost.

The measurement over-estimates by up to one poll interval plus one query's round trip (~1.3 ms).
kdns is pinned to one CPU, the API server and the prober to the other (taskset / sched_setaffinity),
as bench/run.py does; on a shared machine the tail is noisy, so look at p99 over several runs.
Separate processes on purpose: a prober thread beside the API server would share its GIL, and the
GIL's 5 ms switch interval is the size of what we measure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import multiprocessing as mp
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import dns.message
import dns.rdatatype

from bench.profile import profile_summary, py_spy
from bench.servers import Proc, cpu_seconds, start_kdns
from tests.support import objects as o
from tests.support.ports import free_port

NS = "bench"
ZONE = "cluster.local."
COREFILE = """\
.:{port} {{
    bind 127.0.0.1
    kubernetes {zone} {{
        endpoint {api}
    }}
}}
"""
TARGET = (100, 10.0)  # issue #3: p99 ≤ 10 ms at 100 events/s


def event_ip(i: int) -> str:
    """Event i's address; 10.100.0.0 upwards, so the answer tells which event it shows."""
    return f"10.{100 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"


def event_of(ip: str) -> int:
    """The event number an address encodes; -1 for the addresses objects start with."""
    a, b, c, d = (int(x) for x in ip.split("."))
    return ((b - 100) << 16 | c << 8 | d) if a == 10 and b >= 100 else -1


def qname(kind: str, j: int) -> str:
    return f"{'p' if kind == 'service' else 'h'}-{j}.{NS}.svc.{ZONE}"


def initial_objects(pool: int) -> list[dict[str, Any]]:
    objs = [o.namespace(NS)]
    for j in range(pool):
        objs.append(o.service(f"p-{j}", NS, ips=[f"10.99.{j >> 8}.{j & 255}"], ports=[o.port("http", 80)]))
        objs.append(o.headless(f"h-{j}", NS, ports=[o.port("http", 80)]))
        objs.append(_slice(j, f"10.98.{j >> 8}.{j & 255}"))
    return objs


def _slice(j: int, ip: str) -> dict[str, Any]:
    return o.endpoint_slice(f"h-{j}-1", f"h-{j}", NS, endpoints=[o.endpoint(ip)], ports=[o.port("http", 80)])


def event_object(kind: str, j: int, i: int) -> dict[str, Any]:
    if kind == "service":
        return o.service(f"p-{j}", NS, ips=[event_ip(i)], ports=[o.port("http", 80)])
    return _slice(j, event_ip(i))


def pool_size(rate: float) -> int:
    """Names in rotation: each name changes at most about once a second."""
    return max(10, int(rate))


# -- the API side: a child process ---------------------------------------------------------------


def api_main(conn: Connection, port: int, pool: int) -> None:
    """Serve the API on `port`; on ("run", kind, rate, seconds, first) write events at `rate`,
    sending (i, j, t0) after each write and "done" at the end; "stop" ends the process."""
    from tests.support.apiserver import ApiServer

    api = ApiServer(port=port)
    api.start()
    for obj in initial_objects(pool):
        api.add(obj)
    gc.collect()
    gc.freeze()  # the preloaded objects never die: keep them out of the collector's way
    conn.send("ready")
    while (msg := conn.recv()) != "stop":
        _, kind, rate, seconds, first = msg
        n, names = int(rate * seconds), pool_size(rate)
        t_start = time.monotonic() + 0.05
        for k in range(n):
            delay = t_start + k / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            t0 = time.monotonic()
            api.update(event_object(kind, k % names, first + k))
            conn.send((first + k, k % names, t0))
        conn.send("done")
    api.stop()


# -- the DNS side ----------------------------------------------------------------------------------


class Client(asyncio.DatagramProtocol):
    """UDP queries to kdns with replies matched by id; many in flight at once. The prober shares a
    CPU with the API server, so it stays cheap: prebuilt query bytes, no per-query task."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.waiting: dict[int, asyncio.Future[tuple[bytes, float]]] = {}
        self._next = 0
        self._wire: dict[str, bytes] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a datagram transport, typed as Transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        fut = self.waiting.pop(int.from_bytes(data[:2], "big"), None)
        if fut is not None and not fut.done():
            fut.set_result((data, time.monotonic()))

    def send(self, name: str) -> asyncio.Future[tuple[bytes, float]]:
        """Ask `name` A; the future gets (reply bytes, arrival time)."""
        wire = self._wire.get(name)
        if wire is None:
            wire = self._wire[name] = dns.message.make_query(name, "A", use_edns=-1).to_wire()
        while self._next in self.waiting:
            self._next = (self._next + 1) & 0xFFFF
        qid, self._next = self._next, (self._next + 1) & 0xFFFF
        fut: asyncio.Future[tuple[bytes, float]] = asyncio.get_running_loop().create_future()
        self.waiting[qid] = fut
        assert self.transport is not None
        self.transport.sendto(qid.to_bytes(2, "big") + wire[2:])
        return fut

    async def ask_all(self, names: list[str], timeout: float = 1.0) -> list[tuple[bytes | None, float]]:
        """Ask every name at once; (None, now) for those without a reply within `timeout`."""
        futs = [self.send(n) for n in names]
        if futs:
            await asyncio.wait(futs, timeout=timeout)
        out: list[tuple[bytes | None, float]] = []
        for fut in futs:
            if fut.done():
                out.append(fut.result())
            else:
                fut.cancel()
                out.append((None, time.monotonic()))
        self.waiting = {qid: f for qid, f in self.waiting.items() if not f.done()}
        return out


def shown_event(reply: bytes | None) -> int:
    """The newest event an A reply shows (-2: no reply or no address)."""
    if reply is None or len(reply) < 12 or reply[3] & 0x0F:
        return -2
    if reply[6:12] == b"\x00\x01\x00\x00\x00\x00":  # one answer RR, nothing else: the address ends it
        return event_of(".".join(str(b) for b in reply[-4:]))
    msg = dns.message.from_wire(reply)
    ips = [rd.address for rrset in msg.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset]
    return max((event_of(ip) for ip in ips), default=-2)


@dataclass
class Phase:
    kind: str
    rate: float
    latencies: list[float] = field(default_factory=list)  # seconds
    lost: int = 0
    written: float = 0.0  # achieved write rate
    starved: int = 0  # poll rounds that had more changed names waiting than --budget
    cpu: float = 0.0  # kdns's CPU use during the phase, in % of one core (probing included)

    def pct(self, p: float) -> float:
        """Nearest-rank percentile in ms."""
        s = sorted(self.latencies)
        return s[max(0, math.ceil(len(s) * p / 100) - 1)] * 1000 if s else float("nan")


async def measure(
    conn: Connection,
    port: int,
    kind: str,
    rate: float,
    seconds: float,
    first: int,
    interval: float,
    timeout: float,
    budget: int,
) -> Phase:
    """One phase: ask the API child to write, and poll the changed names until each event shows.

    Every --interval, the (at most --budget) names with the oldest unseen events are asked once
    each; a reply showing event k settles every pending event ≤ k of that name. The budget keeps
    the probing itself from flooding kdns once it falls behind (then `starved` counts the rounds
    where names waited for a turn, and their latencies include that wait)."""
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
    phase = Phase(kind, rate)
    pending: dict[str, deque[tuple[int, float]]] = {}
    t0s: list[float] = []
    writing = True

    def on_message() -> None:
        nonlocal writing
        while conn.poll():
            msg = conn.recv()
            if msg == "done":
                writing = False
                continue
            i, j, t0 = msg
            t0s.append(t0)
            pending.setdefault(qname(kind, j), deque()).append((i, t0))

    loop.add_reader(conn.fileno(), on_message)
    conn.send(("run", kind, rate, seconds, first))
    try:
        while writing or pending:
            oldest = sorted(pending, key=lambda n: pending[n][0][1])
            phase.starved += len(oldest) > budget
            names = oldest[:budget]
            replies = await client.ask_all(names)
            for name, (reply, t_rx) in zip(names, replies, strict=True):
                shown, events = shown_event(reply), pending[name]
                while events and events[0][0] <= shown:
                    phase.latencies.append(t_rx - events.popleft()[1])
            now = time.monotonic()
            for name in list(pending):
                events = pending[name]
                while events and now - events[0][1] > timeout:
                    events.popleft()
                    phase.lost += 1
                if not events:
                    del pending[name]
            await asyncio.sleep(interval)
        if phase.lost:  # kdns fell behind: let it catch up, so the backlog does not spill into the next phase
            last = first + len(t0s) - 1
            deadline = time.monotonic() + 120
            while (
                shown_event((await client.ask_all([qname(kind, (len(t0s) - 1) % pool_size(rate))]))[0][0])
                < last
            ):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"kdns never showed event {last}")
                await asyncio.sleep(0.1)
    finally:
        loop.remove_reader(conn.fileno())
        transport.close()
    span = t0s[-1] - t0s[0] if len(t0s) > 1 else 0.0
    phase.written = (len(t0s) - 1) / span if span else float(len(t0s))
    return phase


def wait_synced(kd: Proc, port: int, pool: int, timeout: float = 120.0) -> None:
    """Until the last preloaded objects answer: the initial list is in."""
    loop = asyncio.new_event_loop()

    async def check() -> bool:
        transport, client = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
        try:
            replies = await client.ask_all([qname(kind, pool - 1) for kind in ("service", "slice")], 0.5)
            return all(shown_event(reply) == -1 for reply, _ in replies)
        finally:
            transport.close()

    deadline = time.monotonic() + timeout
    try:
        while not loop.run_until_complete(check()):
            kd.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"kdns did not sync within {timeout}s:\n{kd.tail()}")
            time.sleep(0.1)
    finally:
        loop.close()


@contextlib.contextmanager
def profiling(pid: int, seconds: float, raw: Path) -> Iterator[None]:
    """py-spy on kdns for `seconds` while the body runs."""
    spy = subprocess.Popen(
        [
            py_spy(),
            "record",
            "-p",
            str(pid),
            "-d",
            str(max(1, int(seconds))),
            "-r",
            "250",
            "-f",
            "raw",
            "-o",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.wait(seconds + 30)


def table(phases: list[Phase]) -> str:
    rows = ["kind     events/s  written/s  events   lost   p50 ms   p99 ms   max ms  starved  kdns CPU"]
    for p in phases:
        rows.append(
            f"{p.kind:<8} {p.rate:>8g} {p.written:>10.0f} {len(p.latencies) + p.lost:>7} {p.lost:>6}"
            f" {p.pct(50):>8.2f} {p.pct(99):>8.2f} {max(p.latencies, default=float('nan')) * 1000:>8.2f}"
            f" {p.starved:>8} {p.cpu:>8.0f}%"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.propagation", description=__doc__.split("\n")[0])
    ap.add_argument("--rates", default="1,100,1000", help="events per second, comma-separated")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    ap.add_argument("--kinds", default="slice,service", help="what each event changes: slice, service")
    ap.add_argument("--interval", type=float, default=0.001, help="poll interval per event (s)")
    ap.add_argument("--budget", type=int, default=8, help="most names asked per poll round")
    ap.add_argument("--timeout", type=float, default=5.0, help="an event not seen by then is lost (s)")
    ap.add_argument("--kdns-cpu", default="0", help="CPU list for kdns ('' = unpinned)")
    ap.add_argument("--client-cpu", default="1", help="CPU for the API server and prober ('' = unpinned)")
    ap.add_argument("--profile", metavar="KIND:RATE", help="py-spy kdns during that phase, e.g. slice:1000")
    args = ap.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    kinds = args.kinds.split(",")
    pool = max(pool_size(r) for r in rates)
    if args.client_cpu:
        os.sched_setaffinity(0, {int(args.client_cpu)})
    work = Path(tempfile.mkdtemp(prefix="kdns-propagation-"))
    api_port, dns_port = free_port(), free_port()
    ctx = mp.get_context("spawn")
    conn, child_conn = ctx.Pipe()
    api = ctx.Process(target=api_main, args=(child_conn, api_port, pool), daemon=True)
    api.start()
    if not conn.poll(120) or conn.recv() != "ready":
        raise RuntimeError("the test API server did not start")
    corefile = COREFILE.format(port=dns_port, zone=ZONE, api=f"http://127.0.0.1:{api_port}")
    kd = start_kdns(work, corefile, args.kdns_cpu or None)
    phases: list[Phase] = []
    profile = ""
    try:
        wait_synced(kd, dns_port, pool)
        first = 0
        for kind in kinds:
            for rate in rates:
                spy = f"{kind}:{rate:g}" == args.profile
                raw = work / "profile.raw"
                cpu0, t0 = cpu_seconds(kd.pid), time.monotonic()
                with profiling(kd.pid, args.seconds, raw) if spy else contextlib.nullcontext():
                    phase = asyncio.run(
                        measure(
                            conn,
                            dns_port,
                            kind,
                            rate,
                            args.seconds,
                            first,
                            args.interval,
                            args.timeout,
                            args.budget,
                        )
                    )
                phase.cpu = 100 * (cpu_seconds(kd.pid) - cpu0) / (time.monotonic() - t0)
                if spy:
                    profile = profile_summary(raw.read_text())
                phases.append(phase)
                first += int(rate * args.seconds)
                kd.check_alive()
                print(table(phases[-1:]).splitlines()[1], flush=True)
    finally:
        conn.send("stop")
        kd.stop()
        api.join(30)
    print()
    print(
        f"propagation API write → DNS answer, kdns on loopback ({platform.node()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; poll every {args.interval * 1000:g} ms)"
    )
    print(table(phases))
    rate, limit = TARGET
    for p in phases:
        if p.rate == rate:
            verdict = "meets" if p.pct(99) <= limit and not p.lost else "MISSES"
            print(f"target p99 ≤ {limit:g} ms at {rate} events/s ({p.kind}): {p.pct(99):.2f} ms, {verdict}")
    if profile:
        print(f"\npy-spy on kdns during {args.profile} (raw stacks: {work / 'profile.raw'}):\n{profile}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
