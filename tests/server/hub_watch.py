"""Observing the server's push hub, so that tests wait for states, not for time.

A long poll or a push socket subscribes to its queue in the hub and then
waits on the subscription. :func:`until` waits for a condition with a
deadline; :func:`watch_waits` counts the waits of one queue's subscribers,
so a test can send a message only once a long poll is parked: when the poll
then returns that message, it was woken by it (and had not returned early).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from messenger.server.push import Hub, Subscription

#: The longest a test waits for a state of the server.
DEADLINE = 10.0


async def until(check: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Wait until ``check()`` holds; fail with ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def subscribers(hub: Hub, queue_id: str) -> int:
    """The hub's subscriptions to ``queue_id`` (long polls and push sockets)."""
    return len(hub._subs.get(queue_id, ()))


@dataclass
class WaitCounter:
    """How many times subscribers of the queue started waiting on the hub."""

    waits: int = 0


@contextlib.contextmanager
def watch_waits(hub: Hub, queue_id: str) -> Iterator[WaitCounter]:
    """Count the waits of ``queue_id``'s subscriptions made while in the block."""
    counter = WaitCounter()
    original = hub.subscribe

    def subscribe(subscribed: str) -> Subscription:
        sub = original(subscribed)
        if subscribed == queue_id:
            inner = sub.wait

            async def wait(timeout: float | None = None) -> bool:
                counter.waits += 1
                return await inner(timeout)

            setattr(sub, "wait", wait)  # noqa: B010 -- an instance attribute, for this test
        return sub

    setattr(hub, "subscribe", subscribe)  # noqa: B010
    try:
        yield counter
    finally:
        delattr(hub, "subscribe")
