"""health: syntax, /health on a real kdns process, the lameduck window after SIGTERM (DNS and
/health keep answering, then exit 0), a listener that survives reloads, and a taken port."""

from __future__ import annotations

import re
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from kdns.corefile import CorefileError
from kdns.plugins import health
from tests.support.dnsclient import ask, rcode
from tests.support.http import get, scrape, until, value
from tests.support.ports import free_port
from tests.support.process import KdnsProcess
from tests.support.units import context, directive

Kdns = Callable[..., KdnsProcess]


def setup(text: str) -> health.Health:
    plugin = health.setup(directive(text), context(text))
    assert isinstance(plugin, health.Health)
    return plugin


def test_syntax() -> None:
    assert (setup("health").address, setup("health").lameduck) == ((None, 8080), 0.0)
    assert setup("health :8081").address == (None, 8081)
    assert setup("health 127.0.0.1:8082 {\n lameduck 5s\n}").address == ("127.0.0.1", 8082)
    assert setup("health 127.0.0.1:8082 {\n lameduck 5s\n}").lameduck == 5.0
    assert setup("health [::1]:8083 {\n lameduck 1m30s\n}").lameduck == 90.0
    assert setup("health [::1]:8083").address == ("::1", 8083)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("health 8080", "missing port in address"),
        ("health ::1:8080", "too many colons"),
        ("health :http", "invalid port 'http'"),
        ("health :70000", "invalid port '70000'"),
        ("health :1 :2", "wrong argument count"),
        ("health {\n lameduck\n}", "wrong argument count"),
        ("health {\n lameduck 5 s\n}", "wrong argument count"),
        ("health {\n lameduck soon\n}", "invalid lameduck duration 'soon'"),
        ("health {\n overload\n}", "unknown property 'overload'"),
    ],
)
def test_bad_syntax(text: str, message: str) -> None:
    with pytest.raises(CorefileError, match=re.escape(message)):
        setup(text)


def corefile(hport: int, extra: str = "", lameduck: str = "") -> str:
    block = f" {{\n        lameduck {lameduck}\n    }}" if lameduck else ""
    return f".:{{port}} {{\n    health 127.0.0.1:{hport}{block}\n{extra}    whoami\n}}\n"


def test_health_answers_ok(kdns: Kdns) -> None:
    hport, mport = free_port(), free_port()
    kdns(corefile(hport, f"    prometheus 127.0.0.1:{mport}\n"))
    assert get(f"http://127.0.0.1:{hport}/health") == (200, "OK")
    assert get(f"http://127.0.0.1:{hport}/metrics")[0] == 404  # only /health lives there
    # The once-a-second self-probe feeds the health metrics.
    _, samples = until(
        lambda: (
            (s := scrape(f"http://127.0.0.1:{mport}/metrics"))
            and value(s[1], "coredns_health_request_duration_seconds_count") >= 1
            and s
        ),
        "a self-probe",
    )
    assert value(samples, "coredns_health_request_failures_total") == 0


def test_lameduck_keeps_serving_then_exits_cleanly(kdns: Kdns) -> None:
    hport = free_port()
    p = kdns(corefile(hport, lameduck="5s"))
    p.signal(signal.SIGTERM)
    until(lambda: "Going into lameduck mode for 5s" in p.logs(), "lameduck to begin")
    # Inside the window: DNS and /health still answer, over UDP and TCP.
    assert rcode(ask(p.port, "example.org.")) == "NOERROR"
    assert rcode(ask(p.port, "example.org.", tcp=True)) == "NOERROR"
    assert get(f"http://127.0.0.1:{hport}/health") == (200, "OK")
    assert p.proc is not None and p.proc.poll() is None
    assert p.wait(30) == 0
    with pytest.raises(OSError):
        get(f"http://127.0.0.1:{hport}/health", timeout=2)
    assert "[INFO] plugin/health: Going into lameduck mode for 5s" in p.logs().splitlines()


def test_listener_survives_reloads(kdns: Kdns) -> None:
    hport = free_port()
    p = kdns(corefile(hport, lameduck="1s"))
    for n, lameduck in enumerate(["2s", "3s"], start=1):
        p.corefile_path.write_text(corefile(hport, lameduck=lameduck).replace("{port}", str(p.port)))
        p.signal(signal.SIGUSR1)
        until(lambda n=n: p.logs().count("[INFO] Reloading complete") == n, f"reload {n}")  # type: ignore[misc]
        assert get(f"http://127.0.0.1:{hport}/health") == (200, "OK")
    assert "Reload failed" not in p.logs()
    p.signal(signal.SIGTERM)
    until(
        lambda: "Going into lameduck mode for 3s" in p.logs(), "the reloaded lameduck"
    )  # the new config rules
    assert p.wait(30) == 0


def test_port_in_use_stops_start_up(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        hport, dport = taken.getsockname()[1], free_port()
        p = KdnsProcess(corefile(hport).replace("{port}", str(dport)), tmp_path, dport, wait_tcp=False)
        p.start()
        try:
            assert p.wait(30) == 1
        finally:
            p.stop()
    assert "address already in use" in p.logs().lower()
