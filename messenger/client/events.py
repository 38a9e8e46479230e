"""What the client reports to the UI, as an async stream of small events.

Architecture guide, convention 6: events are small frozen dataclasses that
name what changed (ids, a status); the UI reads the new state through the
client's facade. :class:`EventBus` fans every event out to each
:class:`Subscription` (``async for event in client.events(): ...``), in the
order they were published.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass

from .store.messages import MessageStatus

__all__ = [
    "ConnectionState",
    "ConnectionStateChanged",
    "ContactUpdated",
    "ConversationUpdated",
    "Event",
    "EventBus",
    "MessageReceived",
    "MessageStatusChanged",
    "MessageUpdated",
    "OperationFailed",
    "Subscription",
    "TypingChanged",
]


class ConnectionState(enum.StrEnum):
    OFFLINE = "offline"
    """Not connected; retrying after a backoff (or stopped)."""
    CONNECTING = "connecting"
    """Catching up and opening the push socket."""
    ONLINE = "online"
    """Caught up; new messages arrive as they are stored."""


@dataclass(frozen=True, slots=True)
class ConversationUpdated:
    """A conversation was created, joined, left, renamed, or its members changed."""

    conversation_id: int


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A new message is in the conversation: incoming, sent from here, or a system note."""

    conversation_id: int
    message_id: int


@dataclass(frozen=True, slots=True)
class MessageUpdated:
    """A message was edited or deleted, or its reactions changed."""

    conversation_id: int
    message_id: int


@dataclass(frozen=True, slots=True)
class MessageStatusChanged:
    """An outgoing message was sent, read, or failed."""

    conversation_id: int
    message_id: int
    status: MessageStatus


@dataclass(frozen=True, slots=True)
class TypingChanged:
    conversation_id: int
    account_id: str
    active: bool


@dataclass(frozen=True, slots=True)
class ContactUpdated:
    """A contact was added, or one of its keys was seen for the first time or changed."""

    account_id: str


@dataclass(frozen=True, slots=True)
class ConnectionStateChanged:
    state: ConnectionState
    error: str | None = None
    """Why it is offline, as a sentence for the user."""


@dataclass(frozen=True, slots=True)
class OperationFailed:
    """A queued change (adding a member, renaming...) was refused for good."""

    conversation_id: int | None
    user_message: str


Event = (
    ConversationUpdated
    | MessageReceived
    | MessageUpdated
    | MessageStatusChanged
    | TypingChanged
    | ContactUpdated
    | ConnectionStateChanged
    | OperationFailed
)

_CLOSED = object()


class Subscription:
    """One consumer's stream of events; iterate it, and close it when done."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._closed = False

    def _put(self, item: object) -> None:
        if not self._closed:
            self._queue.put_nowait(item)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is _CLOSED:
            self._closed = True
            raise StopAsyncIteration
        return item  # type: ignore[return-value]

    def pending(self) -> list[Event]:
        """The events received and not yet iterated over (without waiting)."""
        items: list[Event] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is _CLOSED:
                self._closed = True
                break
            items.append(item)  # type: ignore[arg-type]
        return items

    def close(self) -> None:
        """Stop receiving events; iteration ends after the ones already queued."""
        self._bus._unsubscribe(self)
        self._put(_CLOSED)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


class EventBus:
    """Publishes events to every open subscription."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []

    def subscribe(self) -> Subscription:
        subscription = Subscription(self)
        self._subscriptions.append(subscription)
        return subscription

    def _unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    def publish(self, *events: Event) -> None:
        for event in events:
            for subscription in list(self._subscriptions):
                subscription._put(event)

    def close(self) -> None:
        """End every subscription."""
        for subscription in list(self._subscriptions):
            subscription.close()
