"""errors: CoreDNS's error line, re-raising so the server answers SERVFAIL, consolidation, and the
same through a real kdns process."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import pytest

from kdns.corefile import CorefileError
from kdns.plugin import NoNextPlugin, PluginError
from kdns.plugins import errors
from kdns.request import Reply, Request
from tests.support.dnsclient import ask, rcode
from tests.support.http import until
from tests.support.process import KdnsProcess
from tests.support.units import context, directive, kdns_log, request


def setup(text: str) -> errors.Errors:
    plugin = errors.setup(directive(text), context(text))
    assert isinstance(plugin, errors.Errors)
    return plugin


def failing(error: Exception) -> Callable[[Request], object]:
    async def next_(r: Request) -> Reply:
        raise error

    return next_


async def test_logs_the_error_and_reraises_it() -> None:
    plugin = setup("errors")
    boom = PluginError("read udp 127.0.0.1:40000->10.0.0.1:53: i/o timeout")
    with kdns_log() as log, pytest.raises(PluginError) as raised:
        await plugin.serve(request("ExAmple.ORG."), failing(boom))  # type: ignore[arg-type]
    assert raised.value is boom  # the reply is the server's SERVFAIL, not the plugin's business
    assert log.getvalue() == (
        "[ERROR] plugin/errors: 2 example.org. A: read udp 127.0.0.1:40000->10.0.0.1:53: i/o timeout\n"
    )


async def test_an_exception_without_text_is_named() -> None:
    with kdns_log() as log, pytest.raises(TimeoutError):
        await setup("errors").serve(request(qtype="AAAA"), failing(TimeoutError()))  # type: ignore[arg-type]
    assert log.getvalue() == "[ERROR] plugin/errors: 2 example.org. AAAA: TimeoutError\n"


async def test_answers_pass_through_untouched() -> None:
    r = request()
    reply = Reply(r.reply(), "whoami")

    async def answer(_: Request) -> Reply:
        return reply

    with kdns_log() as log:
        assert await setup("errors").serve(r, answer) is reply
    assert log.getvalue() == ""


async def test_consolidate_folds_matching_errors_into_one_line() -> None:
    plugin = setup('errors {\n consolidate 5m ".* i/o timeout$" warning\n consolidate 30s "^Failed to .+"\n}')
    with kdns_log() as log:
        for _ in range(3):
            with pytest.raises(PluginError):
                await plugin.serve(request(), failing(PluginError("read udp: i/o timeout")))  # type: ignore[arg-type]
        with pytest.raises(PluginError):
            await plugin.serve(request(), failing(PluginError("Failed to connect")))  # type: ignore[arg-type]
        with pytest.raises(NoNextPlugin):
            await plugin.serve(request(), failing(NoNextPlugin("no next plugin found")))  # type: ignore[arg-type]
        assert log.getvalue() == "[ERROR] plugin/errors: 2 example.org. A: no next plugin found\n"
        await plugin.stop()  # shutdown reports what the windows hold, as CoreDNS does
    assert log.getvalue().splitlines()[1:] == [
        "[WARNING] plugin/errors: 3 errors like '.* i/o timeout$' occurred in last 5m0s",
        "[ERROR] plugin/errors: 1 errors like '^Failed to .+' occurred in last 30s",
    ]


async def test_consolidation_window_closes_by_itself() -> None:
    plugin = setup('errors {\n consolidate 10ms "timeout"\n}')
    with kdns_log() as log:
        with pytest.raises(PluginError):
            await plugin.serve(request(), failing(PluginError("timeout")))  # type: ignore[arg-type]
        await asyncio.sleep(0.2)  # the 10 ms timer is due long before this sleep ends
        assert log.getvalue() == "[ERROR] plugin/errors: 1 errors like 'timeout' occurred in last 10ms\n"


async def test_stacktrace_only_for_bugs() -> None:
    plugin = setup("errors {\n panicRecoveryStacktrace\n}")
    with kdns_log() as log:
        with pytest.raises(KeyError):
            await plugin.serve(request(), failing(KeyError("zone")))  # type: ignore[arg-type]
        with pytest.raises(PluginError):
            await plugin.serve(request(), failing(PluginError("upstream down")))  # type: ignore[arg-type]
    lines = log.getvalue().splitlines()
    assert lines[0] == "[ERROR] plugin/errors: 2 example.org. A: 'zone'"
    assert lines[1] == "Traceback (most recent call last):"
    assert lines[-1] == "[ERROR] plugin/errors: 2 example.org. A: upstream down"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("errors /var/log/x", "invalid log file: /var/log/x"),
        ("errors stdout extra", "wrong argument count"),
        ("errors {\n consolidate 5m\n}", "wrong argument count"),
        ("errors {\n consolidate 5x abc\n}", "invalid duration '5x'"),
        ('errors {\n consolidate 5m "(" \n}', "invalid regular expression '('"),
        ("errors {\n consolidate 5m abc loud\n}", "unknown log level argument in consolidate: loud"),
        ("errors {\n stacktrace\n}", "unknown property 'stacktrace'"),
    ],
)
def test_bad_configuration(text: str, message: str) -> None:
    with pytest.raises(CorefileError, match=re.escape(message)) as e:
        setup(text)
    assert "Error during parsing" in str(e.value)  # file:line first, as every Corefile error


def test_stdout_is_accepted() -> None:
    assert setup("errors stdout").patterns == []


def test_logged_by_a_real_server(kdns: Callable[..., KdnsProcess]) -> None:
    # loadbalance passes every query on and nothing answers it: NoNextPlugin, a SERVFAIL.
    p = kdns(".:{port} {\n    errors\n    loadbalance\n}\n")
    reply = ask(p.port, "ExAmple.ORG.", "MX")
    assert rcode(reply) == "SERVFAIL"
    line = until(
        lambda: next((x for x in p.logs().splitlines() if x.startswith("[ERROR] plugin/errors")), None),
        "the errors line",
    )
    assert line == "[ERROR] plugin/errors: 2 example.org. MX: no next plugin found for ExAmple.ORG."


def test_without_errors_nothing_is_logged(kdns: Callable[..., KdnsProcess]) -> None:
    p = kdns(".:{port} {\n    loadbalance\n}\n")
    assert rcode(ask(p.port, "example.org.")) == "SERVFAIL"
    assert "plugin/errors" not in p.logs()
