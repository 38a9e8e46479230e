"""Real-time push: who is waiting for which queue, in this process and others.

A :class:`Hub` maps queue IDs to the :class:`Subscription` of each open
WebSocket or long poll. After a transaction that stored messages commits,
the server calls :meth:`Hub.publish` with the new entries, so a subscriber in
this process gets the bytes without reading them back from the database.

With PostgreSQL several processes share the queues. The storing transaction
also sends a ``NOTIFY`` (:func:`notification_payloads`) naming the queues and
sequence numbers; every process's :meth:`Hub.on_notification` wakes its own
subscribers of those queues, which then read the new entries from the
database. A subscriber that missed something (a dropped LISTEN connection,
an overflowing buffer) is told to re-read, so nothing is lost: the database
is the truth and the hub only says when to look.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "CHANNEL",
    "Delivery",
    "Hub",
    "Subscription",
    "notification_payloads",
]

#: The PostgreSQL notification channel.
CHANNEL: Final = "messenger_queues"

#: NOTIFY payloads must stay under 8000 bytes.
_MAX_PAYLOAD: Final = 7000
#: A subscriber that falls this far behind re-reads from the database.
_MAX_BUFFERED: Final = 1000


@dataclass(frozen=True, slots=True)
class Delivery:
    """One stored queue entry."""

    queue_id: str
    seq: int
    data: bytes


class Subscription:
    """One waiter on one queue."""

    def __init__(self, queue_id: str) -> None:
        self.queue_id = queue_id
        self._buffer: list[tuple[int, bytes]] = []
        self._resync = False
        self._event = asyncio.Event()

    def _deliver(self, seq: int, data: bytes) -> None:
        if len(self._buffer) >= _MAX_BUFFERED:
            self._buffer.clear()
            self._resync = True
        elif not self._resync:
            self._buffer.append((seq, data))
        self._event.set()

    def _wake(self) -> None:
        self._resync = True
        self._event.set()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait for something new; ``False`` on timeout."""
        if self._event.is_set():
            return True
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            return False
        return True

    def take(self) -> tuple[list[tuple[int, bytes]], bool]:
        """``(buffered entries, must re-read from the database)``; clears both."""
        entries, resync = self._buffer, self._resync
        self._buffer = []
        self._resync = False
        self._event.clear()
        return entries, resync


class Hub:
    """The subscriptions of this process."""

    def __init__(self) -> None:
        #: Identifies this process in notifications, to skip its own.
        self.origin = secrets.token_hex(8)
        self._subs: dict[str, set[Subscription]] = {}
        #: Set when the process shuts down (:meth:`close`).
        self.closing = False

    def subscribe(self, queue_id: str) -> Subscription:
        sub = Subscription(queue_id)
        self._subs.setdefault(queue_id, set()).add(sub)
        if self.closing:
            sub._wake()
        return sub

    def close(self) -> None:
        """The process is shutting down: wake every subscriber, and every later one
        at once, so that long polls answer now instead of holding the shutdown
        until their wait ends."""
        self.closing = True
        self.wake_all()

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.queue_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.queue_id]

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._subs.values())

    def publish(self, deliveries: Iterable[Delivery]) -> None:
        """Hand freshly committed entries to this process's subscribers."""
        for d in deliveries:
            for sub in self._subs.get(d.queue_id, ()):
                sub._deliver(d.seq, d.data)

    def wake_queue(self, queue_id: str) -> None:
        """Make the subscribers of one queue re-read it."""
        for sub in self._subs.get(queue_id, ()):
            sub._wake()

    def wake_all(self) -> None:
        """Make every subscriber re-read its queue."""
        for subs in self._subs.values():
            for sub in subs:
                sub._wake()

    def on_notification(self, payload: str) -> None:
        """Handle a NOTIFY from any process (see :func:`notification_payloads`)."""
        origin, _, rest = payload.partition(" ")
        if origin == "*":
            self.wake_all()
            return
        if origin == self.origin:
            return
        for queue_id in rest.split(","):
            for sub in self._subs.get(queue_id, ()):
                sub._wake()


def notification_payloads(origin: str, queue_ids: Iterable[str]) -> list[str]:
    """NOTIFY payloads naming ``queue_ids``, each under PostgreSQL's size limit."""
    payloads: list[str] = []
    current: list[str] = []
    size = len(origin) + 1
    for queue_id in queue_ids:
        if current and size + len(queue_id) + 1 > _MAX_PAYLOAD:
            payloads.append(f"{origin} {','.join(current)}")
            current, size = [], len(origin) + 1
        current.append(queue_id)
        size += len(queue_id) + 1
    if current:
        payloads.append(f"{origin} {','.join(current)}")
    return payloads
