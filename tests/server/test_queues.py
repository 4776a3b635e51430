"""ModelQueue: FIFO turns, the size limit, a waiter that leaves, a turn granted to one that left (pure policy)."""

from __future__ import annotations

import asyncio

import pytest

from ggroute.server.queues import ModelQueue, QueueFull


def test_turns_are_first_come_first_served_and_the_queue_has_a_size() -> None:
    async def check() -> None:
        queue = ModelQueue("coder", size=2)
        order: list[int] = []
        await queue.turn()  # free: the first gets it at once

        async def wait(n: int) -> None:
            await queue.turn()
            order.append(n)

        waiters = [asyncio.ensure_future(wait(n)) for n in (1, 2)]
        await asyncio.sleep(0)
        with pytest.raises(QueueFull) as info:
            await queue.turn()
        assert info.value.waiting == 2 and info.value.retry_after_s == 15.0  # no history: 5 s per turn ahead
        queue.release(2.0)
        await asyncio.sleep(0)
        assert order == [1]
        queue.release(4.0)
        await asyncio.gather(*waiters)
        assert order == [1, 2] and queue.busy
        queue.release(None)
        assert not queue.busy and queue.retry_after_s() == 4.0  # the median turn, one turn ahead

    asyncio.run(check())


def test_a_waiter_that_leaves_frees_its_place_and_passes_on_a_granted_turn() -> None:
    async def check() -> None:
        queue = ModelQueue("coder", size=1)
        await queue.turn()
        leaving = asyncio.ensure_future(queue.turn())
        await asyncio.sleep(0)
        leaving.cancel()
        await asyncio.sleep(0)
        assert not queue.waiting  # its place is free again
        second = asyncio.ensure_future(queue.turn())
        third = asyncio.ensure_future(queue.turn())
        await asyncio.sleep(0)
        assert third.done() and isinstance(third.exception(), QueueFull)
        queue.release(None)  # granted to `second`, which is cancelled before it runs
        second.cancel()
        await asyncio.sleep(0)
        assert not queue.busy  # the turn was passed on (nobody left), not lost

    asyncio.run(check())


def test_shutdown_wakes_every_waiter_with_the_error() -> None:
    async def check() -> None:
        queue = ModelQueue("coder", size=3)
        await queue.turn()
        waiters = [asyncio.ensure_future(queue.turn()) for _ in range(2)]
        await asyncio.sleep(0)
        queue.fail_waiting(RuntimeError("shutting down"))
        results = await asyncio.gather(*waiters, return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results) and queue.busy  # the running one still holds it

    asyncio.run(check())
