"""Waiting for a wake-up event (messenger.client.wake).

The client's long-running loops wait on an event with a deadline and are
cancelled at close; a cancellation must always end them, whatever moment it
lands at, or the close waits for a task that goes on.
"""

from __future__ import annotations

import asyncio

import pytest

from messenger.client.wake import wait_event

pytestmark = pytest.mark.anyio

DEADLINE = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_it_says_whether_the_event_came_or_the_time_ran_out() -> None:
    event = asyncio.Event()
    assert await wait_event(event, 0.001) is False
    event.set()
    assert await wait_event(event, 5.0) is True
    assert await wait_event(event, None) is True


async def test_a_loop_of_short_waits_always_ends_when_cancelled() -> None:
    """A loop that waits a millisecond at a time, as the rejoin box uploader does
    in its tests, cancelled at 200 different moments: every one ends."""
    event = asyncio.Event()

    async def loop() -> None:
        while True:
            await wait_event(event, 0.001)

    for n in range(200):
        task = asyncio.create_task(loop())
        await asyncio.sleep(0.0005 * (n % 7))
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=DEADLINE)
        assert task in done, f"cancellation {n} was swallowed"
        assert task.cancelled()


async def test_a_cancellation_that_lands_as_the_event_comes_is_not_lost() -> None:
    """The event is set and the task cancelled in one step of the loop: the wait
    ends with the event, and the cancellation must still end the task (on 3.11
    ``asyncio.wait_for`` returns the result and drops the cancellation)."""
    event = asyncio.Event()
    woken = 0

    async def loop() -> None:
        nonlocal woken
        while True:
            if await wait_event(event, DEADLINE * 10):
                woken += 1
                event.clear()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)  # the loop waits now
    event.set()
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=DEADLINE)
    assert task in done, "the cancellation was swallowed"
    assert task.cancelled() and woken == 0
