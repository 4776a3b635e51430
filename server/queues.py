"""Per-model FIFO turns: a llama.cpp context serves one generation at a time, the others wait in order.

Each model has one `ModelQueue`: `turn()` waits (asyncio, in the event loop) until the model is free and every
earlier request has had its turn. At most `size` requests wait; one more gets `QueueFull`, which the server
answers with 429 and Retry-After. A request that stops waiting (its client left) leaves the queue; a turn
granted to it is passed on. The turn is released by whoever holds it once the model is free again: for a
generation running in a worker thread, when that thread has finished, not when the client has gone.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from dataclasses import dataclass, field


class QueueFull(Exception):
    def __init__(self, model: str, waiting: int, retry_after_s: float) -> None:
        self.model = model
        self.waiting = waiting
        self.retry_after_s = retry_after_s
        super().__init__(f"model '{model}' is busy and {waiting} request(s) already wait for it (server.queue_size)"
                         f"; retry in about {max(1, math.ceil(retry_after_s))} s")


@dataclass
class ModelQueue:
    model: str
    size: int
    busy: bool = False
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)
    recent_s: deque[float] = field(default_factory=lambda: deque(maxlen=8))  # recent turn lengths, for Retry-After

    def retry_after_s(self) -> float:
        typical = sorted(self.recent_s)[len(self.recent_s) // 2] if self.recent_s else 5.0
        return typical * (len(self.waiting) + 1)

    async def turn(self) -> None:
        """Wait for this model's turn; raise QueueFull when `size` requests already wait."""
        if not self.busy and not self.waiting:
            self.busy = True
            return
        if len(self.waiting) >= self.size:
            raise QueueFull(self.model, len(self.waiting), self.retry_after_s())
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append(waiter)
        try:
            await waiter
        except BaseException:  # cancelled: leave the queue, or pass on a turn granted meanwhile
            if waiter in self.waiting:
                self.waiting.remove(waiter)
            elif waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release(None)
            raise

    def release(self, held_s: float | None) -> None:
        """End the current turn (after `held_s` seconds) and hand it to the next waiter, first come first."""
        if held_s is not None:
            self.recent_s.append(held_s)
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)  # `busy` stays True: the turn passes on
                return
        self.busy = False

    def fail_waiting(self, exc: BaseException) -> None:
        """Wake every waiter with `exc` (shutdown)."""
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_exception(exc)
