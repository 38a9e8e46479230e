"""The one place where client events become Qt signals.

Architecture guide, "One bridge": :class:`Bridge` drains
``client.events()`` on the asyncio loop and re-emits what changed as a
handful of Qt signals. A burst is coalesced per event-loop tick: after the
first event of a batch the bridge yields once, then takes every event
already queued (``Subscription.pending``), so 1,000 arrivals published
together reach a model as one ``messages_received`` per conversation and
one ``conversations_changed`` -- one model update, not 1,000.

Events carry the views the client built in the transaction that made the
change; the few without (``view is None``) are read through the facade.
:class:`~messenger.client.EventsDropped` (the UI fell behind) becomes
:attr:`Bridge.reload_requested`: everything shown is read again.

Start the bridge *before* ``client.start()``, so that nothing published by
the first sync is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from PySide6.QtCore import QObject, Signal

from messenger.client import (
    AccountUpdated,
    ClientError,
    ConnectionState,
    ConnectionStateChanged,
    ContactUpdated,
    ConversationUpdated,
    ConversationView,
    DevicesChanged,
    Event,
    EventsDropped,
    MessageReceived,
    MessagesExpired,
    MessageStatusChanged,
    MessageUpdated,
    MessageView,
    OperationFailed,
    PreferencesChanged,
    Subscription,
    TransferProgress,
    TypingChanged,
)

log = logging.getLogger(__name__)

#: More message events without views than this in one batch: reload instead.
_MAX_READS_PER_BATCH = 64


class EventSource(Protocol):
    """What the bridge needs from a client (``MessengerClient`` or a fake)."""

    def events(self) -> Subscription: ...

    async def message(self, message_id: int) -> MessageView: ...

    async def conversation(self, conversation_id: int) -> ConversationView: ...


class Bridge(QObject):
    """Client events as Qt signals, one batch per event-loop tick."""

    #: ``list[ConversationView]``: conversations whose view changed (newest state).
    conversations_changed = Signal(object)
    #: ``conversation_id, list[MessageView]``: new messages, oldest first.
    messages_received = Signal(int, object)
    #: ``conversation_id, list[MessageView]``: edited, deleted, reacted, status.
    messages_updated = Signal(int, object)
    #: ``conversation_id, account_id, active``.
    typing_changed = Signal(int, str, bool)
    #: ``ConnectionState, error sentence or None``.
    connection_changed = Signal(object, object)
    #: ``conversation_id, message_id, done, total``: the newest progress of a transfer.
    transfer_progress = Signal(int, int, int, int)
    #: ``conversation_id, list[int]``: disappearing messages deleted on this device.
    messages_expired = Signal(int, object)
    #: ``list[str]``: contacts (account ids) that changed.
    contacts_changed = Signal(object)
    #: ``conversation_id or None, sentence``: a queued change was refused.
    operation_failed = Signal(object, str)
    #: ``display name or None``.
    account_changed = Signal(object)
    #: ``Preferences``-like ``(read_receipts, typing_indicators)``.
    preferences_changed = Signal(bool, bool)
    #: This account's devices changed (added, removed, renamed, seen): read them again.
    devices_changed = Signal()
    #: The bridge fell behind (or could not read views): re-read everything shown.
    reload_requested = Signal()
    #: ``int``: how many events the last batch held (for tests and the benchmark).
    batch_processed = Signal(int)

    def __init__(self, client: EventSource, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._client = client
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.events_seen = 0
        self.connection: ConnectionState | None = None
        self.connection_error: str | None = None

    def start(self) -> None:
        """Subscribe now (before ``client.start()``) and drain in a task."""
        if self._subscription is not None:
            return
        self._subscription = self._client.events()
        self._task = asyncio.get_event_loop().create_task(self._drain(self._subscription))

    async def stop(self) -> None:
        """Unsubscribe and end the task."""
        if self._subscription is not None:
            self._subscription.close()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _drain(self, subscription: Subscription) -> None:
        try:
            async for first in subscription:
                # Let everything published in this tick reach the queue first.
                await asyncio.sleep(0)
                batch: list[Event] = [first, *subscription.pending()]
                try:
                    await self.dispatch(batch)
                except ClientError as error:
                    log.info("could not read the views of a batch: %s", type(error).__name__)
                    self.reload_requested.emit()
                except Exception:
                    log.exception("the bridge failed on a batch of events")
                    self.reload_requested.emit()
        except asyncio.CancelledError:
            raise

    async def dispatch(self, batch: list[Event]) -> None:
        """Turn one batch of events into (at most a few) signals."""
        self.batches += 1
        self.events_seen += len(batch)
        conversations: dict[int, ConversationView | None] = {}
        received: dict[int, dict[int, MessageView | None]] = {}
        updated: dict[int, dict[int, MessageView | None]] = {}
        contacts: list[str] = []
        progress: dict[int, TransferProgress] = {}
        expired: dict[int, list[int]] = {}
        devices = False
        reload = False
        for event in batch:
            if isinstance(event, MessageReceived):
                received.setdefault(event.conversation_id, {})[event.message_id] = event.view
                if event.conversation is not None:
                    conversations[event.conversation_id] = event.conversation
                else:
                    conversations.setdefault(event.conversation_id, None)
            elif isinstance(event, MessageUpdated | MessageStatusChanged):
                progress.pop(event.message_id, None)  # the view is newer
                target = received.get(event.conversation_id, {})
                if event.message_id in target:
                    target[event.message_id] = event.view
                else:
                    updated.setdefault(event.conversation_id, {})[event.message_id] = event.view
            elif isinstance(event, ConversationUpdated):
                conversations[event.conversation_id] = event.view
            elif isinstance(event, TypingChanged):
                self.typing_changed.emit(event.conversation_id, event.account_id, event.active)
            elif isinstance(event, ConnectionStateChanged):
                self.connection = event.state
                self.connection_error = event.error
                self.connection_changed.emit(event.state, event.error)
            elif isinstance(event, ContactUpdated):
                contacts.append(event.account_id)
            elif isinstance(event, OperationFailed):
                self.operation_failed.emit(event.conversation_id, event.user_message)
            elif isinstance(event, AccountUpdated):
                self.account_changed.emit(event.display_name)
            elif isinstance(event, PreferencesChanged):
                self.preferences_changed.emit(event.read_receipts, event.typing_indicators)
            elif isinstance(event, DevicesChanged):
                devices = True
            elif isinstance(event, TransferProgress):
                progress[event.message_id] = event  # only the newest counts
            elif isinstance(event, MessagesExpired):
                expired.setdefault(event.conversation_id, []).extend(event.message_ids)
            elif isinstance(event, EventsDropped):
                reload = True
        if reload:
            self.reload_requested.emit()
            self.batch_processed.emit(len(batch))
            return
        # An expired message is never shown again, even if an earlier event of
        # this batch carried it (its text must not reach the screen).
        gone = {mid for ids in expired.values() for mid in ids}
        for group in (*received.values(), *updated.values()):
            for mid in gone & group.keys():
                del group[mid]
        for mid in gone:
            progress.pop(mid, None)
        missing = [
            mid
            for group in (*received.values(), *updated.values())
            for mid, view in group.items()
            if view is None
        ]
        if len(missing) > _MAX_READS_PER_BATCH:
            self.reload_requested.emit()
            self.batch_processed.emit(len(batch))
            return
        for group in (*received.values(), *updated.values()):
            for mid, view in list(group.items()):
                if view is None:
                    try:
                        group[mid] = await self._client.message(mid)
                    except ClientError:
                        del group[mid]
        views: list[ConversationView] = []
        for cid, cview in conversations.items():
            if cview is None:
                try:
                    cview = await self._client.conversation(cid)
                except ClientError:
                    continue
            views.append(cview)
        if devices:
            self.devices_changed.emit()  # once per batch, however many changed
        if contacts:
            self.contacts_changed.emit(contacts)
        if views:
            self.conversations_changed.emit(views)
        for cid, ids in expired.items():
            self.messages_expired.emit(cid, ids)
        for cid, messages in received.items():
            found = [v for v in messages.values() if v is not None]
            found.sort(key=lambda v: v.id)
            if found:
                self.messages_received.emit(cid, found)
        for cid, messages in updated.items():
            found = [v for v in messages.values() if v is not None]
            if found:
                self.messages_updated.emit(cid, found)
        for event in progress.values():
            self.transfer_progress.emit(
                event.conversation_id, event.message_id, event.done, event.total
            )
        self.batch_processed.emit(len(batch))
