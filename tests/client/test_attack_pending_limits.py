"""A stranger fills the victim's disk with messages that wait: they are bounded.

Anyone who gets bytes into Bob's queue can send well-formed MLS messages for
groups Bob does not know (or for epochs he has not reached); the inbound
pipeline keeps those until a Welcome or commit lets them in. These tests
feed Bob's real pipeline (real store, real MLS) crafted queue batches, as
the server would deliver them, and check that the pending table stays
within :class:`PendingLimits` -- per group, for unknown groups together, in
total, and in age -- while real messages that wait (before their Welcome,
before their commit) are never pushed out.

The same attack over a real server is in
``tests/integration/test_attack_pending_flood.py``.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from messenger.api.models import QueueMessage
from messenger.client.content import Content, Text, encode_content
from messenger.client.groups import (
    GROUP_CONFIG,
    ConversationInfo,
    group_extensions,
    new_key_package,
    with_conversation_info,
)
from messenger.client.session import Session
from messenger.client.store import ConversationKind, MessageKind
from messenger.client.store.pending_inbound import DEFAULT_PENDING_LIMITS, PendingLimits
from messenger.client.sync import InboundPipeline
from messenger.mls.content import ContentType, PrivateMessage
from messenger.mls.group import Group
from messenger.mls.messages import MLSMessage

from .sync_helpers import Authority, close_session, make_session, publish_key_package

pytestmark = pytest.mark.anyio

MIB = 1 << 20


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def junk(group_id: bytes, *, epoch: int = 1, size: int = 64) -> bytes:
    """A well-formed PrivateMessage nobody can decrypt (RFC 9420 §6.3.1)."""
    message = PrivateMessage(
        group_id=group_id,
        epoch=epoch,
        content_type=ContentType.APPLICATION,
        authenticated_data=b"",
        encrypted_sender_data=os.urandom(32),
        ciphertext=os.urandom(size),
    )
    return MLSMessage(message).to_bytes()


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    alice: Session
    bob: Session
    group: Group
    welcome: bytes
    clock: Clock
    seqs: itertools.count[int]

    def pipeline(self, limits: PendingLimits = DEFAULT_PENDING_LIMITS) -> InboundPipeline:
        return InboundPipeline(self.bob, pending_limits=limits)

    def say(self, text: str) -> bytes:
        content = Content(os.urandom(16), int(time.time() * 1000), Text(text))
        return self.group.encrypt(encode_content(content), os.urandom)

    def rename(self, name: str) -> bytes:
        info = ConversationInfo(ConversationKind.GROUP, name)
        extensions = with_conversation_info(self.group.extensions, info)
        result = self.group.commit(os.urandom, group_context_extensions=extensions)
        self.group.merge(result.staged)
        return result.message

    def batch(self, *messages: bytes) -> list[QueueMessage]:
        return [QueueMessage(next(self.seqs), data) for data in messages]

    async def texts(self) -> list[str]:
        def read(s: object) -> list[str]:
            conversations = s.conversations.all()  # type: ignore[attr-defined]
            page = s.messages.latest(conversations[0].id, 100)  # type: ignore[attr-defined]
            return [m.body for m in page if m.kind is not MessageKind.SYSTEM]

        return await self.bob.store.run(read)

    async def usage(self) -> dict[bytes, tuple[int, int]]:
        return await self.bob.store.run(lambda s: s.pending_inbound.usage_by_group())

    async def unknown_usage(self) -> tuple[int, int]:
        def read(s: object) -> tuple[int, int]:
            known = set(s.groups.group_ids())  # type: ignore[attr-defined]
            usage = s.pending_inbound.usage_by_group()  # type: ignore[attr-defined]
            rows = [u for g, u in usage.items() if g not in known]
            return sum(r[0] for r in rows), sum(r[1] for r in rows)

        return await self.bob.store.run(read)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    authority = Authority()
    alice = await make_session(tmp_path / "a", "alice", authority)
    bob = await make_session(tmp_path / "b", "bob", authority)
    clock = Clock()
    bob.clock = clock
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
        yield World(alice, bob, group, result.welcome, clock, itertools.count(1))
    finally:
        await close_session(alice)
        await close_session(bob)


async def test_junk_for_unknown_groups_cannot_push_out_real_waiting_messages(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    limits = DEFAULT_PENDING_LIMITS
    pipeline = world.pipeline()
    real = world.group.group_id
    # A real message that arrived before its Welcome waits (an unknown group, for now).
    hello = world.say("hello")
    await pipeline.process(world.batch(hello))
    assert await world.usage() == {real: (1, len(hello))}

    # The stranger floods one group far past its share...
    caplog.set_level(logging.INFO, logger="messenger.client.sync.inbound")
    flooded = os.urandom(32)
    await pipeline.process(world.batch(*(junk(flooded) for _ in range(limits.group_items + 40))))
    usage = await world.usage()
    assert usage[flooded][0] == limits.group_items
    # ...then many more groups, past the budget of all unknown groups together.
    spread = [os.urandom(32) for _ in range(40)]
    await pipeline.process(world.batch(*(junk(g) for g in spread for _ in range(10))))
    rows, size = await world.unknown_usage()
    assert rows == limits.unknown_items and size <= limits.unknown_bytes
    assert await world.bob.store.run(lambda s: s.pending_inbound.count()) == rows
    # The real message that came first is still there: nothing was evicted for junk.
    assert (await world.usage())[real] == (1, len(hello))
    # Every message was consumed: the cursor moved past the flood.
    assert await pipeline.cursor() == 1 + limits.group_items + 40 + 400

    # What is dropped is logged -- counted, not a line each (the log is a disk too),
    # without content or IDs; the count so far is flushed by the periodic prune.
    await pipeline.prune()
    drops = [r for r in caplog.records if r.getMessage().startswith("dropped ")]
    assert len(drops) <= 3
    counted = sum(int(r.getMessage().split()[1]) for r in drops)
    assert counted == (40 + 400) - (limits.unknown_items - 1 - limits.group_items)
    for record in drops:
        text = record.getMessage()
        assert flooded.hex() not in text and all(g.hex() not in text for g in spread)

    # The Welcome comes: the message that waited for it is processed.
    await pipeline.process(world.batch(world.welcome))
    assert await world.texts() == ["hello"]
    assert real not in await world.usage()

    # The group's next epoch arrives before its commit: it may wait, even though
    # unknown groups have used up their budget (a separate one).
    commit = world.rename("Pals 2")
    later = world.say("after the rename")
    await pipeline.process(world.batch(later))
    assert (await world.usage())[real] == (1, len(later))
    await pipeline.process(world.batch(commit))
    assert await world.texts() == ["hello", "after the rename"]


async def test_pending_bytes_are_capped_per_group_for_unknown_groups_and_in_total(
    world: World,
) -> None:
    limits = PendingLimits(
        group_items=100,
        group_bytes=40_000,
        unknown_items=100,
        unknown_bytes=100_000,
        total_items=100,
        total_bytes=120_000,
    )
    pipeline = world.pipeline(limits)
    # Big junk for unknown groups: each group stops at its bytes, all of them at theirs.
    flooded = [os.urandom(32) for _ in range(4)]
    for group_id in flooded:
        await pipeline.process(world.batch(*(junk(group_id, size=9_000) for _ in range(6))))
    usage = await world.usage()
    assert usage[flooded[0]][0] == 4  # 9 kB each: the fifth would pass 40 kB
    assert all(usage.get(g, (0, 0))[1] <= limits.group_bytes for g in flooded)
    _, size = await world.unknown_usage()
    assert limits.unknown_bytes - 10_000 < size <= limits.unknown_bytes
    assert flooded[3] not in usage  # refused whole: nothing evicted for it

    # Bob joins; then a known group's messages for a future epoch use the rest.
    await pipeline.process(world.batch(world.welcome))
    real = world.group.group_id
    await pipeline.process(
        world.batch(*(junk(real, epoch=world.group.epoch + 5, size=9_000) for _ in range(6)))
    )
    total = await world.bob.store.run(lambda s: s.pending_inbound.total_bytes())
    assert limits.total_bytes - 10_000 < total <= limits.total_bytes
    assert 0 < (await world.usage())[real][1] <= limits.group_bytes
    # Bob's real group still works.
    await pipeline.process(world.batch(world.say("still here")))
    assert await world.texts() == ["still here"]


async def test_waiting_messages_expire_sooner_for_unknown_groups(world: World) -> None:
    limits = DEFAULT_PENDING_LIMITS
    pipeline = world.pipeline()
    await pipeline.process(world.batch(world.welcome))
    stranger = os.urandom(32)
    real = world.group.group_id
    await pipeline.process(world.batch(junk(stranger), junk(real, epoch=world.group.epoch + 3)))
    assert set(await world.usage()) == {stranger, real}
    world.clock.now += limits.unknown_ttl_ms / 1000 + 1
    await pipeline.prune()
    assert set(await world.usage()) == {real}
    world.clock.now += limits.ttl_ms / 1000
    await pipeline.prune()
    assert await world.usage() == {}


async def test_expired_junk_makes_room_before_anything_is_refused(world: World) -> None:
    limits = PendingLimits(group_items=2, unknown_items=2)
    pipeline = world.pipeline(limits)
    old = os.urandom(32)
    await pipeline.process(world.batch(junk(old), junk(old), junk(old)))
    assert (await world.usage())[old][0] == 2
    world.clock.now += limits.unknown_ttl_ms / 1000 + 1
    fresh = os.urandom(32)
    await pipeline.process(world.batch(junk(fresh)))
    assert await world.usage() == {fresh: (1, len(junk(fresh)))}
