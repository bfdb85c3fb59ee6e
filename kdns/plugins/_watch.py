"""Polling files for changes, shared by the `file` and `hosts` plugins.

Both CoreDNS plugins poll (file: every `reload`, default 1m; hosts: every 5s) rather than use inotify,
which misses edits made through symlink swaps such as Kubernetes ConfigMap volumes. We do the same,
and compare (mtime, size) first so an unchanged file is not parsed again (as CoreDNS's hosts does).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterable

from kdns.tasks import cancel_and_wait

# (path, mtime_ns, size); (-1, -1) for a file that cannot be stat'ed, so its reappearance counts.
Signature = tuple[tuple[str, int, int], ...]


def file_signature(paths: Iterable[str]) -> Signature:
    """What we compare between polls: each file's modification time and size."""
    out = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            out.append((path, -1, -1))
        else:
            out.append((path, st.st_mtime_ns, st.st_size))
    return tuple(out)


class Poller:
    """Runs `check` every `interval` seconds in the background until `stop`.

    A failing check is logged and the polling goes on: a reload problem must never stop the server
    from answering with the data it already has.
    """

    def __init__(self, interval: float, check: Callable[[], Awaitable[None]], log: logging.Logger) -> None:
        self.interval = interval
        self._check = check
        self._log = log
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.interval > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._check()
            except Exception:
                self._log.exception("reload check failed")
