"""Stopping background tasks: the one way plugins and sources end the loops they started."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel each task in turn and wait until it has ended; None entries are skipped.

    Stopping a plugin must not leave its task running (it would outlive a reload and act on a
    retired configuration), nor raise the task's CancelledError into the caller, which is stopping
    on purpose. Any other exception the task ended with still propagates.
    """
    for task in tasks:
        if task is None:
            continue
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
