"""The inbound pipeline: ordering, pending messages, echoes, atomicity.

Alice drives a real MLS group by hand; Bob's pipeline gets her messages in
whatever order the test chooses.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import messenger.client.sync.inbound as inbound
from messenger.api.models import QueueMessage
from messenger.client.content import Content, Reaction, Text, encode_content
from messenger.client.errors import StoreIOError
from messenger.client.events import ConversationUpdated, MessageReceived
from messenger.client.groups import (
    GROUP_CONFIG,
    ConversationInfo,
    group_extensions,
    new_key_package,
    with_conversation_info,
)
from messenger.client.session import Session
from messenger.client.store import ConversationKind, MessageKind
from messenger.client.sync import CURSOR_KEY, InboundPipeline
from messenger.mls.group import Group

from .sync_helpers import Authority, close_session, make_session, publish_key_package

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class World:
    alice: Session
    bob: Session
    group: Group
    """Alice's view of the group."""
    welcome: bytes
    pipeline: InboundPipeline

    def say(self, text: str) -> bytes:
        content = Content(os.urandom(16), int(time.time() * 1000), Text(text))
        return self.group.encrypt(encode_content(content), os.urandom)

    def rename(self, name: str) -> bytes:
        info = ConversationInfo(ConversationKind.GROUP, name)
        extensions = with_conversation_info(self.group.extensions, info)
        result = self.group.commit(os.urandom, group_context_extensions=extensions)
        self.group.merge(result.staged)
        return result.message

    async def texts(self) -> list[str]:
        def read(s: object) -> list[str]:
            conversations = s.conversations.all()  # type: ignore[attr-defined]
            if not conversations:
                return []
            page = s.messages.latest(conversations[0].id, 100)  # type: ignore[attr-defined]
            return [m.body for m in page if m.kind is not MessageKind.SYSTEM]

        return await self.bob.store.run(read)

    async def title(self) -> str | None:
        conversations = await self.bob.store.run(lambda s: s.conversations.all())
        return conversations[0].title if conversations else None


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    authority = Authority()
    alice = await make_session(tmp_path / "a", "alice", authority)
    bob = await make_session(tmp_path / "b", "bob", authority)
    bundle = await publish_key_package(bob)
    group = Group.create(
        new_key_package(alice.account, os.urandom, now=int(time.time())),
        os.urandom,
        extensions=group_extensions(ConversationInfo(ConversationKind.GROUP, "Pals")),
        config=GROUP_CONFIG,
        identity=alice.account.verifier,
    )
    result = group.commit(os.urandom, add=[bundle.message()])
    group.merge(result.staged)
    assert result.welcome is not None
    try:
        yield World(alice, bob, group, result.welcome, InboundPipeline(bob))
    finally:
        await close_session(alice)
        await close_session(bob)


def queue(*messages: bytes, start: int = 1) -> list[QueueMessage]:
    return [QueueMessage(start + i, data) for i, data in enumerate(messages)]


async def test_messages_before_the_welcome_wait_for_it(world: World) -> None:
    events = world.bob.events.subscribe()
    hello = world.say("hello")
    cursor = await world.pipeline.process(queue(hello, world.welcome))
    assert cursor == 2
    assert await world.texts() == ["hello"]
    assert await world.title() == "Pals"
    assert await world.bob.store.run(lambda s: s.pending_inbound.count()) == 0
    kinds = {type(e) for e in events.pending()}
    assert {ConversationUpdated, MessageReceived} <= kinds
    # The one-time KeyPackage is spent.
    assert await world.bob.store.run(lambda s: s.key_packages.not_uploaded()) == []


async def test_a_future_epoch_waits_for_its_commit(world: World) -> None:
    await world.pipeline.process(queue(world.welcome, world.say("one")))
    commit = world.rename("Pals 2")
    later = world.say("after the rename")
    # The queue hands over the new epoch's message before the commit.
    await world.pipeline.process(queue(later, commit, start=3))
    assert await world.texts() == ["one", "after the rename"]
    assert await world.title() == "Pals 2"
    bob_group = await world.bob.groups.get(world.group.group_id)
    assert bob_group is not None and bob_group.epoch == world.group.epoch
    stored = await world.bob.store.run(lambda s: s.groups.epoch(world.group.group_id))
    assert stored == world.group.epoch


async def test_late_messages_of_a_past_epoch_still_decrypt(world: World) -> None:
    await world.pipeline.process(queue(world.welcome))
    early = world.say("sent before the rename")
    commit = world.rename("Pals 3")
    await world.pipeline.process(queue(commit, early, start=2))
    assert await world.texts() == ["sent before the rename"]


async def test_duplicates_echoes_and_garbage_are_skipped(world: World) -> None:
    hello = world.say("hello")
    await world.pipeline.process(queue(world.welcome, hello))
    # The same sequence numbers again: already processed.
    await world.pipeline.process(queue(world.welcome, hello))
    # Garbage and a replay under a new sequence number: skipped, cursor moves on.
    await world.pipeline.process(queue(b"\x00\x01garbage", hello, start=3))
    assert await world.texts() == ["hello"]
    assert await world.pipeline.cursor() == 4
    # Bob's own message, echoed by the server, is recognised by its hash.
    bob_group = await world.bob.groups.get(world.group.group_id)
    assert bob_group is not None
    content = Content(os.urandom(16), 0, Reaction(os.urandom(16), "👍"))
    own = bob_group.encrypt(encode_content(content), os.urandom)
    digest = hashlib.sha256(own).digest()
    gid = world.group.group_id
    await world.bob.store.run(lambda s: s.sent_messages.add(digest, gid, now=0))
    await world.pipeline.process(queue(own, start=5))
    assert not await world.bob.store.run(lambda s: s.sent_messages.contains(digest))
    assert await world.bob.store.run(lambda s: s.settings.get_int(CURSOR_KEY)) == 5


async def test_a_failed_write_changes_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stage, persist, merge: the group and the cursor move together or not at all."""
    await world.pipeline.process(queue(world.welcome))
    gid = world.group.group_id
    state_before = await world.bob.store.run(lambda s: s.groups.get(gid))
    hello = world.say("hello")
    real = inbound.apply_content

    def broken(*args: object, **kwargs: object) -> object:
        raise StoreIOError("the disk failed")

    monkeypatch.setattr(inbound, "apply_content", broken)
    with pytest.raises(StoreIOError):
        await world.pipeline.process(queue(hello, start=2))
    state_after = await world.bob.store.run(lambda s: s.groups.get(gid))
    assert state_after == state_before
    assert await world.bob.store.run(lambda s: s.settings.get_int(CURSOR_KEY)) == 1
    # Delivered again (it was not acked), it is processed once.
    monkeypatch.setattr(inbound, "apply_content", real)
    await world.pipeline.process(queue(hello, start=2))
    await world.pipeline.process(queue(hello, start=2))
    assert await world.texts() == ["hello"]
