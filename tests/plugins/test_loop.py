"""loop: probe names, counting and the fatal message (unit), a real kdns that forwards to a healthy
upstream (probe answered, check switched off, server stays up), and two real kdns processes
forwarding to each other (loop detected, exit 1 with CoreDNS's message)."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kdns.corefile import CorefileError
from kdns.plugin import PluginError
from kdns.plugins import bind, loop
from kdns.request import Reply, Request
from tests.support.dnsclient import ask, rcode
from tests.support.http import until
from tests.support.ports import free_port
from tests.support.process import KdnsProcess
from tests.support.units import FakeController, context, directive, request
from tests.support.upstream import FakeUpstream, running_upstreams

Kdns = Callable[..., KdnsProcess]


def test_probe_names() -> None:
    rng = random.Random(1)
    assert re.fullmatch(r"\d+\.\d+\.", loop.probe_name(".", rng))
    assert re.fullmatch(r"\d+\.\d+\.example\.org\.", loop.probe_name("example.org.", rng))
    assert loop.probe_name(".", rng) != loop.probe_name(".", rng)


def test_setup_targets_the_blocks_own_address() -> None:
    plugin = loop.setup(directive("loop"), context("loop", key="example.org:1053"))
    assert isinstance(plugin, loop.Loop)
    assert (plugin.zone, plugin.host, plugin.port) == ("example.org.", "", 1053)
    for bound, host in (("127.0.0.2 ::1", "127.0.0.2"), ("lo", "127.0.0.1")):  # an interface: its address
        ctx = context(f"bind {bound}\nloop", key=".")
        ctx.block_plugins.append(bind.setup(ctx.block.find("bind")[0], ctx))  # kdns sets bind up first
        plugin = loop.setup(ctx.block.find("loop")[0], ctx)
        assert isinstance(plugin, loop.Loop) and (plugin.host, plugin.port) == (host, 53)
    for text, message in [("loop now", "wrong argument count"), ("loop {\n x\n}", "loop takes no block")]:
        with pytest.raises(CorefileError, match=re.escape(message)):
            loop.setup(directive(text), context(text))


async def answer(r: Request) -> Reply:
    return Reply(r.reply(), "forward")


async def test_the_third_arrival_is_fatal() -> None:
    controller = FakeController()
    plugin = loop.Loop(".", "", 1053, controller, random.Random(2))
    probe = request(plugin.qname.upper(), "HINFO", client=("127.0.0.1", 55953))
    for _ in range(2):
        assert (await plugin.serve(probe, answer)).plugin == "forward"
    assert controller.fatals == []
    with pytest.raises(PluginError):  # not sent round again
        await plugin.serve(probe, answer)
    assert controller.fatals == [
        f'plugin/loop: Loop (127.0.0.1:55953 -> :1053) detected for zone ".", see '
        f'https://coredns.io/plugins/loop#troubleshooting. Query: "HINFO {plugin.qname}"'
    ]


async def test_other_queries_are_not_counted() -> None:
    controller = FakeController()
    plugin = loop.Loop("example.org.", "::1", 53, controller, random.Random(3))
    for r in [
        request(plugin.qname, "A"),
        request("other.example.org.", "HINFO"),
        request(plugin.qname, "TXT"),
    ] * 3:
        await plugin.serve(r, answer)
    assert plugin.seen == 0 and controller.fatals == []
    plugin.disabled = True  # after the start-up window nothing is looked at any more
    for _ in range(5):
        await plugin.serve(request(plugin.qname, "HINFO"), answer)
    assert controller.fatals == []
    assert loop.join_host_port("::1", 53) == "[::1]:53" and loop.join_host_port("", 53) == ":53"


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with running_upstreams() as make:
        yield make()


def test_no_loop_through_a_healthy_upstream(kdns: Kdns, upstream: FakeUpstream) -> None:
    p = kdns(f".:{{port}} {{\n    loop\n    forward . 127.0.0.1:{upstream.port}\n}}\n")
    probes = until(lambda: [q for q in upstream.seen() if q.qtype == "HINFO"], "the probe at the upstream")
    name = probes[0].qname
    assert re.fullmatch(r"\d+\.\d+\.", name)
    time.sleep(loop.DISABLE_AFTER + 4)  # the check switches itself off after the probe was answered
    for _ in range(3):  # the same name again is no longer counted
        assert rcode(ask(p.port, name, "HINFO")) == "NXDOMAIN"
    assert p.proc is not None and p.proc.poll() is None
    assert "Loop" not in p.logs()


def test_two_servers_forwarding_to_each_other(tmp_path: Path) -> None:
    a_port, b_port = free_port(), free_port()
    (tmp_path / "b").mkdir()
    b = KdnsProcess(f".:{b_port} {{\n    forward . 127.0.0.1:{a_port}\n}}\n", tmp_path / "b", b_port)
    a = KdnsProcess(
        f".:{a_port} {{\n    loop\n    forward . 127.0.0.1:{b_port}\n}}\n", tmp_path, a_port, wait_tcp=False
    )
    try:
        b.start()
        a.start()
        assert a.wait(60) == 1
        assert b.proc is not None and b.proc.poll() is None  # only the server with `loop` stops
    finally:
        a.stop()
        b.stop()
    message = re.search(
        r'^\[ERROR\] plugin/loop: Loop \(127\.0\.0\.1:\d+ -> :(\d+)\) detected for zone "\.", see '
        r'https://coredns\.io/plugins/loop#troubleshooting\. Query: "HINFO (\d+\.\d+\.)"$',
        a.logs(),
        re.M,
    )
    assert message is not None, a.logs()
    assert int(message[1]) == a_port
