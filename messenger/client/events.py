"""What the client reports to the UI, as an async stream of small events.

Architecture guide, convention 6: events are small frozen dataclasses that
name what changed (ids, a status). Those about a message or a conversation
also carry its new view (``view``: a :class:`~.models.MessageView` or
:class:`~.models.ConversationView`), built in the store transaction that
made the change, so a UI renders a burst of arrivals without reading the
store once per event. ``view`` is left out of equality, and may be None
(then read it through the facade).

:class:`EventBus` fans every event out to each :class:`Subscription`
(``async for event in client.events(): ...``), in the order they were
published. A subscription holds at most ``maxsize`` events: a consumer that
falls that far behind loses the newer ones, and gets one
:class:`EventsDropped` where they were, telling it to re-read what it shows.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from .store.messages import MessageStatus

if TYPE_CHECKING:
    from .models import ConversationView, MessageView

__all__ = [
    "AccountUpdated",
    "ConnectionState",
    "ConnectionStateChanged",
    "ContactUpdated",
    "ConversationUpdated",
    "DevicesChanged",
    "Event",
    "EventBus",
    "EventsDropped",
    "MessageReceived",
    "MessageStatusChanged",
    "MessageUpdated",
    "MessagesExpired",
    "OperationFailed",
    "PreferencesChanged",
    "Subscription",
    "TransferProgress",
    "TypingChanged",
]


class ConnectionState(enum.StrEnum):
    OFFLINE = "offline"
    """Not connected; retrying after a backoff (or stopped)."""
    CONNECTING = "connecting"
    """Catching up and opening the push socket."""
    ONLINE = "online"
    """Caught up; new messages arrive as they are stored."""
    REPLACED = "replaced"
    """Stopped for good: a copy restored from a backup took the account over
    (:class:`~messenger.client.errors.DeviceReplacedError`); no reconnecting."""
    REMOVED = "removed"
    """Stopped for good: another device of the account removed this one
    (:class:`~messenger.client.errors.DeviceRemovedError`, docs/devices.md)."""


@dataclass(frozen=True, slots=True)
class ConversationUpdated:
    """A conversation was created, joined, left, renamed, or its members changed.

    Also when the user muted, unmuted, archived or blocked it, changed its
    receipts or typing choice or its draft, or marked it read. (A timed mute
    ends without an event: ``conversation.muted_until`` says when.)
    """

    conversation_id: int
    view: ConversationView | None = field(default=None, compare=False, repr=False)
    """The conversation as it is now (None: read it with ``client.conversation``)."""


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A new message is in the conversation: incoming, sent from here, or a system note."""

    conversation_id: int
    message_id: int
    view: MessageView | None = field(default=None, compare=False, repr=False)
    """The message as it is now (None: read it with ``client.message``)."""
    conversation: ConversationView | None = field(default=None, compare=False, repr=False)
    """Its conversation with this message in (unread count, activity), for a list of chats."""


@dataclass(frozen=True, slots=True)
class MessageUpdated:
    """A message was edited or deleted, or its reactions changed."""

    conversation_id: int
    message_id: int
    view: MessageView | None = field(default=None, compare=False, repr=False)
    """The message as it is now (None: read it with ``client.message``)."""


@dataclass(frozen=True, slots=True)
class MessageStatusChanged:
    """An outgoing message was sent, read, or failed."""

    conversation_id: int
    message_id: int
    status: MessageStatus
    view: MessageView | None = field(default=None, compare=False, repr=False)
    """The message as it is now (None: read it with ``client.message``)."""


@dataclass(frozen=True, slots=True)
class TypingChanged:
    conversation_id: int
    account_id: str
    active: bool


@dataclass(frozen=True, slots=True)
class ContactUpdated:
    """A contact was added, renamed, blocked or unblocked, or one of its keys changed."""

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


@dataclass(frozen=True, slots=True)
class AccountUpdated:
    """This user's own name changed."""

    display_name: str | None


@dataclass(frozen=True, slots=True)
class PreferencesChanged:
    """The global read-receipt or typing choice changed (the new values)."""

    read_receipts: bool
    typing_indicators: bool


@dataclass(frozen=True, slots=True)
class DevicesChanged:
    """This account's devices changed: one was added, removed, renamed or seen
    (read them again with ``MessengerClient.devices()``)."""


@dataclass(frozen=True, slots=True)
class TransferProgress:
    """An attachment's upload or download moved on (``done`` of ``total`` bytes).

    Published at most a few times a second per transfer; the end of a
    transfer (done, failed, cancelled) is a :class:`MessageUpdated`.
    """

    conversation_id: int
    message_id: int
    done: int
    total: int
    upload: bool


@dataclass(frozen=True, slots=True)
class MessagesExpired:
    """Disappearing messages reached their deadline and were deleted from this device."""

    conversation_id: int
    message_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class EventsDropped:
    """This subscription fell behind and lost ``count`` events here: re-read what is shown."""

    count: int


Event = (
    ConversationUpdated
    | MessageReceived
    | MessageUpdated
    | MessageStatusChanged
    | TypingChanged
    | ContactUpdated
    | ConnectionStateChanged
    | OperationFailed
    | AccountUpdated
    | PreferencesChanged
    | DevicesChanged
    | TransferProgress
    | MessagesExpired
    | EventsDropped
)

#: How many events a subscription holds before it drops the newer ones.
DEFAULT_MAXSIZE: Final = 10_000

_CLOSED = object()


class Subscription:
    """One consumer's stream of events; iterate it, and close it when done.

    It holds at most ``maxsize`` events. Once full, newer events are
    dropped (and counted) until the consumer has taken every held one; it
    then gets one :class:`EventsDropped` and the events published after it.
    """

    def __init__(self, bus: EventBus, maxsize: int = DEFAULT_MAXSIZE) -> None:
        if maxsize < 1:
            raise ValueError("a subscription holds at least one event")
        self._bus = bus
        self._maxsize = maxsize
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._closed = False
        self._ended = False
        self._dropped = 0

    @property
    def dropped(self) -> int:
        """Events dropped and not yet reported by an :class:`EventsDropped`."""
        return self._dropped

    def _put(self, item: object) -> None:
        if self._closed:
            return
        if self._dropped or self._queue.qsize() >= self._maxsize:
            self._dropped += 1
            return
        self._queue.put_nowait(item)

    def _next(self) -> object:
        """The next item held, an EventsDropped once they are taken, or _CLOSED."""
        if not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not _CLOSED:
                return item
            self._ended = True
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            return EventsDropped(dropped)
        return _CLOSED if self._ended else None

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        while True:
            item = self._next()
            if item is _CLOSED:
                raise StopAsyncIteration
            if item is not None:
                return item  # type: ignore[return-value]
            item = await self._queue.get()
            if item is _CLOSED:
                self._ended = True
                continue
            return item  # type: ignore[return-value]

    def pending(self) -> list[Event]:
        """The events received and not yet iterated over (without waiting)."""
        items: list[Event] = []
        while (item := self._next()) is not None and item is not _CLOSED:
            items.append(item)  # type: ignore[arg-type]
        return items

    def close(self) -> None:
        """Stop receiving events; iteration ends after the ones already queued."""
        self._bus._unsubscribe(self)
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(_CLOSED)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


class EventBus:
    """Publishes events to every open subscription."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []

    def subscribe(self, maxsize: int = DEFAULT_MAXSIZE) -> Subscription:
        subscription = Subscription(self, maxsize)
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
