"""`errors` — log every failure of a later plugin the way CoreDNS does, then let the server SERVFAIL.

Line format (CoreDNS plugin/errors): `[ERROR] plugin/errors: <rcode> <qname> <QTYPE>: <error>`,
where rcode is the number the server answers with (2, SERVFAIL) and qname is lower-cased. The reply
itself is not changed: the exception is re-raised and kdns.server.dispatch writes the SERVFAIL.

`consolidate DURATION REGEXP [LEVEL]` folds errors matching REGEXP into one line per DURATION
(`N errors like 'REGEXP' occurred in last DURATION`), as CoreDNS does, so a dead upstream does not
flood the log. The first matching pattern wins. `panicRecoveryStacktrace` adds the traceback for
exceptions that are bugs rather than failures (kdns.metrics.is_panic).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, field
from typing import ClassVar

from dnslib import RCODE

from kdns.corefile.model import Directive
from kdns.log import plugin_logger
from kdns.metrics import is_panic
from kdns.plugin import Handler, Plugin, SetupContext
from kdns.plugins._args import expect_args, parse_duration, unknown_property
from kdns.plugins._text import go_duration, qtype_text
from kdns.request import Reply, Request

_log = plugin_logger("errors")
_LEVELS = {"warning": logging.WARNING, "error": logging.ERROR, "info": logging.INFO, "debug": logging.DEBUG}


@dataclass
class Pattern:
    """One `consolidate` line: matching errors are counted, then reported once per period."""

    period: float
    regexp: re.Pattern[str]
    level: int = logging.ERROR
    count: int = 0
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def flush(self) -> None:
        self.timer = None
        count, self.count = self.count, 0
        if count:
            _log.log(
                self.level,
                "%d errors like '%s' occurred in last %s",
                count,
                self.regexp.pattern,
                go_duration(self.period),
            )


class Errors(Plugin):
    name = "errors"
    reports_failures: ClassVar[bool] = True

    def __init__(self, patterns: list[Pattern], stacktrace: bool) -> None:
        self.patterns = patterns
        self.stacktrace = stacktrace
        self._stopped = False

    async def serve(self, request: Request, next_: Handler) -> Reply:
        try:
            return await next_(request)
        except Exception as e:
            self.report(request, e)
            raise

    def transparent_for(self, qname: str) -> bool:
        return True  # it acts only on failures, and a cached reply is never one

    def report(self, request: Request, error: Exception) -> None:
        text = str(error) or type(error).__name__
        pattern = next((p for p in self.patterns if p.regexp.search(text)), None)
        if pattern is not None and not self._stopped:
            pattern.count += 1
            if pattern.timer is None:
                pattern.timer = asyncio.get_running_loop().call_later(pattern.period, pattern.flush)
            return
        _log.error(
            "%d %s %s: %s",
            RCODE.SERVFAIL,
            request.qname_lower,
            qtype_text(request.qtype),
            text,
            exc_info=error if self.stacktrace and is_panic(error) else None,
        )

    async def stop(self) -> None:
        """Report what the consolidation windows still hold (CoreDNS does this at shutdown too)."""
        self._stopped = True
        for p in self.patterns:
            if p.timer is not None:
                p.timer.cancel()
                p.flush()


def _consolidate(d: Directive, child: Directive) -> Pattern:
    args = expect_args(child, 2, 3)
    period = parse_duration(child, args[0])
    try:
        regexp = re.compile(args[1])
    except re.error as e:
        raise child.error(f"invalid regular expression '{args[1]}': {e}") from None
    level = logging.ERROR
    if len(args) == 3:
        if args[2] not in _LEVELS:
            raise child.error(f"unknown log level argument in consolidate: {args[2]}")
        level = _LEVELS[args[2]]
    return Pattern(period, regexp, level)


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    args = expect_args(d, 0, 1)
    if args and args[0] != "stdout":
        raise d.error(f"invalid log file: {args[0]}")
    patterns: list[Pattern] = []
    stacktrace = False
    for child in d.children:
        if child.name == "consolidate":
            patterns.append(_consolidate(d, child))
        elif child.name == "panicrecoverystacktrace":  # the parser lower-cases names
            expect_args(child, 0, 0)
            stacktrace = True
        else:
            raise unknown_property(d, child)
    return Errors(patterns, stacktrace)
