"""Events carry the views a UI renders, so a burst of arrivals costs it no store read.

Alice and Bob talk through the real server app in process (:mod:`.in_process`);
Bob's events are checked against what his facade returns afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from messenger.client import (
    ConversationUpdated,
    ConversationView,
    Event,
    MessageKind,
    MessageReceived,
    MessageStatus,
    MessageStatusChanged,
    MessageUpdated,
    MessageView,
    MessengerClient,
    NoteKind,
)

from .helpers import account_id
from .in_process import InProcessServer

pytestmark = pytest.mark.anyio

FLUSH = 10.0
BURST = 120


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class StoreReads:
    """Counts the calls a client makes to its store (``run`` and ``transaction``)."""

    def __init__(self, client: MessengerClient, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        store = client._store
        for name in ("run", "transaction"):
            monkeypatch.setattr(store, name, self._counted(getattr(store, name)))

    def _counted(self, call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await call(*args, **kwargs)

        return counted


async def render(client: MessengerClient, events: list[Event]) -> dict[int, MessageView]:
    """What a UI does: show each message and its chat, reading only what an event lacks."""
    shown: dict[int, MessageView] = {}
    chats: dict[int, ConversationView] = {}
    for event in events:
        if isinstance(event, MessageReceived | MessageUpdated | MessageStatusChanged):
            view = event.view if event.view is not None else await client.message(event.message_id)
            shown[view.id] = view
        if isinstance(event, MessageReceived | ConversationUpdated):
            chat = event.conversation if isinstance(event, MessageReceived) else event.view
            if chat is None:
                chat = await client.conversation(event.conversation_id)
            chats[chat.id] = chat
    return shown


async def test_a_burst_of_arrivals_renders_from_the_events_alone(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = await server.client("alice")
    bob = await server.client("bob")
    events = bob.events()
    group = await alice.create_group("Burst", [await account_id(bob)])
    await alice.flush(FLUSH)
    for i in range(BURST):
        await alice.send_text(group.id, f"message {i}")
    await alice.flush(FLUSH)

    await bob.sync()  # the Welcome, then every message, through the inbound pipeline
    received = events.pending()
    (chat,) = await bob.conversations()
    stored = await bob.messages(chat.id, limit=BURST + 10)
    assert [v.message.body for v in stored if v.message.kind is MessageKind.TEXT] == [
        f"message {i}" for i in range(BURST)
    ]

    # Every new message came with its view, equal to what the facade returns.
    arrivals = [e for e in received if isinstance(e, MessageReceived)]
    assert [e.message_id for e in arrivals] == [v.id for v in stored]
    texts = [v for v in stored if v.message.kind is MessageKind.TEXT]
    assert [e.view for e in arrivals[1:]] == texts
    # The note that Bob joined: its view named Alice as known then (by her account
    # id; her chosen name came right after, with a ContactUpdated).
    joined = arrivals[0].view
    assert joined is not None
    assert dataclasses.replace(joined.message, body=stored[0].message.body) == stored[0].message
    note = joined.note
    assert note is not None and note.kind is NoteKind.JOINED and note.name == "Burst"
    assert note.actor is not None and note.actor.account_id == await account_id(alice)
    assert stored[0].note is not None and stored[0].note.actor is not None
    assert stored[0].note.actor.name == "alice"
    assert stored[0].message.body == "alice added you to “Burst”"
    # Each also carries its conversation, so a list of chats shows the unread count:
    # as it is after the batch the message came in (the note alone; the texts together,
    # one batch of one catch-up page, whose views are computed once).
    unread = [e.conversation.unread for e in arrivals if e.conversation is not None]
    assert unread == [0] + [BURST] * BURST
    assert arrivals[-1].conversation == await bob.conversation(chat.id)
    # So do the conversation's own updates: the one Bob joined.
    updates = [e for e in received if isinstance(e, ConversationUpdated)]
    assert updates and all(e.view is not None and e.view.id == chat.id for e in updates)
    assert updates[0].view is not None and updates[0].view.name == "Burst"

    # A UI rendering from these events reads the store not once.
    reads = StoreReads(bob, monkeypatch)
    shown = await render(bob, received)
    assert reads.count == 0
    assert list(shown.values())[1:] == texts
    # (The counter does count: an event without views costs reads.)
    await render(bob, [MessageReceived(chat.id, stored[-1].id)])
    assert reads.count > 0


async def test_own_changes_carry_views_too(server: InProcessServer) -> None:
    alice = await server.client("alice")
    bob = await server.client("bob")
    chat = await alice.create_conversation(await account_id(bob))
    events = alice.events()

    sent = await alice.send_text(chat.id, "hi")
    (added,) = [e for e in events.pending() if isinstance(e, MessageReceived)]
    assert added.view is not None and added.view.message == sent
    assert added.view.message.status is MessageStatus.PENDING

    await alice.react(chat.id, sent.id, "👍")
    (reacted,) = events.pending()
    assert isinstance(reacted, MessageUpdated) and reacted.view is not None
    assert [(r.emoji, r.count, r.mine) for r in reacted.view.reactions] == [("👍", 1, True)]

    await alice.flush(FLUSH)
    statuses = [e for e in events.pending() if isinstance(e, MessageStatusChanged)]
    assert [e.status for e in statuses] == [MessageStatus.SENT]
    assert statuses[0].view == await alice.message(sent.id)

    muted = await alice.mute(chat.id)
    (update,) = events.pending()
    assert isinstance(update, ConversationUpdated) and update.view == muted
    assert update.view is not None and update.view.muted
    events.close()


async def test_views_are_left_out_of_equality() -> None:
    assert MessageReceived(1, 2) == MessageReceived(1, 2, None)
    assert ConversationUpdated(3) == ConversationUpdated(3, None)
    assert "view" not in repr(MessageReceived(1, 2))


async def test_a_subscriber_before_start_misses_nothing(server: InProcessServer) -> None:
    alice = await server.client("alice")
    bob = await server.client("bob")
    events = bob.events()  # before start(): nothing runs yet
    group = await alice.create_group("Early", [await account_id(bob)])
    await alice.send_text(group.id, "before Bob started")
    await alice.flush(FLUSH)

    await bob.start()  # catches up, then listens
    try:

        async def first_text() -> MessageReceived:
            async for event in events:
                if (
                    isinstance(event, MessageReceived)
                    and event.view is not None
                    and event.view.message.kind is MessageKind.TEXT
                ):
                    return event
            raise AssertionError("the stream ended")

        arrived = await asyncio.wait_for(first_text(), FLUSH)
        assert arrived.view is not None
        assert arrived.view.message.body == "before Bob started"
        assert arrived.view == await bob.message(arrived.message_id)
    finally:
        events.close()
