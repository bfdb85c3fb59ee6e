"""What the native fuzz target does with each input (driver.c calls `setup` once, then `one_input`).

An input is a little program of operations on a pair of template tables holding the same
templates: the C one (kdns/server/_hotpath.c, built with ASan + UBSan into the fuzz build directory)
and its pure-Python twin (kdns/server/replay.py). Every operation runs on both and the results must
agree: the same keys, replies with the same bytes (shuffled groups compared as permutations of their
records), the same errors, the same hit counts, the same table sizes. Sanitizers catch the rest.

The templates are the real ones (a real Dispatcher over a small cluster, plain, with loadbalance and
with cache, captured once at setup) and made-up ones whose fields the input chooses, edge values
included (TTL offsets at the end, lifetimes past 32 bits, clocks that are not numbers...). Each input
starts from the same state (tables empty, dependencies and serials as at setup) so that a saved
input reproduces its finding.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import importlib.machinery
import importlib.util
import math
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

# The sanitized extension replaces the venv's before anything imports kdns.server.fastpath: the
# dispatchers below then store their templates through it.
_HOTPATH = "kdns.server._hotpath"

HEADER = 12
TYPES = {
    "A": 1,
    "NS": 2,
    "CNAME": 5,
    "SOA": 6,
    "PTR": 12,
    "MX": 15,
    "TXT": 16,
    "AAAA": 28,
    "SRV": 33,
    "ANY": 255,
}
NAMES = (
    "web.default.svc.cluster.local.",
    "dual.default.svc.cluster.local.",
    "db.default.svc.cluster.local.",
    "db-0.db.default.svc.cluster.local.",
    "big.default.svc.cluster.local.",
    "_http._tcp.web.default.svc.cluster.local.",
    "_mysql._tcp.db.default.svc.cluster.local.",
    "ext.default.svc.cluster.local.",
    "ext-in.default.svc.cluster.local.",
    "nope.default.svc.cluster.local.",
    "default.svc.cluster.local.",
    "cluster.local.",
    "10-244-1-5.default.pod.cluster.local.",
    "5.1.244.10.in-addr.arpa.",
    "20.0.96.10.in-addr.arpa.",
    "api.other.svc.cluster.local.",
    "kube-dns.kube-system.svc.cluster.local.",
)
# (EDNS payload size or None, DO) of the questions the real templates answer.
SHAPES = ((None, False), (1232, False), (4096, True), (512, False))

# Operations; an input is a first byte (which limits) and then operations until it ends.
QUERY, RAW, STORE_REAL, STORE_MADE, DEP, REAL_DEP, SERIAL, DRAIN, HARVEST, CLEAR = range(10)
MAX_OPS = 24

# Choices for made-up templates: the usual ones, and (rarely) edge values and ones store() refuses.
LIFETIMES = ((-1, -1, 0, 1, 30, 3600, 2**31 - 1, 2**32 - 1), (2**32, 2**63 - 1, -2))
AGES = ((0.5, 1.5, 29.5, 3599.5, 2**32 + 0.5), (-0.5, -1e6, 1e300, -1e300, math.nan, math.inf, -math.inf))
ONLY_LIMITS = ((0, 0, 0, 512, 600, 1232, 4096, 65535), (65536, -1))
REPLY_SIZES = (512, 600, 1232, 4096, 65535)
SERIALS = (0, 1, 2**31, 2**32 - 1, 2**32, -1, 2**64 + 5, 1.5)
DEP_KEYS: tuple[Any, ...] = ("a", ("default", "web"), 7, b"k", None)


T = TypeVar("T")


@dataclasses.dataclass
class SerialBox:
    """A serial source (Reuse.serial_source) the input can move."""

    serial: Any


class Mismatch(AssertionError):
    """The C table and the twin disagree: a finding."""


class Reader:
    """The input as a stream of choices; past its end every choice is 0, so any input is complete."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def left(self) -> int:
        return len(self.data) - self.at

    def byte(self) -> int:
        if self.at >= len(self.data):
            return 0
        self.at += 1
        return self.data[self.at - 1]

    def u16(self) -> int:
        return self.byte() << 8 | self.byte()

    def take(self, n: int) -> bytes:
        out = self.data[self.at : self.at + n]
        self.at += len(out)
        return out

    def pick(self, choices: Sequence[T]) -> T:
        return choices[self.byte() % len(choices)]

    def mostly(self, usual: Sequence[T], rarely: Sequence[T]) -> T:
        """One of `usual`, or one time in eight one of `rarely` (what the API must refuse, edge cases):
        an input then reaches past a template's store to its replay."""
        b = self.byte()
        return rarely[(b >> 3) % len(rarely)] if b % 8 == 7 else usual[(b >> 3) % len(usual)]


# ---- packets ---------------------------------------------------------------------------------------


def name_wire(name: str) -> bytes:
    return b"".join(bytes((len(label),)) + label.encode() for label in name.rstrip(".").split(".")) + b"\0"


def opt_rr(size: int, do: bool, version: int = 0, options: bytes = b"", rdlen: int | None = None) -> bytes:
    """An OPT record owned by the root (RFC 6891 §6.1.2); `rdlen` may lie about the options."""
    length = len(options) if rdlen is None else rdlen
    return (
        b"\0"
        + (41).to_bytes(2, "big")
        + size.to_bytes(2, "big")
        + bytes((0, version, 0x80 if do else 0, 0))
        + (length.to_bytes(2, "big") + options)
    )


def query(qid: int, name: bytes, qtype: int, payload: int | None, do: bool, flags: int = 0x0100) -> bytes:
    opt = b"" if payload is None else opt_rr(payload, do)
    counts = (1, 0, 0, 1 if opt else 0)
    head = qid.to_bytes(2, "big") + flags.to_bytes(2, "big") + b"".join(c.to_bytes(2, "big") for c in counts)
    return head + name + qtype.to_bytes(2, "big") + b"\0\x01" + opt


def flip_case(name: bytes, bits: bytes) -> bytes:
    """`name` with the letters whose bit is set in `bits` in the other case (the client's spelling)."""
    out = bytearray(name)
    for i, c in enumerate(out):
        if 0x61 <= c | 0x20 <= 0x7A and bits and bits[i % len(bits)] >> (i % 8) & 1:
            out[i] = c ^ 0x20
    return bytes(out)


def options(r: Reader) -> bytes:
    """EDNS options, well-formed or not: the cases parse_question accepts and rejects."""
    out = b""
    for _ in range(r.byte() % 4):
        body = r.take(r.byte() % 24)
        length = r.byte() if r.byte() % 4 == 3 else len(body)  # sometimes a length that does not fit
        out += r.u16().to_bytes(2, "big") + length.to_bytes(2, "big") + body
    if r.byte() % 8 == 0:
        out += r.take(r.byte() % 4)  # a partial option header
    return out


@dataclasses.dataclass
class Real:
    """A template a real dispatcher made, with the question it answers."""

    key: bytes
    template: Any
    name: bytes
    qtype: int
    payload: int | None
    do: bool
    tcp: bool


# ---- the tables ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Pair:
    c: Any
    py: Any
    limits: Any


class Tee:
    """What the dispatchers store into (AnswerCache.table): both tables of the current pair, one of
    them (while that one drains), or a list (at setup)."""

    def __init__(self) -> None:
        self.pair: Pair | None = None
        self.only: str | None = None
        self.recorded: list[tuple[bytes, Any]] | None = None
        self.stored: dict[bytes, list[Any]] = {}  # while draining: what prepare stored, per key

    def _pair(self) -> Pair:
        assert self.pair is not None
        return self.pair

    def key(self, data: bytes, tcp: bool) -> bytes | None:
        key: bytes | None = (self._pair().py if self.only == "py" else self._pair().c).key(data, tcp)
        return key

    def store(self, key: bytes, template: Any) -> None:
        if self.recorded is not None:
            self.recorded.append((key, template))
        elif self.only is not None:
            getattr(self._pair(), self.only).store(key, template)
            self.stored.setdefault(key, []).append(template)
        else:
            store_both(self._pair(), key, template)

    def __len__(self) -> int:
        return len(self._pair().py if self.only == "py" else self._pair().c)


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", value) or ("error", the exception's type): what both tables must agree on."""
    try:
        return "ok", call()
    except (ValueError, TypeError, OverflowError, AttributeError, KeyError) as e:
        return "error", type(e)


def store_both(pair: Pair, key: bytes, template: Any) -> bool:
    """Store in C, then in the twin when C took it (the twin checks less; a template C refuses is
    never replayed). A template C takes, the twin must take too."""
    c = outcome(lambda: pair.c.store(key, template))
    if c[0] == "error":
        return False
    py = outcome(lambda: pair.py.store(key, template))
    if py != c:
        raise Mismatch(f"store: C took the template, the twin {py}: {template!r}")
    return True


# ---- comparing replies -----------------------------------------------------------------------------


def _rr_ttl_offset(rr: bytes) -> int:
    i = 0
    while rr[i] != 0 and rr[i] & 0xC0 != 0xC0:
        i += rr[i] + 1
    return i + (5 if rr[i] == 0 else 6)


def _fits(region: bytes, at: int, rr: bytes, ttl: int | None, wild: set[int]) -> bool:
    """Is `rr` at region[at:], but for its TTL at `ttl` (None: compared too) and the bytes at `wild`?"""
    end = at + len(rr)
    if end > len(region):
        return False
    if wild & set(range(at, end)):
        skip = wild | (set(range(ttl, ttl + 4)) if ttl is not None else set())
        return all(at + k in skip or region[at + k] == rr[k] for k in range(len(rr)))
    if ttl is None:
        return region[at:end] == rr
    return region[at:ttl] == rr[: ttl - at] and region[ttl + 4 : end] == rr[ttl + 4 - at :]


def _permutation(region: bytes, at: int, group: Sequence[bytes], used: list[bool], wild: set[int],
                 count_down: bool, ttls: set[bytes]) -> bool:  # fmt: skip
    """Is region[at:] the unused records of `group` in some order (TTLs aside when counting down)?
    Collects the TTLs of the records counting down into `ttls`."""
    if all(used):
        return at == len(region)
    tried: set[bytes] = set()
    for i, rr in enumerate(group):
        if used[i] or rr in tried:
            continue
        tried.add(rr)
        ttl = at + _rr_ttl_offset(rr) if count_down else None
        if _fits(region, at, rr, ttl, wild):
            used[i] = True
            if _permutation(region, at + len(rr), group, used, wild, count_down, ttls):
                if ttl is not None and not wild & set(range(ttl, ttl + 4)):
                    ttls.add(region[ttl : ttl + 4])
                return True
            used[i] = False
    return False


def same_reply(c: bytes, py: bytes, entry: Any, question_end: int) -> bool:
    """Do two replies from the same template agree? Exactly, but for the order of the records in
    shuffled groups: each reply's group must be its records in some order, with the same TTLs."""
    if c == py:
        return True
    if entry is None or len(c) != len(py) or c[:question_end] != py[:question_end]:
        return False
    body_c, body_py = c[question_end:], py[question_end:]
    parts = (entry.parts,) if isinstance(entry.parts, bytes) else entry.parts
    if sum(len(p) if isinstance(p, bytes) else sum(map(len, p)) for p in parts) != len(body_c):
        return False  # another template (a drain may store several under one key)
    patched = {entry.serial_at + k for k in range(4)} if entry.serial_at >= 0 else set()
    patched |= {at + k for at in entry.ttl_at for k in range(4)}
    if any(body_c[i] != body_py[i] for i in patched):
        return False
    at = 0
    for part in parts:
        if isinstance(part, bytes):
            if any(body_c[i] != body_py[i] for i in range(at, at + len(part)) if i not in patched):
                return False
            at += len(part)
            continue
        size = sum(map(len, part))
        wild = {i - at for i in patched if at <= i < at + size}
        seen: list[set[bytes]] = [set(), set()]
        for body, ttls in zip((body_c, body_py), seen, strict=True):
            if not _permutation(
                body[at : at + size], 0, part, [False] * len(part), wild, entry.lifetime >= 0, ttls
            ):
                return False
        if len(seen[0] | seen[1]) > 1:  # every record counts down to the same remaining lifetime
            return False
        at += size
    return True


# ---- the harness -----------------------------------------------------------------------------------


class Harness:
    def __init__(self, root: str) -> None:
        from kdns.chain import Chain
        from kdns.k8s.index import ClusterIndex
        from kdns.k8s.models import Kind, parse_object
        from kdns.plugins.cache.config import CacheConfig
        from kdns.plugins.cache.plugin import Cache
        from kdns.plugins.kubernetes.options import KubernetesOptions
        from kdns.plugins.kubernetes.plugin import Kubernetes
        from kdns.plugins.loadbalance import LoadBalance
        from kdns.server import fastpath, replay
        from kdns.server.dispatch import Dispatcher
        from kdns.server.limits import LIMITS, Limits
        from tests.plugins.kubernetes import cluster
        from tests.support import objects as o
        from tests.support.units import FakeController, StaticSource

        assert fastpath.NATIVE and fastpath.Table is sys.modules[_HOTPATH].Table, "not the sanitized table"
        self.hotpath = sys.modules[_HOTPATH]
        self.replay = replay
        # The default limits, and small ones: a table of 3 (overflow), groups of 4, batches of 3,
        # queries cut at 120 bytes, UDP replies up to 600.
        small = Limits(max_entries=3, max_group=4, batch=3, max_query=120, max_udp_reply=600)
        bounds = ((0.001, 0.01), (100.0, 512.0))
        self.pairs = [
            Pair(fastpath.Table(limits, *bounds), replay.Table(limits, *bounds), limits)
            for limits in (LIMITS, small)
        ]

        index = ClusterIndex()
        big = o.headless("big")
        big_slice = o.endpoint_slice(
            "big-1", "big", endpoints=[o.endpoint(f"10.250.1.{i}") for i in range(1, 120)]
        )
        for kind, objs in (
            (Kind.NAMESPACE, cluster.NAMESPACES),
            (Kind.SERVICE, [*cluster.SERVICES, big]),
            (Kind.ENDPOINTSLICE, [*cluster.SLICES, big_slice]),
            (Kind.POD, cluster.PODS),
        ):
            index.replace(kind, [parse_object(kind, obj) for obj in objs])
        self.index: Any = index  # an input may give it any serial (a float, past 64 bits)
        self.base_serial = index.serial
        opts = KubernetesOptions(
            zones=("cluster.local.", "in-addr.arpa.", "ip6.arpa."), ttl=30, pods="insecure"
        )

        def kubernetes() -> Kubernetes:
            return Kubernetes(opts, StaticSource(), index, FakeController())

        cache = Cache(CacheConfig((".",)))
        self.dispatchers = [
            Dispatcher("dns://:0", [Chain(["."], plugins)])
            for plugins in ([kubernetes()], [LoadBalance(), kubernetes()], [cache, kubernetes()])
        ]
        self.tee = Tee()
        for d in self.dispatchers:
            d.answers.table = self.tee
        self.tee.pair = self.pairs[0]
        self.real = self._capture()
        self.tee.recorded = None

        # Made-up templates' dependencies and serials, reset before every input.
        self.values = [object() for _ in range(6)]
        self.dicts: list[dict[Any, Any]] = [{} for _ in range(3)]
        self.boxes = [SerialBox(1000), SerialBox(2**32 - 1)]
        self._reset()
        self.owned: list[object] = [*self.values, *self.dicts, *self.boxes]
        self.refcounts = [sys.getrefcount(obj) for obj in self.owned]
        self.undo: list[tuple[dict[Any, Any], Any, bool, Any]] = []
        self.recent: list[Real] = []  # questions of the templates this input stored
        self.sockets = {
            family: [self._socket(family) for _ in range(3)] for family in (socket.AF_INET, socket.AF_INET6)
        }

    def _capture(self) -> list[Real]:
        """The real templates: each dispatcher asked every question (the cache's twice, so its second
        reply is a hit with a lifetime)."""
        recorded: list[tuple[bytes, Any]] = []
        self.tee.recorded = recorded
        real: list[Real] = []
        plain, shuffled, cached = self.dispatchers
        for d, names, qtypes in (
            (plain, NAMES, tuple(TYPES.values())),
            (shuffled, NAMES[:7], (1, 28, 33, 15)),
            (cached, NAMES[:4] + NAMES[9:10], (1, 28, 33)),
        ):
            for name, qtype, (payload, do), tcp in (
                (n, t, s, tcp) for n in names for t in qtypes for s in SHAPES for tcp in (False, True)
            ):
                wire = name_wire(name)
                data = query(1, wire, qtype, payload, do)
                del recorded[:]
                if d is cached:
                    for _ in range(2):
                        asyncio.run(d.handle(data, "tcp" if tcp else "udp", ("127.0.0.1", 5)))
                else:
                    d.prepare(data, tcp)
                real += [Real(key, tpl, wire, qtype, payload, do, tcp) for key, tpl in recorded]
        assert len(real) > 500 and any(r.template.lifetime >= 0 for r in real), (
            "the cluster answers too little"
        )
        assert any(not isinstance(r.template.parts, bytes) for r in real), "no shuffled template"
        assert any(r.template.only_limit for r in real) and any(r.template.serial_at >= 0 for r in real)
        return real

    @staticmethod
    def _socket(family: socket.AddressFamily) -> socket.socket:
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        s.setblocking(False)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            s.setsockopt(socket.SOL_SOCKET, option, 1 << 21)
        return s

    def _reset(self) -> None:
        for i, d in enumerate(self.dicts):
            d.clear()
            d.update({DEP_KEYS[k]: self.values[(i + k) % len(self.values)] for k in range(len(DEP_KEYS) - 1)})
        self.boxes[0].serial, self.boxes[1].serial = 1000, 2**32 - 1

    # ---- one input ---------------------------------------------------------------------------------

    def run(self, data: bytes) -> None:
        r = Reader(data)
        pair = self.pairs[r.byte() & 1]
        self.tee.pair, self.tee.only = pair, None
        try:
            ops = (self.query, self.raw, self.store_real, self.store_made, self.dep, self.real_dep,
                   self.serial, self.drain, self.harvest, self.clear)  # fmt: skip
            for _ in range(MAX_OPS):
                if not r.left():
                    break
                ops[r.byte() % len(ops)](r, pair)
                if len(pair.c) != len(pair.py):
                    raise Mismatch(f"table sizes differ: C {len(pair.c)}, twin {len(pair.py)}")
            self.harvest(r, pair)
        finally:
            for p in self.pairs:
                p.c.clear()
                p.py.clear()
                p.c.harvest()
                p.py.harvest()
            for mapping, key, had, old in reversed(self.undo):
                if had:
                    mapping[key] = old
                else:
                    mapping.pop(key, None)
            self.undo.clear()
            self.recent.clear()
            self.tee.stored.clear()
            self.index.serial = self.base_serial
            self._reset()

    def check_references(self) -> None:
        """Every table forgot everything: the harness's objects are referenced as at setup, so
        neither table leaked (or freed) a reference to a dependency or a serial source."""
        now = [sys.getrefcount(obj) for obj in self.owned]
        if now != self.refcounts:
            raise Mismatch(f"reference counts moved: {self.refcounts} -> {now}")

    # ---- questions ---------------------------------------------------------------------------------

    def variant(self, r: Reader, real: Real) -> tuple[bytes, bool, bool]:
        """A query for `real`'s question as a client might spell and shape it: (data, tcp, ipv6)."""
        how = r.byte() & r.byte()  # each change in one query of four: most still hit their template
        name = flip_case(real.name, r.take(2)) if how & 1 else real.name
        flags = 0x0100 if not how & 2 else r.byte() << 8 & 0x0100 | r.byte() & 0x30
        if how & 4:
            flags ^= r.u16()  # opcode, QR, anything: parse_question refuses most of it
        payload, do = real.payload, real.do
        data = query(r.u16(), name, real.qtype, None, False, flags)
        if how & 8:
            if payload is None or r.byte() & 1:
                payload = r.pick((512, 511, 0, 1232, 4096, 65535, r.u16()))
            opt = opt_rr(payload, r.byte() & 1 == 1, r.pick((0, 0, 0, 1, 255)), options(r),
                         r.pick((None, None, None, r.u16())))  # fmt: skip
            data = data[:10] + b"\0\x01" + data[HEADER:] + opt
        elif payload is not None:
            data = data[:10] + b"\0\x01" + data[HEADER:] + opt_rr(payload, do)
        if how & 16 and r.byte() & 1:
            data = data[:4] + r.take(8).ljust(8, b"\0") + data[HEADER:]  # other counts
        if how & 32:
            cut = r.byte()
            data = data[: len(data) - cut % 8] if cut & 0x80 else data + r.take(cut % 8)
        return data, bool(how & 64) != real.tcp, bool(how & 128)

    def ask(self, pair: Pair, data: bytes, tcp: bool, ipv6: bool) -> None:
        """key() and answer() of one packet, C against the twin."""
        key = outcome(lambda: pair.c.key(data, tcp))
        if key != outcome(lambda: pair.py.key(data, tcp)):
            raise Mismatch(f"key({data!r}, {tcp}): C {key}, twin differs")
        question = self.replay.question(data, tcp)
        entry = pair.py._entries.get(key[1]) if key[0] == "ok" and key[1] is not None else None
        c = outcome(lambda: pair.c.answer(data, tcp, ipv6))
        py = outcome(lambda: pair.py.answer(data, tcp, ipv6))
        if c[0] != py[0] or (c[0] == "error" and c != py):
            raise Mismatch(f"answer({data!r}, {tcp}): C {c}, twin {py}")
        if c[0] == "ok" and not (
            (c[1] is None and py[1] is None)
            or (
                c[1] is not None
                and py[1] is not None
                and question
                and same_reply(c[1], py[1], entry, question[0])
            )
        ):
            raise Mismatch(f"answer({data!r}, {tcp}, {ipv6}):\nC    {c[1]!r}\ntwin {py[1]!r}")

    def pick_real(self, r: Reader) -> Real:
        """A real question: mostly one whose key this input stored a template under."""
        n = r.u16()
        if self.recent and n & 3:
            return self.recent[(n >> 2) % len(self.recent)]
        return self.real[n % len(self.real)]

    def query(self, r: Reader, pair: Pair) -> None:
        real = self.pick_real(r)
        if r.byte() % 4 == 0:
            self.store_real(r, pair, real)
        self.ask(pair, *self.variant(r, real))

    def raw(self, r: Reader, pair: Pair) -> None:
        data = r.take(r.byte() if r.byte() & 1 else r.u16() % 1024)
        self.ask(pair, data, bool(r.byte() & 1), False)

    # ---- templates ---------------------------------------------------------------------------------

    @staticmethod
    def _fresh(template: Any) -> Any:
        """A real template stored now: its lifetime (if any) starts half a second ago, so whole
        seconds left do not change while this input runs."""
        if template.lifetime < 0:
            return template
        return dataclasses.replace(template, stored=time.monotonic() - 0.5)

    def store_real(self, r: Reader, pair: Pair, real: Real | None = None) -> None:
        real = real or self.real[r.u16() % len(self.real)]
        store_both(pair, real.key, self._fresh(real.template))
        self.recent.append(real)

    def store_made(self, r: Reader, pair: Pair) -> None:
        from kdns.server.fastpath import Template

        real = self.real[r.u16() % len(self.real)]
        key = r.take(r.byte() % 40) if r.byte() % 16 == 15 else real.key
        self.recent.append(real)
        question_end = HEADER + len(key) - 1
        parts = self._parts(r, pair, question_end)
        length = (
            len(parts)
            if isinstance(parts, bytes)
            else sum(
                len(p) if isinstance(p, bytes) else sum(map(len, p))
                for p in parts
                if isinstance(p, bytes | tuple)
            )
        )
        inside = (0, max(length - 4, 0), r.u16() % max(length - 3, 1))
        outside = (length - 3, -1, 65536)
        spelling = (real.name + key[-5:-1], flip_case(real.name, r.take(2)) + key[-5:-1])
        clock: Any = "now" if r.byte() % 32 == 31 else time.monotonic() - r.mostly(*AGES)  # "now": no number
        template = Template(
            head=r.take(9) if r.byte() % 16 == 15 else r.take(10).ljust(10, b"\0"),
            parts=parts,
            serial_at=r.mostly((-1, -1, *inside), outside),
            serial_source=r.mostly((self.boxes[0], self.boxes[1], self.index), (None, object())),
            ttl_at=tuple(r.mostly(inside, outside) for _ in range(r.byte() % 4)),
            deps=self._deps(r),
            stored=clock,
            lifetime=r.mostly(*LIFETIMES),
            spelling=r.mostly((None, None, *spelling), (b"x",)),
            only_limit=r.mostly(*ONLY_LIMITS),
            slot=r.mostly(range(32), (-1, (1 << 20) + 1)),
        )
        store_both(pair, key, template)

    def _record(self, r: Reader) -> bytes:
        """One resource record for a group, well-formed or not (its owner must end inside it)."""
        usual = (b"\xc0\x0c", b"\0", b"\x03www\xc0\x0c", b"\x01a\x01b\0")
        owner = r.mostly(usual, (b"\x05short", b"", b"\x3fx"))  # rarely: owners ended by TYPE, or none
        rest = (r.pick((1, 28, 15, 33)).to_bytes(2, "big") + b"\0\x01" + r.take(4).ljust(4, b"\0")
                + bytes((0, 4)) + r.take(4).ljust(4, b"\1"))  # fmt: skip
        return owner + rest[: r.mostly((len(rest),), (3, 8, 9))]

    def _parts(self, r: Reader, pair: Pair, question_end: int) -> Any:
        def sized() -> bytes:
            how = r.byte() % 4
            if how == 0:
                return r.take(r.byte())
            target = r.pick(REPLY_SIZES) - question_end + r.pick((-1, 0, 1, -40))
            return bytes((r.byte(),)) * max(target if how == 1 else r.byte() % 64, 0)

        kind = r.byte() % 8
        if kind < 3:
            return sized()
        parts: list[Any] = []
        for _ in range(1 + r.byte() % 4):
            if r.byte() & 1:
                parts.append(sized())
            else:
                n = r.mostly((2, 2, 3, 4, pair.limits.max_group), (pair.limits.max_group + 1, 1, 0))
                parts.append(tuple(self._record(r) for _ in range(min(n, 8) if n < 250 else n)))
        return parts if kind == 7 else tuple(parts)

    def _deps(self, r: Reader) -> Any:
        deps: list[Any] = []
        for _ in range(r.byte() % 4):
            mapping = self.dicts[r.byte() % len(self.dicts)]
            key = ["unhashable"] if r.byte() % 16 == 15 else DEP_KEYS[r.byte() % len(DEP_KEYS)]
            expected = r.pick((*self.values, None))
            deps.append((mapping, key) if r.byte() % 32 == 31 else (mapping, key, expected))
        return deps if r.byte() % 32 == 31 else tuple(deps)

    # ---- changing what templates depend on ---------------------------------------------------------

    def dep(self, r: Reader, pair: Pair) -> None:
        mapping = self.dicts[r.byte() % len(self.dicts)]
        key = DEP_KEYS[r.byte() % len(DEP_KEYS)]
        how = r.byte() % 3
        if how == 0:
            mapping.pop(key, None)
        else:
            mapping[key] = self.values[r.byte() % len(self.values)] if how == 1 else object()

    def real_dep(self, r: Reader, pair: Pair) -> None:
        """The index changes what a real template depends on (undone after the input)."""
        deps = self.pick_real(r).template.deps
        if not deps:
            return
        mapping, key, expected = deps[r.byte() % len(deps)]
        self.undo.append((mapping, key, key in mapping, mapping.get(key)))
        if r.byte() & 1 and key in mapping:
            del mapping[key]
        else:
            mapping[key] = copy.copy(expected) if expected is not None else object()

    def serial(self, r: Reader, pair: Pair) -> None:
        value = r.pick(SERIALS) if r.byte() & 1 else r.u16() << 16 | r.u16()
        if r.byte() % 4 == 0:
            self.index.serial = value
        else:
            self.boxes[r.byte() & 1].serial = value

    # ---- the UDP drain -----------------------------------------------------------------------------

    def drain(self, r: Reader, pair: Pair) -> None:
        """The same datagrams through the C drain and the twin's, each table with the same prepare."""
        family = socket.AF_INET6 if r.byte() & 1 else socket.AF_INET
        c_sock, py_sock, client = self.sockets[family]
        max_query = pair.limits.max_query
        datagrams, total = [], 0
        for i in range(1 + r.byte() % 12):
            how = r.byte() % 4
            if how == 3:
                data = r.take(r.byte() % 64)
            else:
                data, _, _ = self.variant(r, self.pick_real(r))
                if how == 2:  # up to and past max_query: the drain reads only its first max_query bytes
                    data += bytes((r.byte(),)) * max(max_query - len(data) + r.pick((-1, 0, 1, 7)), 0)
            data = i.to_bytes(2, "big") + data[2:] if len(data) >= 2 else data  # tells replies apart
            if total + len(data) > 48_000:
                break
            datagrams.append(data)
            total += len(data)
        answer_hits = r.byte() % 8 != 7
        rounds = 1 + r.byte() % 4
        prepare_with = r.pick((None, self.dispatchers[0], self.dispatchers[1]))
        results = []
        self.tee.stored.clear()
        for side, sock, drain in (("c", c_sock, self.hotpath.drain), ("py", py_sock, self.replay.drain)):
            for data in datagrams:
                client.sendto(data, sock.getsockname())
            self.tee.only = side
            table = getattr(pair, side)
            entries = dict(pair.py._entries)
            prepare = None if prepare_with is None else prepare_with.prepare
            try:
                misses = outcome(lambda: drain(table, sock.fileno(), answer_hits, rounds, prepare))  # noqa: B023
            finally:
                self.tee.only = None
            results.append((misses, self._replies(client), self._replies(sock), entries))
        (c_misses, c_replies, c_left, c_entries), (py_misses, py_replies, py_left, _) = results
        if c_misses[0] != py_misses[0] or (c_misses[0] == "error" and c_misses != py_misses):
            raise Mismatch(f"drain: C {c_misses}, twin {py_misses}")
        if c_misses[0] == "error":
            return
        c_list, py_list = c_misses[1], py_misses[1]
        if [d for d, _ in c_list] != [d for d, _ in py_list] or len(c_replies) != len(py_replies):
            raise Mismatch(
                f"drain misses or reply counts differ: {c_list} / {py_list}, {c_replies} / {py_replies}"
            )
        if c_left != py_left or len(c_list) + len(c_replies) + len(c_left) != len(datagrams):
            raise Mismatch("drain read other datagrams than its twin (or lost some)")
        client_addr = client.getsockname()
        for _, addr in (*c_list, *py_list):
            if addr[:2] != client_addr[:2]:
                raise Mismatch(f"drain gave the address {addr}, not {client_addr}")
        asked = {d[:2]: d[:max_query] for d in datagrams}
        for c_reply, py_reply in zip(c_replies, py_replies, strict=True):
            data = asked[c_reply[:2]]
            question = self.replay.question(data, False)
            key = pair.py.key(data, False)
            candidates = (c_entries.get(key), pair.py._entries.get(key), *self.tee.stored.get(key or b"", ()))
            if question is None or not any(same_reply(c_reply, py_reply, e, question[0]) for e in candidates):
                raise Mismatch(f"drain replies differ for {data!r}:\nC    {c_reply!r}\ntwin {py_reply!r}")

    @staticmethod
    def _replies(sock: socket.socket) -> list[bytes]:
        out = []
        with contextlib.suppress(BlockingIOError):
            while True:
                out.append(sock.recv(1 << 16))
        return out

    # ---- stats and housekeeping --------------------------------------------------------------------

    def harvest(self, r: Reader, pair: Pair) -> None:
        """The same hits counted: per slot, per transport and family, per size bucket (durations
        differ, their count does not)."""

        def counted(table: Any) -> list[Any]:
            return [
                (slot, counts, sum(durations), udp, tcp)
                for slot, counts, durations, _, udp, tcp in table.harvest()
            ]

        c, py = counted(pair.c), counted(pair.py)
        if c != py:
            raise Mismatch(f"harvest: C {c}, twin {py}")

    def clear(self, r: Reader, pair: Pair) -> None:
        pair.c.clear()
        pair.py.clear()


_harness: Harness | None = None


def setup(root: str, module_path: str) -> None:
    """Load the sanitized extension as kdns.server._hotpath, then build the harness."""
    global _harness
    sys.path.insert(0, root)
    import kdns.server

    loader = importlib.machinery.ExtensionFileLoader(_HOTPATH, module_path)
    spec = importlib.util.spec_from_file_location(_HOTPATH, module_path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    sys.modules[_HOTPATH] = module
    kdns.server._hotpath = module
    _harness = Harness(root)


def one_input(data: bytes) -> None:
    assert _harness is not None
    _harness.run(data)
    _harness.check_references()
