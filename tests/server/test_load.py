"""The listener's in-flight budget (unit): UDP is refused at the bound, TCP waits in order, a waiter
cancelled after being woken hands its turn on, and a bound lowered by a reload holds."""

from __future__ import annotations

import asyncio

from kdns.server.load import InFlight


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_udp_is_refused_at_the_bound() -> None:
    budget = InFlight(lambda: 2)
    assert budget.try_take() and budget.try_take()
    assert not budget.try_take() and budget.count == 2
    budget.release()
    assert budget.try_take() and budget.count == 2


async def test_tcp_waits_first_come_first_served() -> None:
    budget = InFlight(lambda: 1)
    await budget.take()
    order: list[str] = []

    async def client(name: str) -> None:
        await budget.take()
        order.append(name)

    waiting = [asyncio.create_task(client(n)) for n in ("a", "b", "c")]
    await settle()
    assert order == [] and budget.count == 1
    for expected in (["a"], ["a", "b"], ["a", "b", "c"]):
        budget.release()
        await settle()
        assert order == expected and budget.count == 1
    await asyncio.gather(*waiting)


async def test_a_woken_waiter_that_is_cancelled_passes_its_turn_on() -> None:
    budget = InFlight(lambda: 1)
    await budget.take()
    first = asyncio.create_task(budget.take())
    second = asyncio.create_task(budget.take())
    await settle()
    budget.release()  # wakes `first`…
    first.cancel()  # …which is closed before it runs
    await settle()
    assert first.cancelled() and second.done() and budget.count == 1


async def test_a_cancelled_waiter_leaves_the_queue() -> None:
    budget = InFlight(lambda: 1)
    await budget.take()
    gone = asyncio.create_task(budget.take())
    await settle()
    gone.cancel()
    await settle()
    budget.release()
    assert budget.count == 0 and budget.try_take()


async def test_a_lowered_bound_holds_until_enough_finish() -> None:
    bound = [3]
    budget = InFlight(lambda: bound[0])
    for _ in range(3):
        await budget.take()
    bound[0] = 1  # a reload lowered it
    waiter = asyncio.create_task(budget.take())
    for count in (2, 1):
        budget.release()
        await settle()
        assert not waiter.done() and budget.count == count
    budget.release()
    await settle()
    assert waiter.done() and budget.count == 1
