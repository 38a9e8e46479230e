"""Look-alike Welcomes, in-process: dropped at any epoch, KeyPackages left usable.

Bob's real pipeline is fed Welcomes that Mallory builds for a group ID Bob
already has (RFC 9420 §12.4.3.1: the group ID must be unique among the
client's groups): at a later, the same and an earlier epoch, to a one-time
KeyPackage and to the last-resort one. Bob's group state never changes; a
spent one-time KeyPackage is deleted and the pool told to top up; the
last-resort one stays, and a real Welcome to it still works afterwards,
with a timeline note naming who added him.

The same attack over a real server is in
``tests/integration/test_attack_look_alike_welcome.py``.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from messenger.api.models import QueueMessage
from messenger.client.content import Content, Text, encode_content
from messenger.client.groups import (
    GROUP_CONFIG,
    ConversationInfo,
    group_extensions,
    new_key_package,
)
from messenger.client.models import message_views
from messenger.client.session import Session
from messenger.client.store import ConversationKind, MessageKind
from messenger.client.sync import InboundPipeline
from messenger.mls.group import Group
from messenger.mls.key_package_bundle import KeyPackageBundle

from .sync_helpers import Authority, close_session, make_session, publish_key_package

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def new_group(session: Session, name: str, group_id: bytes | None = None) -> Group:
    return Group.create(
        new_key_package(session.account, os.urandom, now=int(time.time())),
        os.urandom,
        group_id=group_id if group_id is not None else os.urandom(32),
        extensions=group_extensions(ConversationInfo(ConversationKind.GROUP, name)),
        config=GROUP_CONFIG,
        identity=session.account.verifier,
    )


def welcome_at(group: Group, key_package: KeyPackageBundle, epoch: int) -> bytes:
    """``group`` moved to ``epoch`` by its last commit, which adds ``key_package``."""
    while group.epoch < epoch - 1:
        group.merge(group.commit(os.urandom).staged)
    result = group.commit(os.urandom, add=[key_package.message()])
    group.merge(result.staged)
    assert group.epoch == epoch and result.welcome is not None
    return result.welcome


@dataclass
class World:
    alice: Session
    bob: Session
    mallory: Session
    pipeline: InboundPipeline
    club: Group
    used: list[int] = field(default_factory=list)
    seqs: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def feed(self, *messages: bytes) -> None:
        await self.pipeline.process([QueueMessage(next(self.seqs), d) for d in messages])

    async def last_resort(self) -> KeyPackageBundle:
        bundle = new_key_package(
            self.bob.account, os.urandom, now=int(time.time()), last_resort=True
        )
        data = bundle.to_bytes()
        await self.bob.store.run(
            lambda s: s.key_packages.add(
                bundle.ref(), data, created_at=0, expires_at=2**62, last_resort=True
            )
        )
        return bundle

    async def has_key_package(self, bundle: KeyPackageBundle) -> bool:
        ref = bundle.ref()
        return await self.bob.store.run(lambda s: s.key_packages.get(ref) is not None)

    async def club_state(self) -> bytes:
        group_id = self.club.group_id
        saved = await self.bob.store.run(lambda s: s.groups.get(group_id))
        assert saved is not None
        return saved.state


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    authority = Authority()
    alice = await make_session(tmp_path / "a", "alice", authority)
    bob = await make_session(tmp_path / "b", "bob", authority)
    mallory = await make_session(tmp_path / "m", "mallory", authority)
    used: list[int] = []
    pipeline = InboundPipeline(bob, key_package_used=lambda: used.append(1))
    club = new_group(alice, "club")
    made = World(alice, bob, mallory, pipeline, club, used)
    await made.feed(welcome_at(club, await publish_key_package(bob), 1))
    made.used.clear()
    try:
        yield made
    finally:
        await close_session(alice)
        await close_session(bob)
        await close_session(mallory)


@pytest.mark.parametrize("offset", [+3, 0, -1])
async def test_a_welcome_for_a_known_group_is_dropped_at_any_epoch(
    world: World, offset: int
) -> None:
    for _ in range(2):  # the club moves on to epoch 3, and Bob with it
        result = world.club.commit(os.urandom)
        world.club.merge(result.staged)
        await world.feed(result.message)
    state = await world.club_state()
    epoch = await world.bob.store.run(lambda s: s.groups.epoch(world.club.group_id))
    assert epoch == 3
    one_time = await publish_key_package(world.bob)
    forged = new_group(world.mallory, "club", world.club.group_id)
    await world.feed(welcome_at(forged, one_time, max(1, epoch + offset)))
    assert await world.club_state() == state
    assert not await world.has_key_package(one_time)  # spent: deleted, and the pool told
    assert world.used == [1]
    conversations = await world.bob.store.run(lambda s: s.conversations.all())
    assert [c.title for c in conversations] == ["club"]


async def test_a_last_resort_key_package_survives_a_dropped_welcome(world: World) -> None:
    last_resort = await world.last_resort()
    forged = new_group(world.mallory, "club", world.club.group_id)
    state = await world.club_state()
    await world.feed(welcome_at(forged, last_resort, 5))
    assert await world.club_state() == state
    assert await world.has_key_package(last_resort) and world.used == []

    # Alice adds Bob to a new group with that same last-resort KeyPackage: he joins.
    trip = new_group(world.alice, "trip")
    welcome = welcome_at(trip, last_resort, 1)
    hello = Content(os.urandom(16), int(time.time() * 1000), Text("hello"))
    await world.feed(welcome, trip.encrypt(encode_content(hello), os.urandom))
    conversations = await world.bob.store.run(lambda s: s.conversations.all())
    joined = next(c for c in conversations if c.title == "trip")
    me = world.bob.account.account_id
    page = await world.bob.store.run(
        lambda s: message_views(s, s.messages.latest(joined.id, 10), me)
    )
    notes = [v.message.body for v in page if v.note is not None]
    texts = [v.message.body for v in page if v.message.kind is not MessageKind.SYSTEM]
    assert texts == ["hello"]
    # Bob has no name for Alice yet: the note names her by her account.
    assert notes == [f"{world.alice.account.account_id[:8]} added you to “trip”"]
    assert await world.has_key_package(last_resort)
