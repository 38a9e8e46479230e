"""Acknowledgements in bursts, at random times (docs/metadata.md §4).

Acking a queue deletes what was read from the server. Acking each page as
soon as it is processed would tell the server when each message was read.
The :class:`AckScheduler` instead acks after a random delay (uniform in
``[min_delay, max_delay]`` seconds, from :mod:`secrets`) counted from the
first message not yet acked; at once when ``max_pending`` messages wait (so
the queue never fills up with read messages); and when the client closes.
The local cursor already keeps a message from being processed twice, so an
ack lost to a crash costs only a second fetch of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["DEFAULT_ACK_POLICY", "AckPolicy", "AckScheduler"]

_log = logging.getLogger("messenger.client.acks")
_RESOLUTION: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class AckPolicy:
    """When acks go out: a random delay in ``[min_delay, max_delay]`` s, or ``max_pending``."""

    min_delay: float = 5.0
    max_delay: float = 30.0
    max_pending: int = 500

    def __post_init__(self) -> None:
        if not 0 <= self.min_delay <= self.max_delay:
            raise ValueError("0 <= min_delay <= max_delay")
        if self.max_pending < 1:
            raise ValueError("max_pending must be at least 1")

    def delay(self) -> float:
        """A delay drawn uniformly from the policy's range."""
        span = self.max_delay - self.min_delay
        return self.min_delay + span * secrets.randbelow(_RESOLUTION + 1) / _RESOLUTION


#: The app's policy.
DEFAULT_ACK_POLICY: Final = AckPolicy()


class AckScheduler:
    """Acks the queue up to the processed cursor, in bursts (see the module docstring)."""

    def __init__(self, ack: Callable[[int], Awaitable[object]], policy: AckPolicy) -> None:
        self._ack = ack
        self._policy = policy
        self._processed = 0
        self._acked = 0
        self._pending = 0
        self._timer: asyncio.TimerHandle | None = None
        self._running: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def pending(self) -> int:
        """Messages processed but not acked yet."""
        return self._pending

    def processed(self, cursor: int, count: int) -> None:
        """``count`` more messages were processed, the queue's cursor is now ``cursor``."""
        if cursor <= self._processed and count == 0:
            return
        self._processed = max(self._processed, cursor)
        self._pending += count
        if self._pending >= self._policy.max_pending:
            self._start()
        elif self._timer is None and self._processed > self._acked:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._policy.delay(), self._start)

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._running is None or self._running.done():
            self._running = asyncio.get_running_loop().create_task(
                self._send_quietly(), name="queue-ack"
            )

    async def _send_quietly(self) -> None:
        try:
            await self.flush()
        except Exception as exc:  # try again after another delay (or with the next burst)
            _log.info("ack failed (%s); retrying later", type(exc).__name__)
            if self._timer is None and self._processed > self._acked:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self._policy.delay(), self._start)

    async def flush(self) -> None:
        """Ack everything processed so far, now (errors propagate)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        async with self._lock:
            target, pending = self._processed, self._pending
            if target <= self._acked:
                return
            await self._ack(target)
            self._acked = max(self._acked, target)
            self._pending = max(0, self._pending - pending)
            if self._processed > self._acked and self._timer is None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(self._policy.delay(), self._start)

    async def close(self) -> None:
        """Ack what is left (best effort) and stop the timer."""
        with contextlib.suppress(Exception):
            await self.flush()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        running = self._running
        if running is not None and not running.done():
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
