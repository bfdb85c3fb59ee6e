"""The template table at the edges of its contract, through its Python API: the C table
(kdns/server/_hotpath.c) and its pure-Python twin (kdns/server/replay.py) must behave the same.
Each case is one the native fuzz target found (fuzz/native/README.md, "Findings")."""

from __future__ import annotations

import dataclasses
import math
import time

import dns.message
import pytest

from kdns.metrics import SIZE_BUCKETS, TIME_BUCKETS
from kdns.server import fastpath, replay
from kdns.server.fastpath import Template
from kdns.server.limits import LIMITS

TABLES = [pytest.param(True, id="C"), pytest.param(False, id="python")]
if not fastpath.NATIVE:
    TABLES = [pytest.param(False, id="python")]

QUERY = dns.message.make_query("web.default.svc.cluster.local.", "A", id=7).to_wire()
# One A record owned by the question (a pointer to offset 12), TTL at offset 6 of the body.
ANSWER = b"\xc0\x0c\x00\x01\x00\x01" + b"\x00\x00\x00\x1e" + b"\x00\x04\x0a\x60\x00\x14"


@pytest.fixture(params=TABLES)
def table(request: pytest.FixtureRequest) -> object:
    table_type = fastpath.Table if request.param else replay.Table
    return table_type(LIMITS, TIME_BUCKETS, SIZE_BUCKETS)


def template(**changes: object) -> Template:
    """A cached answer (the cache plugin's shape): its TTL counts down with the lifetime."""
    base = Template(
        head=b"\x84\x00\x00\x01\x00\x01\x00\x00\x00\x00",
        parts=ANSWER,
        serial_at=-1,
        serial_source=None,
        ttl_at=(6,),
        deps=(),
        stored=time.monotonic() - 0.5,
        lifetime=30,
        spelling=None,
        only_limit=0,
        slot=0,
    )
    return dataclasses.replace(base, **changes)


def ttl_of(reply: bytes) -> int:
    return int.from_bytes(reply[len(QUERY) + 6 : len(QUERY) + 10], "big")


def test_a_template_counts_down_from_when_it_was_stored(table: fastpath.Table) -> None:
    key = table.key(QUERY, False)
    assert key is not None
    table.store(key, template(stored=time.monotonic() - 7.5))
    reply = table.answer(QUERY, False, False)
    assert reply is not None and ttl_of(reply) == 30 - 7


@pytest.mark.parametrize(
    "clock",
    [math.nan, math.inf, -math.inf, 1e300, 10.5, -1e300],
    ids=["nan", "inf", "-inf", "far-future", "future", "far-past"],
)
def test_a_clock_that_is_no_past_reading_expires_the_template(table: fastpath.Table, clock: float) -> None:
    """`stored` is a time.monotonic() reading. One that is not (NaN, infinite, in the future) made
    the C table convert a non-number to long (undefined behaviour, UBSan's report) or replay TTLs
    past the lifetime, and the twin raise; now the template is expired: the plugin decides again."""
    key = table.key(QUERY, False)
    assert key is not None
    table.store(key, template(stored=time.monotonic() + clock))
    assert table.answer(QUERY, False, False) is None
    assert len(table) == 0  # forgotten, as any expired template


def test_a_lifetime_must_fit_the_ttls_it_patches(table: fastpath.Table) -> None:
    """TTLs are 32 bits (RFC 1035 §3.2.1): a longer lifetime was cut to its low 32 bits by the C
    table (2**32 seconds replayed as TTL 0) and raised OverflowError in the twin's replay."""
    key = table.key(QUERY, False)
    assert key is not None
    with pytest.raises(ValueError, match="lifetime"):
        table.store(key, template(lifetime=2**32))
    with pytest.raises(ValueError, match="lifetime"):
        table.store(key, template(lifetime=-2))
    assert len(table) == 0
    table.store(key, template(lifetime=2**32 - 1))
    reply = table.answer(QUERY, False, False)
    assert reply is not None and ttl_of(reply) == 2**32 - 1


class Unreadable:
    """A serial source whose serial cannot be read."""


@pytest.mark.parametrize(
    "miss", [{"parts": ANSWER + bytes(600)}, {"lifetime": 0}], ids=["too-big", "expired"]
)
def test_a_failing_serial_source_fails_the_same_in_both_tables(
    table: fastpath.Table, miss: dict[str, object]
) -> None:
    """The C table reads the serial when it checks a template, before its size and its lifetime; the
    twin read it only while building a reply, so a template too big for the client (or expired) was
    a quiet miss in Python and an AttributeError in C. The twin now reads it where C does."""
    key = table.key(QUERY, False)
    assert key is not None
    table.store(key, template(serial_at=0, serial_source=Unreadable(), **miss))
    with pytest.raises(AttributeError):
        table.answer(QUERY, False, False)
