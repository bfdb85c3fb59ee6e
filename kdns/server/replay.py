"""The template table in pure Python: what kdns/server/_hotpath.c does, for when the extension is not
built (a source checkout without a compiler, PyPy). Same keys, same validity, same bytes; the test
suite runs its byte-equality tests against both. About ten times slower per packet, which is why
the C one exists (bench/README.md).
"""

from __future__ import annotations

import contextlib
import errno
import random
import socket
import struct
import time
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from kdns.server.limits import Limits

_HEADER = 12
_CLASSIC_UDP, _MIN_UDP, _TCP_MAX = 512, 512, 65535  # RFC 1035 §4.2.1, RFC 6891 §6.2.3, RFC 1035 §4.2.2
_TYPE_OPT = 41
_FLAGS_FROM_QUERY = 0x0110  # RD and CD
_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")


def question(data: bytes, tcp: bool) -> tuple[int, int, int] | None:
    """(question end, the client's size limit, shape) of a plain query, as the C parse_question."""
    n = len(data)
    if n < _HEADER + 5:
        return None
    flags, qd, an, ns, ar = struct.unpack_from("!HHHHH", data, 2)
    if flags & 0xF800 or qd != 1 or an or ns or ar > 1:
        return None
    i = _HEADER
    while i < n and data[i] != 0:
        if data[i] > 63:
            return None
        i += data[i] + 1
    if i >= n or i - _HEADER + 1 > 255:
        return None
    end = i + 5
    if end > n:
        return None
    shape = (4 if flags & 0x0020 else 0) | (8 if flags & 0x0010 else 0)
    limit = _TCP_MAX if tcp else _CLASSIC_UDP
    if ar:
        if n < end + 11 or data[end] != 0:
            return None
        rtype, size, _, version, do, rdlen = struct.unpack_from("!HHBBBxH", data, end + 1)
        if rtype != _TYPE_OPT or version != 0 or end + 11 + rdlen != n:
            return None
        option = end + 11  # each option fits the OPT exactly, else the full reader's FORMERR
        while option + 4 <= n:
            option += 4 + struct.unpack_from("!H", data, option + 2)[0]
        if option != n:
            return None
        shape |= 2 if do & 0x80 else 1
        if not tcp:
            limit = max(size, _MIN_UDP)
    elif end != n:
        return None
    return end, limit, shape


def _ttl_offset(rr: bytes) -> int:
    i = 0
    while i < len(rr):
        if rr[i] == 0:
            return i + 5
        if rr[i] & 0xC0 == 0xC0:
            return i + 6
        i += rr[i] + 1
    raise ValueError("a group holds resource records as bytes")


@dataclass(slots=True)
class _Entry:
    head: bytes
    parts: tuple[Any, ...]
    length: int
    serial_at: int
    serial_source: Any
    deps: tuple[tuple[dict[Any, Any], Any, Any], ...]
    stored: float
    lifetime: int
    ttl_at: tuple[int, ...]
    spelling: bytes | None
    only_limit: int
    slot: int


@dataclass(slots=True)
class _Stats:
    count: list[list[int]] = field(default_factory=lambda: [[0, 0], [0, 0]])
    duration: list[int] = field(default_factory=list)
    duration_sum: float = 0.0
    request: list[list[int]] = field(default_factory=list)
    request_sum: list[float] = field(default_factory=lambda: [0.0, 0.0])
    response: list[list[int]] = field(default_factory=list)
    response_sum: list[float] = field(default_factory=lambda: [0.0, 0.0])


class Table:
    """See kdns/server/_hotpath.pyi for the interface."""

    def __init__(self, limits: Limits, time_bounds: Sequence[float], size_bounds: Sequence[float]) -> None:
        self.limits = limits
        self._time_bounds = tuple(time_bounds)
        self._size_bounds = tuple(size_bounds)
        self._entries: dict[bytes, _Entry] = {}
        self._stats: dict[int, _Stats] = {}
        self._rng = random.Random()

    def __len__(self) -> int:
        return len(self._entries)

    def key(self, data: bytes, tcp: bool) -> bytes | None:
        q = question(data, tcp)
        return None if q is None else data[_HEADER : q[0]].translate(_LOWER) + bytes((q[2],))

    def store(self, key: bytes, template: Any) -> None:
        parts = template.parts
        groups = () if isinstance(parts, bytes) else parts
        for part in groups:
            if not isinstance(part, bytes):
                if not 2 <= len(part) <= self.limits.max_group:
                    raise ValueError(f"a group is a tuple of 2..{self.limits.max_group} records")
                for rr in part:
                    _ttl_offset(rr)
        length = len(parts) if isinstance(parts, bytes) else sum(map(_part_length, parts))
        if len(template.head) != 10 or (template.serial_at >= 0 and template.serial_at > length - 4):
            raise ValueError("head must be 10 bytes, serial_at inside the template")
        if any(not 0 <= at <= length - 4 for at in template.ttl_at):
            raise ValueError("a TTL offset is outside the template")
        if not -1 <= template.lifetime <= 0xFFFFFFFF:  # the TTLs it patches are 32 bits
            raise ValueError("lifetime must be in -1..4294967295")
        if len(self._entries) >= self.limits.max_entries:
            self._entries.clear()
        self._entries[key] = _Entry(
            template.head, (parts,) if isinstance(parts, bytes) else parts, length, template.serial_at,
            template.serial_source if template.serial_at >= 0 else None, template.deps, template.stored,
            template.lifetime, tuple(template.ttl_at), template.spelling, template.only_limit, template.slot,
        )  # fmt: skip

    def answer(self, data: bytes, tcp: bool, ipv6: bool) -> bytes | None:
        start = time.monotonic()
        reply = self._build(data, tcp, _TCP_MAX if tcp else self.limits.max_udp_reply)
        if reply is None:
            return None
        wire, slot = reply
        self._count(slot, tcp, ipv6, len(data), len(wire), time.monotonic() - start)
        return wire

    def _build(self, data: bytes, tcp: bool, cap: int) -> tuple[bytes, int] | None:
        q = question(data, tcp)
        if q is None:
            return None
        end, limit, shape = q
        key = data[_HEADER:end].translate(_LOWER) + bytes((shape,))
        e = self._entries.get(key)
        if e is None:
            return None
        for mapping, dep_key, expected in e.deps:
            if mapping.get(dep_key) is not expected:
                del self._entries[key]
                return None
        # The serial is read here, as the C check_entry does: a source that fails, fails any hit.
        serial = e.serial_source.serial & 0xFFFFFFFF if e.serial_at >= 0 else 0
        remaining = 0
        if e.lifetime >= 0:
            age = time.monotonic() - e.stored
            if not 0 <= age < e.lifetime:  # expired, or a clock that is NaN or in the future
                del self._entries[key]
                return None
            remaining = e.lifetime - int(age)
        total = end + e.length
        if total > limit or total > cap or (e.only_limit and e.only_limit != limit):
            return None
        if e.spelling is not None and e.spelling != data[_HEADER:end]:
            return None
        flags = int.from_bytes(e.head[:2], "big") | (int.from_bytes(data[2:4], "big") & _FLAGS_FROM_QUERY)
        body = bytearray()
        for part in e.parts:
            if isinstance(part, bytes):
                body += part
                continue
            for rr in self._rng.sample(part, len(part)):
                at = len(body) + _ttl_offset(rr)
                body += rr
                if e.lifetime >= 0:
                    body[at : at + 4] = remaining.to_bytes(4, "big")
        if e.serial_at >= 0:
            body[e.serial_at : e.serial_at + 4] = serial.to_bytes(4, "big")
        for at in e.ttl_at:
            body[at : at + 4] = remaining.to_bytes(4, "big")
        head = data[:2] + flags.to_bytes(2, "big") + e.head[2:]
        return head + data[_HEADER:end] + bytes(body), e.slot

    def _count(self, slot: int, tcp: bool, ipv6: bool, request: int, response: int, seconds: float) -> None:
        s = self._stats.get(slot)
        if s is None:
            n_time, n_size = len(self._time_bounds) + 1, len(self._size_bounds) + 1
            s = self._stats[slot] = _Stats(
                duration=[0] * n_time,
                request=[[0] * n_size, [0] * n_size],
                response=[[0] * n_size, [0] * n_size],
            )
        s.count[tcp][ipv6] += 1
        s.duration[bisect_left(self._time_bounds, seconds)] += 1
        s.duration_sum += seconds
        s.request[tcp][bisect_left(self._size_bounds, request)] += 1
        s.request_sum[tcp] += request
        s.response[tcp][bisect_left(self._size_bounds, response)] += 1
        s.response_sum[tcp] += response

    def harvest(self) -> list[Any]:
        out = []
        for slot, s in sorted(self._stats.items()):
            sizes = tuple(
                (tuple(s.request[t]), s.request_sum[t], tuple(s.response[t]), s.response_sum[t])
                for t in (0, 1)
            )
            counts = (tuple(s.count[0]), tuple(s.count[1]))
            out.append((slot, counts, tuple(s.duration), s.duration_sum, sizes[0], sizes[1]))
        self._stats.clear()
        return out

    def clear(self) -> None:
        self._entries.clear()


def _part_length(part: bytes | tuple[bytes, ...]) -> int:
    return len(part) if isinstance(part, bytes) else sum(map(len, part))


def drain(
    table: Table, fd: int, answer_hits: bool, rounds: int, prepare: Callable[[bytes], bool] | None
) -> list[tuple[bytes, Any]]:
    """What the C drain does, one recvfrom/sendto at a time."""
    sock = socket.socket(fileno=fd)
    misses: list[tuple[bytes, Any]] = []
    try:
        for _ in range(rounds * table.limits.batch):
            try:
                data, addr = sock.recvfrom(table.limits.max_query)
            except BlockingIOError:
                break
            except OSError as e:  # a queued ICMP error for an earlier reply: keep serving
                if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    break
                continue
            reply = None
            if answer_hits:
                ipv6 = sock.family == socket.AF_INET6 and not addr[0].startswith("::ffff:")
                reply = table.answer(data, False, ipv6)
                if reply is None and prepare is not None and question(data, False) and prepare(data):
                    reply = table.answer(data, False, ipv6)
            if reply is None:
                misses.append((data, addr))
                continue
            with contextlib.suppress(OSError):  # a full buffer or an unreachable client: dropped, as UDP
                sock.sendto(reply, addr)
    finally:
        sock.detach()
    return misses
