"""The devices group as its members see it (docs/devices.md §3, §4).

Real MLS groups driven by hand, real stores; each device's inbound
pipeline gets the messages the test chooses. The adversaries: another
account that tries to get into this account's devices group, and a hostile
device of this account (compromised, or removed) sending sync records.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from messenger.api.models import QueueMessage
from messenger.client.content import Content, Sync, Text, encode_content
from messenger.client.devices.records import (
    ContactBlocked,
    ContactName,
    ConversationArchived,
    ConversationMuted,
    DeviceInfo,
    Record,
    Setting,
    Stamped,
    encode_records,
)
from messenger.client.events import DevicesChanged
from messenger.client.groups import (
    GROUP_CONFIG,
    ConversationInfo,
    group_extensions,
    new_key_package,
)
from messenger.client.session import Session
from messenger.client.store import ConversationKind, MessageKind
from messenger.client.store.messages import MessageStatus
from messenger.client.sync import InboundPipeline
from messenger.mls.group import Group

from .sync_helpers import Authority, close_session, make_session, publish_key_package

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def make_device(root: Path, account_id: str, client_id: str, authority: Authority) -> Session:
    """A session of ``client_id``, a device of ``account_id`` (certified by its account key)."""
    return await make_session(
        root, client_id, authority, account_id=account_id, client_id=client_id
    )


def new_group(session: Session, kind: ConversationKind, name: str | None = None) -> Group:
    return Group.create(
        new_key_package(session.account, os.urandom, now=int(time.time())),
        os.urandom,
        extensions=group_extensions(ConversationInfo(kind, name)),
        config=GROUP_CONFIG,
        identity=session.account.verifier,
    )


def now_ms() -> int:
    return int(time.time() * 1000)


class Queue:
    """One device's queue: numbers the messages handed to its pipeline."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.pipeline = InboundPipeline(session)
        self.seq = 0

    async def deliver(self, *messages: bytes) -> None:
        batch = []
        for data in messages:
            self.seq += 1
            batch.append(QueueMessage(self.seq, data))
        await self.pipeline.process(batch)


@dataclass
class World:
    desktop: Session
    laptop: Session
    bob: Session
    devices: Group
    """The laptop's view of Alice's devices group (it made it)."""
    desktop_queue: Queue
    bob_queue: Queue

    def sync(self, *records: Record, clock: int | None = None) -> bytes:
        """A Sync message from the laptop to the devices group."""
        stamped = [Stamped(r, now_ms() if clock is None else clock) for r in records]
        content = Content(os.urandom(16), now_ms(), Sync(encode_records(stamped)))
        return self.devices.encrypt(encode_content(content), os.urandom)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    authority = Authority()
    desktop = await make_device(tmp_path / "d", "alice", "alice-desktop", authority)
    laptop = await make_device(tmp_path / "l", "alice", "alice-laptop", authority)
    bob = await make_device(tmp_path / "b", "bob", "bob-desktop", authority)
    devices = new_group(laptop, ConversationKind.DEVICES)
    bundle = await publish_key_package(desktop)
    result = devices.commit(os.urandom, add=[bundle.message()])
    devices.merge(result.staged)
    assert result.welcome is not None
    # The desktop was told the devices group's ID when it was linked.
    await desktop.store.run(lambda s: s.devices.set_group_id(devices.group_id))
    world = World(desktop, laptop, bob, devices, Queue(desktop), Queue(bob))
    await world.desktop_queue.deliver(result.welcome)
    try:
        yield world
    finally:
        for session in (desktop, laptop, bob):
            await close_session(session)


async def test_a_linked_device_joins_the_devices_group(world: World) -> None:
    def read(s: object) -> tuple[object, ...]:
        return (
            s.devices.group_id(),  # type: ignore[attr-defined]
            [d.client_id for d in s.devices.all()],  # type: ignore[attr-defined]
            s.conversations.all(),  # type: ignore[attr-defined]
            s.conversations.by_group(world.devices.group_id),  # type: ignore[attr-defined]
        )

    group_id, devices, listed, conversation = await world.desktop.store.run(read)
    assert group_id == world.devices.group_id
    assert sorted(devices) == ["alice-desktop", "alice-laptop"]
    assert listed == []  # never listed as a conversation
    assert conversation is not None and conversation.kind is ConversationKind.DEVICES
    # It told the others its name (queued to the devices group).
    items = await world.desktop.store.run(lambda s: s.outbox.for_group(world.devices.group_id))
    assert any(i.content is not None for i in items)


async def test_a_stranger_cannot_welcome_this_device_into_a_devices_group(
    world: World, tmp_path: Path
) -> None:
    # Bob makes a "devices group" and adds Alice's desktop: it must not become hers.
    fake = new_group(world.bob, ConversationKind.DEVICES)
    bundle = await publish_key_package(world.desktop)
    result = fake.commit(os.urandom, add=[bundle.message()])
    assert result.welcome is not None
    await world.desktop_queue.deliver(result.welcome)
    assert await world.desktop.store.run(lambda s: s.conversations.by_group(fake.group_id)) is None
    assert await world.desktop.store.run(lambda s: s.devices.group_id()) == world.devices.group_id
    assert await world.desktop.groups.get(fake.group_id) is None


async def test_a_second_devices_group_of_the_same_account_is_refused(world: World) -> None:
    other = new_group(world.laptop, ConversationKind.DEVICES)
    bundle = await publish_key_package(world.desktop)
    result = other.commit(os.urandom, add=[bundle.message()])
    assert result.welcome is not None
    await world.desktop_queue.deliver(result.welcome)
    assert await world.desktop.store.run(lambda s: s.conversations.by_group(other.group_id)) is None


async def test_a_commit_adding_a_stranger_to_the_devices_group_is_refused(world: World) -> None:
    # A hostile (compromised) laptop adds Bob's device to Alice's devices group.
    epoch = (await world.desktop.groups.get(world.devices.group_id)).epoch  # type: ignore[union-attr]
    bob_bundle = await publish_key_package(world.bob)
    result = world.devices.commit(os.urandom, add=[bob_bundle.message()])
    await world.desktop_queue.deliver(result.message)
    group = await world.desktop.groups.get(world.devices.group_id)
    assert group is not None and group.epoch == epoch
    stored = await world.desktop.store.run(lambda s: s.groups.epoch(world.devices.group_id))
    assert stored == epoch
    devices = await world.desktop.store.run(lambda s: s.devices.all())
    assert sorted(d.client_id for d in devices) == ["alice-desktop", "alice-laptop"]


async def test_records_from_another_device_apply(world: World) -> None:
    events = world.desktop.events.subscribe()
    chat = new_group(world.bob, ConversationKind.DIRECT)
    bundle = await publish_key_package(world.desktop)
    result = chat.commit(os.urandom, add=[bundle.message()])
    assert result.welcome is not None
    await world.desktop_queue.deliver(result.welcome)
    await world.desktop_queue.deliver(
        world.sync(
            DeviceInfo("alice-laptop", "Laptop", now_ms()),
            ContactName("bob", "Bobby"),
            ContactBlocked("bob", True),
            ConversationMuted(chat.group_id, True, None),
            ConversationArchived(chat.group_id, True),
            Setting("read_receipts", False),
        )
    )

    def read(s: object) -> tuple[object, ...]:
        contact = s.contacts.get("bob")  # type: ignore[attr-defined]
        conversation = s.conversations.by_group(chat.group_id)  # type: ignore[attr-defined]
        laptop = s.devices.get("alice-laptop")  # type: ignore[attr-defined]
        receipts = s.settings.get("preferences.read_receipts")  # type: ignore[attr-defined]
        return contact, conversation, laptop, receipts

    contact, conversation, laptop, receipts = await world.desktop.store.run(read)
    assert contact.display_name == "Bobby" and contact.blocked  # type: ignore[attr-defined]
    assert conversation.muted and conversation.archived  # type: ignore[attr-defined]
    assert laptop.name == "Laptop"  # type: ignore[attr-defined]
    assert receipts is False
    assert any(isinstance(e, DevicesChanged) for e in events.pending())

    # An older write of the same value loses; a newer one wins.
    await world.desktop_queue.deliver(world.sync(ContactName("bob", "Old"), clock=1))
    assert (await world.desktop.store.run(lambda s: s.contacts.get("bob"))).display_name == "Bobby"  # type: ignore[union-attr]
    await world.desktop_queue.deliver(world.sync(ContactName("bob", None)))
    assert (await world.desktop.store.run(lambda s: s.contacts.get("bob"))).display_name is None  # type: ignore[union-attr]


async def test_hostile_records_are_ignored(world: World) -> None:
    # A device speaks only for itself; a time far ahead cannot win forever.
    await world.desktop_queue.deliver(
        world.sync(DeviceInfo("alice-desktop", "Owned", now_ms())),
        world.sync(ContactName("bob", "Future"), clock=now_ms() + 10 * 86_400_000),
        world.sync(ContactName("alice", "me")),  # never a contact of oneself
    )
    desktop = await world.desktop.store.run(lambda s: s.devices.get("alice-desktop"))
    assert desktop is not None and desktop.name != "Owned"
    assert await world.desktop.store.run(lambda s: s.contacts.get("bob")) is None
    assert await world.desktop.store.run(lambda s: s.contacts.get("alice")) is None
    # Garbage records: skipped, and the queue moves on.
    content = Content(os.urandom(16), now_ms(), Sync(b"\x01\x05garbage"))
    garbage = world.devices.encrypt(encode_content(content), os.urandom)
    await world.desktop_queue.deliver(garbage, world.sync(ContactName("bob", "Fine")))
    assert (await world.desktop.store.run(lambda s: s.contacts.get("bob"))).display_name == "Fine"  # type: ignore[union-attr]
    # Once the laptop is no longer a device of the account, its records are ignored.
    await world.desktop.store.run(lambda s: s.devices.mark_removed("alice-laptop", at=now_ms()))
    await world.desktop_queue.deliver(world.sync(ContactName("bob", "Removed")))
    assert (await world.desktop.store.run(lambda s: s.contacts.get("bob"))).display_name == "Fine"  # type: ignore[union-attr]


async def test_records_outside_the_devices_group_are_ignored(world: World) -> None:
    # Bob (a member of a chat with Alice) sends sync records there: nothing applies.
    chat = new_group(world.bob, ConversationKind.DIRECT)
    bundle = await publish_key_package(world.desktop)
    result = chat.commit(os.urandom, add=[bundle.message()])
    chat.merge(result.staged)
    assert result.welcome is not None
    stamped = [Stamped(Setting("read_receipts", False), now_ms())]
    content = Content(os.urandom(16), now_ms(), Sync(encode_records(stamped)))
    await world.desktop_queue.deliver(
        result.welcome, chat.encrypt(encode_content(content), os.urandom)
    )
    assert (
        await world.desktop.store.run(lambda s: s.settings.get("preferences.read_receipts")) is None
    )


async def test_messages_of_another_own_device_are_mine(world: World) -> None:
    # The laptop makes a direct chat with Bob and adds the desktop too.
    chat = new_group(world.laptop, ConversationKind.DIRECT)
    desktop_kp = await publish_key_package(world.desktop)
    bob_kp = await publish_key_package(world.bob)
    result = chat.commit(os.urandom, add=[desktop_kp.message(), bob_kp.message()])
    chat.merge(result.staged)
    assert result.welcome is not None
    text = Content(os.urandom(16), now_ms(), Text("from the laptop"))
    message = chat.encrypt(encode_content(text), os.urandom)
    await world.desktop_queue.deliver(result.welcome, message)
    await world.bob_queue.deliver(result.welcome, message)

    def read(s: object) -> tuple[object, ...]:
        conversation = s.conversations.by_group(chat.group_id)  # type: ignore[attr-defined]
        page = s.messages.latest(conversation.id, 10)  # type: ignore[attr-defined]
        return conversation, page, s.read_markers.unread_count(conversation.id, "alice")  # type: ignore[attr-defined]

    conversation, page, unread = await world.desktop.store.run(read)
    # Still a one-to-one chat with Bob, though two of Alice's clients are in it.
    assert conversation.kind is ConversationKind.DIRECT  # type: ignore[attr-defined]
    assert conversation.peer_account_id == "bob"  # type: ignore[attr-defined]
    # No "Alice added you" note: the laptop is this account's own device.
    assert [m.kind for m in page] == [MessageKind.TEXT]  # type: ignore[attr-defined]
    (mine,) = page  # type: ignore[misc]
    assert mine.outgoing and mine.status is MessageStatus.SENT
    assert unread == 0
    bob_conversation = await world.bob.store.run(lambda s: s.conversations.by_group(chat.group_id))
    assert bob_conversation is not None and bob_conversation.kind is ConversationKind.DIRECT
    assert bob_conversation.peer_account_id == "alice"
    bob_page = await world.bob.store.run(lambda s: s.messages.latest(bob_conversation.id, 10))
    assert [(m.outgoing, m.sender_account_id) for m in bob_page] == [(False, "alice")]


async def test_remove_clients_removes_only_this_accounts_devices(world: World) -> None:
    from messenger.client.groups import group_members
    from messenger.client.sync.intents import Intent, build_commit

    chat = new_group(world.laptop, ConversationKind.GROUP, "Plans")
    desktop_kp = await publish_key_package(world.desktop)
    bob_kp = await publish_key_package(world.bob)
    result = chat.commit(os.urandom, add=[desktop_kp.message(), bob_kp.message()])
    chat.merge(result.staged)
    intent = Intent.loads(
        Intent("remove_clients", clients=("alice-desktop", "bob-desktop")).dumps()
    )
    assert intent.clients == ("alice-desktop", "bob-desktop")
    commit = build_commit(chat, intent, os.urandom, now=int(time.time()))
    assert commit is not None
    chat.merge(commit.staged)
    assert sorted(m.client_id for m in group_members(chat)) == ["alice-laptop", "bob-desktop"]
    # Done already: nothing to commit.
    assert build_commit(chat, intent, os.urandom, now=int(time.time())) is None


async def test_the_devices_group_adds_only_this_accounts_devices(world: World) -> None:
    from messenger.client.sync.intents import Intent, build_commit

    bob_kp = await publish_key_package(world.bob)
    intent = Intent("add", key_packages=(bob_kp.message(),))
    assert build_commit(world.devices, intent, os.urandom, now=int(time.time())) is None
