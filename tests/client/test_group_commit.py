"""Group commit: the new messages of one tick share one store transaction.

Each ``send_text`` still returns only once its message is stored; a call
that fails is rolled back alone and the others of its batch are stored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from messenger.client import (
    ConversationNotFoundError,
    MessageReceived,
    MessageStatus,
    MessengerClient,
)

from .in_process import InProcessServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Transactions:
    """Counts the client's non-durable store transactions (the ones new messages use)."""

    def __init__(self, client: MessengerClient, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        store = client._store
        monkeypatch.setattr(store, "local_transaction", self._counted(store.local_transaction))

    def _counted(self, call: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await call(*args, **kwargs)

        return counted


async def chat_of(
    server: InProcessServer, clock: Callable[[], float] | None = None
) -> tuple[MessengerClient, int]:
    alice = await server.client("alice", clock=clock)
    bob = await server.client("bob")
    info = await bob.account()
    assert info is not None
    group = await alice.create_group("Burst", [info.account_id])
    return alice, group.id


async def test_messages_of_one_tick_share_one_transaction(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, chat = await chat_of(server)
    transactions = Transactions(alice, monkeypatch)
    texts = [f"message {i}" for i in range(50)]
    sent = await asyncio.gather(*(alice.send_text(chat, text) for text in texts))
    assert transactions.count == 1
    assert [m.body for m in sent] == texts
    assert len({m.id for m in sent}) == len(texts)
    stored = await alice.messages(chat, limit=200)
    own = [v.message for v in stored if v.message.body in texts]
    assert [m.body for m in own] == texts  # stored, in the order handed over
    assert all(m.outgoing and m.status is MessageStatus.PENDING for m in own)  # not started


async def test_sequential_sends_are_each_stored_before_they_return(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, chat = await chat_of(server)
    transactions = Transactions(alice, monkeypatch)
    for i in range(3):
        message = await alice.send_text(chat, f"one by one {i}")
        assert transactions.count == i + 1
        assert (await alice.message(message.id)).message.body == f"one by one {i}"


async def test_a_failing_send_fails_alone(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, chat = await chat_of(server)
    transactions = Transactions(alice, monkeypatch)
    outcomes = await asyncio.gather(
        alice.send_text(chat, "before"),
        alice.send_text(chat + 1000, "to no conversation"),
        alice.send_text(chat, "after"),
        return_exceptions=True,
    )
    assert transactions.count == 1
    assert isinstance(outcomes[1], ConversationNotFoundError)
    before, after = outcomes[0], outcomes[2]
    assert not isinstance(before, BaseException) and not isinstance(after, BaseException)
    bodies = [v.message.body for v in await alice.messages(chat, limit=200)]
    assert bodies.count("before") == 1 and bodies.count("after") == 1
    assert "to no conversation" not in bodies


async def test_the_events_of_a_burst_carry_the_conversation_as_stored(
    server: InProcessServer,
) -> None:
    alice, chat = await chat_of(server)
    events = alice.events()
    try:
        sent = await asyncio.gather(*(alice.send_text(chat, f"burst {i}") for i in range(20)))
        received: list[MessageReceived] = []
        while len(received) < len(sent):
            event = await asyncio.wait_for(events.__anext__(), 10.0)
            if isinstance(event, MessageReceived) and event.conversation_id == chat:
                received.append(event)
    finally:
        events.close()
    assert [e.message_id for e in received] == [m.id for m in sent]
    for event, message in zip(received, sent, strict=True):
        assert event.view is not None and event.view.message == message
        assert event.conversation is not None
        assert event.conversation.conversation.last_activity_at >= message.sent_at
    assert received[-1].conversation == await alice.conversation(chat)


async def test_a_burst_moves_the_activity_time_to_its_last_message(
    server: InProcessServer,
) -> None:
    # Each message of the burst a millisecond after the one before: the writes of
    # the batch after the first one must still move the conversation's activity
    # time when theirs is later (and may skip it only when it is not).
    # (The server checks signed requests' times: the clock starts now.)
    calls = [0]

    def clock() -> float:
        calls[0] += 1
        return time.time() + calls[0] * 0.0005  # two calls a millisecond, ahead of time

    alice, chat = await chat_of(server, clock)
    sent = await asyncio.gather(*(alice.send_text(chat, f"tick {i}") for i in range(30)))
    assert len({m.sent_at for m in sent}) > 10  # many different times in one batch
    stored = await alice.conversation(chat)
    assert stored.conversation.last_activity_at == max(m.sent_at for m in sent)


async def test_a_failing_send_leaves_the_others_of_its_batch_stored_once(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The batch runs in one savepoint; a write that raises rolls it back and the
    # writes run again one by one: what the first pass stored must not stay twice.
    alice, chat = await chat_of(server)
    transactions = Transactions(alice, monkeypatch)
    texts = [f"first {i}" for i in range(10)]
    outcomes = await asyncio.gather(
        *(alice.send_text(chat, text) for text in texts),
        alice.send_text(chat + 1000, "to no conversation"),
        *(alice.send_text(chat, f"last {i}") for i in range(10)),
        return_exceptions=True,
    )
    assert transactions.count == 1
    assert sum(isinstance(o, ConversationNotFoundError) for o in outcomes) == 1
    bodies = [v.message.body for v in await alice.messages(chat, limit=200)]
    expected = texts + [f"last {i}" for i in range(10)]
    assert [b for b in bodies if b in expected] == expected
    ids = [o.id for o in outcomes if not isinstance(o, BaseException)]
    assert len(set(ids)) == 20
    assert {v.message.id for v in await alice.messages(chat, limit=200)} >= set(ids)
