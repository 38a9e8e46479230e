"""Waiting for a wake-up event with a time limit, in a way cancellation cannot slip past.

The long-running tasks of the client (outbox, maintenance, expiry, rejoin
boxes, transfers) sleep until their event is set or a deadline comes. On
Python 3.11, ``asyncio.wait_for`` can swallow a cancellation that lands just
as its wait ends (CPython gh-86296, fixed in 3.12): the task then goes on
and an ``await`` of it after ``cancel()`` never returns. ``asyncio.timeout``
tells its own timeout from an outside cancellation, so :func:`wait_event`
uses it.
"""

from __future__ import annotations

import asyncio

__all__ = ["wait_event"]


async def wait_event(event: asyncio.Event, timeout: float | None) -> bool:
    """Wait until ``event`` is set (True) or ``timeout`` seconds pass (False; None:
    no limit). A cancellation always propagates."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True
