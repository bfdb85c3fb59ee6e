"""`reload [INTERVAL [JITTER]]` — apply an edited Corefile without a restart (default 30s, jitter 15s).

Every INTERVAL ± JITTER/2 the Corefile is read again and its SHA-512 compared with the running
configuration's; on a change the controller reloads (kdns.server.runtime: build and start the new
configuration beside the old, swap, stop the old; a bad file keeps the old one and logs why). The
path is polled rather than watched: a ConfigMap volume swaps a `..data` symlink, which inotify on
the file would miss. As CoreDNS: INTERVAL >= 2s, JITTER >= 1s and at most INTERVAL/2, a file that
failed once is not retried until it changes again, imported files are not watched, and the log
shows `[INFO] plugin/reload: Running configuration SHA512 = <hex>` for each configuration applied.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import ClassVar

from kdns.corefile.model import Corefile, Directive
from kdns.log import plugin_logger
from kdns.metrics import counter, gauge
from kdns.plugin import Controller, Plugin, SetupContext
from kdns.plugins._args import expect_args, parse_duration
from kdns.tasks import cancel_and_wait

DEFAULT_INTERVAL = 30.0
DEFAULT_JITTER = 15.0
MIN_INTERVAL = 2.0
MIN_JITTER = 1.0
_OBSERVING_KEY = "reload.observing_loads"
_log = plugin_logger("reload")

FAILED = counter("reload", "failed_total", "Counter of the number of failed reload attempts.")
VERSION = gauge(
    "reload",
    "version_info",
    "A metric with a constant '1' value labeled by hash, and value which type of hash generated.",
    ("hash", "value"),
)


def uses_reload(corefile: Corefile) -> bool:
    return any(d.name == "reload" for block in corefile.blocks for d in block.directives)


def poll_interval(interval: float, jitter: float, rng: random.Random) -> float:
    """INTERVAL shifted by a random amount in [-JITTER/2, JITTER/2), JITTER capped at INTERVAL/2."""
    jitter = min(jitter, interval / 2)
    return interval + rng.uniform(-jitter / 2, jitter / 2)


class Reload(Plugin):
    name = "reload"
    in_query_path: ClassVar[bool] = False

    def __init__(self, controller: Controller, period: float, running_sha512: str) -> None:
        self.controller = controller
        self.period = period
        self.last_seen = running_sha512
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.controller.config_path == "stdin":
            _log.warning("the Corefile was read from standard input: there is no file to watch")
            return
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def check(self) -> bool:
        """Read the Corefile; ask for a reload when its content differs from the last one seen."""
        try:
            source = Path(self.controller.config_path).read_text()
        except OSError as e:
            _log.warning("cannot read %s: %s", self.controller.config_path, e.strerror)
            return False
        digest = Corefile.digest(source)
        if digest == self.last_seen:
            return False
        self.last_seen = digest  # a broken file is tried once, then again only after it changes
        self.controller.request_reload()
        return True

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            self.check()


def _watch_loads(ctx: SetupContext) -> None:
    """Once per process: log and export each applied configuration's hash, count failed reloads."""
    if ctx.shared.get(_OBSERVING_KEY):
        return
    ctx.shared[_OBSERVING_KEY] = True

    def applied(ok: bool, corefile: Corefile | None) -> None:
        if not ok:
            FAILED.inc()
        elif corefile is not None and uses_reload(corefile):
            _log.info("Running configuration SHA512 = %s", corefile.sha512)
            VERSION.clear()
            VERSION.labels("sha512", corefile.sha512).set(1)

    ctx.controller.reload_observers.append(applied)


def setup(d: Directive, ctx: SetupContext) -> Plugin:
    args = expect_args(d, 0, 2)
    if d.children:
        raise d.error("reload takes no block")
    interval = parse_duration(d, args[0], "interval") if args else DEFAULT_INTERVAL
    if interval < MIN_INTERVAL:
        raise d.error("interval value must be greater or equal to 2s")
    jitter = parse_duration(d, args[1], "jitter") if len(args) > 1 else DEFAULT_JITTER
    if jitter < MIN_JITTER:
        raise d.error("jitter value must be greater or equal to 1s")
    _watch_loads(ctx)
    return Reload(ctx.controller, poll_interval(interval, jitter, random.Random()), ctx.corefile.sha512)
