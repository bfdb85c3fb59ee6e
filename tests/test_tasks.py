"""Unit tests for kdns.tasks.cancel_and_wait."""

from __future__ import annotations

import asyncio

import pytest

from kdns.tasks import cancel_and_wait


async def test_cancels_and_waits_for_every_task_skipping_none() -> None:
    ended: list[str] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.append(name)

    a = asyncio.create_task(forever("a"))
    b = asyncio.create_task(forever("b"))
    await asyncio.sleep(0)  # let both start, so the cancellation lands inside them
    await cancel_and_wait(a, None, b)
    assert a.cancelled() and b.cancelled()
    assert ended == ["a", "b"]


async def test_finished_task_and_no_tasks_are_fine() -> None:
    async def quick() -> int:
        return 1

    done = asyncio.create_task(quick())
    await done
    await cancel_and_wait(done)
    await cancel_and_wait()
    assert done.result() == 1


async def test_other_exception_still_propagates() -> None:
    async def broken() -> None:
        raise ValueError("boom")

    task = asyncio.create_task(broken())
    await asyncio.sleep(0)  # it fails before it is cancelled
    with pytest.raises(ValueError, match="boom"):
        await cancel_and_wait(task)
