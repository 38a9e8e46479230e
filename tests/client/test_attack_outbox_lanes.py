"""One conversation's stuck sends never hold up another's (the outbox's lanes).

The outbox sender runs against a stand-in server (``httpx.MockTransport``)
that answers sends per group -- accepted, unavailable (a transient 503) or
refused (a typed permanent error) -- and a clock the test moves. Each
conversation is a lane: its items go out in order, lanes independently;
a transient failure backs off per item (exponential, capped, jitter from
:mod:`secrets`), a permanent one fails the item at once and tells the UI.

The same attack over a real server, with a group a malicious member has
wedged, is in ``tests/integration/test_attack_outbox_lanes.py``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from messenger.api import models as m
from messenger.api.errors import ApiError, ErrorCode
from messenger.api.fields import b64decode
from messenger.client.content import Content, Text, encode_content
from messenger.client.events import MessageStatusChanged, OperationFailed
from messenger.client.groups import (
    GROUP_CONFIG,
    ConversationInfo,
    group_extensions,
    new_key_package,
)
from messenger.client.net import Backoff, Transport
from messenger.client.session import Session
from messenger.client.store import ConversationKind, MessageStatus
from messenger.client.store.outbox import OutboxKind
from messenger.client.sync import InboundPipeline, OutboxSender
from messenger.mls.group import Group

from .sync_helpers import UNREACHABLE, Authority, close_session, make_session

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class StandIn:
    """Answers ``POST /v1/groups/{id}/messages`` (and ``.../messages/batch``, all or
    nothing) the way ``answers`` says, per group."""

    answers: dict[bytes, str] = field(default_factory=dict)
    sends: list[tuple[bytes, bytes]] = field(default_factory=list)
    """(group ID, idempotency key) of each message sent, in order."""
    requests: list[tuple[bytes, int]] = field(default_factory=list)
    """(group ID, messages in it) of each request, in order."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.split("/")
        assert request.method == "POST", request.url
        if parts[-1] == "batch":
            assert parts[-2] == "messages", request.url
            group_id = b64decode(parts[-3])
            items = m.SendBatchRequest.loads(request.content).messages
        else:
            assert parts[-1] == "messages", request.url
            group_id = b64decode(parts[-2])
            items = (m.SendRequest.loads(request.content),)
        self.requests.append((group_id, len(items)))
        for body in items:
            assert body.idempotency_key is not None
            self.sends.append((group_id, body.idempotency_key))
        answer = self.answers.get(group_id, "ok")
        if answer == "ok":
            if parts[-1] == "batch":
                results = tuple(m.SendResponse(0, 1) for _ in items)
                return httpx.Response(200, content=m.SendBatchResponse(results).dumps())
            return httpx.Response(200, content=m.SendResponse(0, 1).dumps())
        code = {"down": ErrorCode.UNAVAILABLE, "gone": ErrorCode.NOT_A_MEMBER}[answer]
        error = ApiError(code, answer)
        return httpx.Response(error.status, content=json.dumps(error.to_json()).encode())

    def count(self, group_id: bytes) -> int:
        """Requests to the group (a batch counts once)."""
        return sum(1 for g, _ in self.requests if g == group_id)


@dataclass
class World:
    bob: Session
    server: StandIn
    clock: Clock
    sender: OutboxSender

    async def conversation(self, name: str) -> tuple[bytes, int]:
        session = self.bob
        group = Group.create(
            new_key_package(session.account, os.urandom, now=int(time.time())),
            os.urandom,
            extensions=group_extensions(ConversationInfo(ConversationKind.GROUP, name)),
            config=GROUP_CONFIG,
            identity=session.account.verifier,
        )
        group_id, epoch, state = group.group_id, group.epoch, group.to_bytes()

        def write(s: object) -> int:
            conversation = s.conversations.create(  # type: ignore[attr-defined]
                group_id, ConversationKind.GROUP, now=0, title=name
            )
            s.groups.save(group_id, epoch, state, now=0)  # type: ignore[attr-defined]
            return int(conversation.id)

        return group_id, await session.store.transaction(write)

    async def send(self, group_id: bytes, conversation_id: int, text: str) -> tuple[int, bytes]:
        """Queue a text like the facade does: the message row and its outbox item."""
        account = self.bob.account
        uid, now = os.urandom(16), self.bob.now_ms()
        data = encode_content(Content(uid, now, Text(text)))

        def write(s: object) -> tuple[int, bytes]:
            message = s.messages.add(  # type: ignore[attr-defined]
                conversation_id,
                uid=uid,
                sender_account_id=account.account_id,
                sender_client_id=account.client_id,
                outgoing=True,
                body=text,
                sent_at=now,
                received_at=now,
                reply_to_uid=None,
            )
            item = s.outbox.enqueue(  # type: ignore[attr-defined]
                OutboxKind.MESSAGE,
                b"",
                now=now,
                group_id=group_id,
                message_id=message.id,
                content=data,
            )
            return int(message.id), bytes(item.idempotency_key)

        return await self.bob.store.transaction(write)

    async def status(self, message_id: int) -> MessageStatus:
        message = await self.bob.store.run(lambda s: s.messages.get(message_id))
        assert message is not None
        return message.status


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    bob = await make_session(tmp_path / "b", "bob", Authority())
    clock = Clock()
    server = StandIn()
    await bob.transport.aclose()
    bob.transport = Transport(
        UNREACHABLE, signer=bob.account.signer, transport=httpx.MockTransport(server)
    )
    bob.clock = clock
    sender = OutboxSender(bob, InboundPipeline(bob), backoff=Backoff(base=0.5, maximum=4.0))
    try:
        yield World(bob, server, clock, sender)
    finally:
        await close_session(bob)


async def test_a_failing_conversation_backs_off_per_item_and_never_blocks_another(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    jitter_draws: list[int] = []

    def no_jitter(bits: int) -> int:  # the sender's jitter comes from the secrets module
        jitter_draws.append(bits)
        return 0

    monkeypatch.setattr("secrets.randbits", no_jitter)
    stuck, stuck_id = await world.conversation("stuck")
    chat, chat_id = await world.conversation("chat")
    world.server.answers[stuck] = "down"
    first, first_key = await world.send(stuck, stuck_id, "first")
    second, second_key = await world.send(stuck, stuck_id, "second")
    hello, _ = await world.send(chat, chat_id, "hello")

    # The stuck conversation's batch (both items, in order) fails; the other
    # conversation's goes out anyway.
    assert not await world.sender.flush_once()
    assert world.server.count(stuck) == 1 and world.server.count(chat) == 1
    assert [key for group, key in world.server.sends if group == stuck] == [first_key, second_key]
    assert await world.status(hello) is MessageStatus.SENT
    assert jitter_draws, "the backoff's jitter is drawn from secrets"
    # The batch's head carries the failure; both stay queued, in order, built once.
    head = await world.bob.store.run(lambda s: s.outbox.head(stuck))
    assert head is not None and head.message_id == first and head.attempts == 1
    assert head.next_attempt_at == world.bob.now_ms() + 500
    items = await world.bob.store.run(lambda s: s.outbox.for_group(stuck))
    assert [i.message_id for i in items] == [first, second]
    built = [(i.payload, i.epoch) for i in items]
    assert all(i.built for i in items)

    # While it waits, the chat keeps going.
    again, _ = await world.send(chat, chat_id, "again")
    assert not await world.sender.flush_once()
    assert await world.status(again) is MessageStatus.SENT
    assert world.server.count(stuck) == 1

    # Each retry of the stuck item waits twice as long, up to the cap.
    delays = []
    for _ in range(6):
        world.clock.now = head.next_attempt_at / 1000
        started = world.bob.now_ms()
        assert not await world.sender.flush_once()
        head = await world.bob.store.run(lambda s: s.outbox.head(stuck))
        assert head is not None
        delays.append(head.next_attempt_at - started)
    assert delays == [1000, 2000, 4000, 4000, 4000, 4000]
    assert head.attempts == 7 and world.server.count(stuck) == 7
    assert await world.status(first) is MessageStatus.PENDING
    # Each retry sent the same requests again (same epoch): nothing was encrypted twice.
    items = await world.bob.store.run(lambda s: s.outbox.for_group(stuck))
    assert [(i.payload, i.epoch) for i in items] == built

    # The group works again: its two items go out, in order.
    world.server.answers[stuck] = "ok"
    world.clock.now = head.next_attempt_at / 1000
    assert await world.sender.flush_once()
    keys = [key for group, key in world.server.sends if group == stuck]
    assert keys[-2:] == [first_key, second_key]
    assert await world.status(first) is MessageStatus.SENT
    assert await world.status(second) is MessageStatus.SENT


async def test_a_refused_item_fails_at_once_and_its_conversation_goes_on(world: World) -> None:
    events = world.bob.events.subscribe()
    gone, gone_id = await world.conversation("gone")
    chat, chat_id = await world.conversation("chat")
    world.server.answers[gone] = "gone"
    refused, _ = await world.send(gone, gone_id, "refused")
    hello, _ = await world.send(chat, chat_id, "hello")
    assert await world.sender.flush_once()
    assert world.server.count(gone) == 1  # not retried
    assert await world.status(refused) is MessageStatus.FAILED
    assert await world.status(hello) is MessageStatus.SENT
    seen = events.pending()
    assert MessageStatusChanged(gone_id, refused, MessageStatus.FAILED) in seen
    assert any(isinstance(e, OperationFailed) and e.conversation_id == gone_id for e in seen)
    # The conversation's next item is tried on its own merits.
    world.server.answers[gone] = "ok"
    later, _ = await world.send(gone, gone_id, "later")
    assert await world.sender.flush_once()
    assert await world.status(later) is MessageStatus.SENT
