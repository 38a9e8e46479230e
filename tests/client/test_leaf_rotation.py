"""Periodic self-updates (messenger.client.sync.leaf_rotation).

A group in which this device's leaf has not been made fresh for a week gets
a self-update commit with a path: the others see a new encryption key for
the device's leaf, and the group's next look waits a week again. A new group
or a join counts as fresh; a queued rotation postpones the next look by a
day even if the commit cannot land; migration 15 spreads existing groups
over the past week.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from messenger.client import (
    Conversation,
    ConversationView,
    MessageKind,
    MessengerClient,
    OperationFailed,
)
from messenger.client.errors import UnknownGroupError
from messenger.client.net.http import Transport
from messenger.client.store.database import Database
from messenger.client.store.database_key import DatabaseKey
from messenger.client.store.migrations import migrate
from messenger.client.sync.leaf_rotation import RETRY_MS, ROTATE_AFTER_MS, queue_leaf_rotations
from messenger.mls.group import Group

from .helpers import account_id, texts
from .in_process import InProcessServer

pytestmark = pytest.mark.anyio

FLUSH = 10.0
DAY_MS = 24 * 3600 * 1000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _two_in_a_group(
    server: InProcessServer,
) -> tuple[MessengerClient, MessengerClient, Conversation, ConversationView]:
    """Alice and Bob, in a group Alice made; her view of it and Bob's."""
    alice, bob = await server.client("alice"), await server.client("bob")
    await bob.sync()
    chat = await alice.create_group("Two", [await account_id(bob)])
    await alice.flush(FLUSH)
    await bob.sync()
    (bob_view,) = await bob.conversations()
    return alice, bob, chat, bob_view


async def _group(client: MessengerClient, conversation_id: int) -> Group:
    view = await client.conversation(conversation_id)
    assert view.conversation.group_id is not None
    group = await client._require().epochs.get(view.conversation.group_id)
    assert group is not None
    return group


async def _rotated_at(client: MessengerClient, group_id: bytes) -> int | None:
    def read(store: object) -> int | None:
        value = store.groups._db.query_value(  # type: ignore[attr-defined]
            "SELECT leaf_rotated_at FROM mls_groups WHERE group_id = ?", (group_id,)
        )
        return None if value is None else int(value)

    return await client._store.run(read)


async def _notes(client: MessengerClient, conversation_id: int) -> int:
    views = await client.messages(conversation_id, limit=100)
    return sum(1 for v in views if v.message.kind is MessageKind.SYSTEM)


async def _age(client: MessengerClient, group_id: bytes, ms: int) -> None:
    """Make this device's leaf in ``group_id`` look ``ms`` old."""
    at = client._require().now_ms() - ms
    await client._store.transaction(lambda s: s.groups.record_leaf_rotation(group_id, at))


async def test_a_leaf_a_week_old_is_made_fresh_and_waits_a_week_again(
    server: InProcessServer,
) -> None:
    alice, bob, chat, bob_view = await _two_in_a_group(server)
    group = await _group(alice, chat.id)
    gid, epoch = group.group_id, group.epoch
    # A new group is fresh: nothing is due, in any of Alice's groups.
    made_at = await _rotated_at(alice, gid)
    assert made_at is not None and made_at > alice._require().now_ms() - 60_000
    assert await queue_leaf_rotations(alice._require()) == 0
    # Six days on: not yet. Past a week: one self-update, with a path.
    await _age(alice, gid, 6 * DAY_MS)
    assert await queue_leaf_rotations(alice._require()) == 0
    await _age(alice, gid, ROTATE_AFTER_MS + 1)
    notes_before = await _notes(bob, bob_view.id)
    seen_by_bob = (await _group(bob, bob_view.id)).members()
    leaf_before = {m.leaf_index: m.encryption_key for m in seen_by_bob}
    own = group.leaf_index
    assert await queue_leaf_rotations(alice._require()) == 1
    await alice.flush(FLUSH)
    assert (await _group(alice, chat.id)).epoch == epoch + 1
    fresh = await _rotated_at(alice, gid)
    assert fresh is not None and fresh > alice._require().now_ms() - 60_000
    assert await queue_leaf_rotations(alice._require()) == 0, "waits a week again"
    # Bob sees Alice's leaf with a new encryption key, and the group goes on.
    await bob.sync()
    bob_group = await _group(bob, bob_view.id)
    assert bob_group.epoch == epoch + 1
    leaf_after = {m.leaf_index: m.encryption_key for m in bob_group.members()}
    assert leaf_after[own] != leaf_before[own]
    assert all(leaf_after[i] == k for i, k in leaf_before.items() if i != own)
    # A key update is not news for the timeline: no system note.
    assert await _notes(bob, bob_view.id) == notes_before
    await bob.send_text(bob_view.id, "after the update")
    await bob.flush(FLUSH)
    await alice.sync()
    assert (await texts(alice, chat.id))[-1] == "after the update"


async def test_a_commit_of_another_member_does_not_count_and_a_queued_one_waits_a_day(
    server: InProcessServer,
) -> None:
    alice, bob, chat, bob_view = await _two_in_a_group(server)
    gid = (await _group(alice, chat.id)).group_id
    # Bob's update gives his leaf fresh keys, not Alice's.
    await _age(alice, gid, ROTATE_AFTER_MS + 1)
    await _age(bob, gid, ROTATE_AFTER_MS + 1)
    assert await queue_leaf_rotations(bob._require()) == 1
    await bob.flush(FLUSH)
    await alice.sync()
    assert (await _group(alice, chat.id)).epoch == (await _group(bob, bob_view.id)).epoch
    now = alice._require().now_ms()
    alice_at = await _rotated_at(alice, gid)
    assert alice_at is not None and alice_at < now - ROTATE_AFTER_MS
    # Queued (not yet sent): the group is looked at again in a day, not at the
    # next maintenance, even if the commit never lands.
    assert await queue_leaf_rotations(alice._require()) == 1
    postponed = await _rotated_at(alice, gid)
    assert postponed is not None
    assert abs(postponed - (now - ROTATE_AFTER_MS + RETRY_MS)) < 60_000
    assert await queue_leaf_rotations(alice._require()) == 0


def test_migration_15_spreads_existing_groups_over_the_past_week(tmp_path: Path) -> None:
    with Database.open(tmp_path / "m.db", DatabaseKey.generate(), create=True) as db:
        migrate(db, target=14)
        for n in range(40):
            db.execute(
                "INSERT INTO mls_groups (group_id, epoch, state, updated_at) "
                "VALUES (?, 3, x'01', 1)",
                (bytes([n]) * 32,),
            )
        before = int(time.time() * 1000)
        assert migrate(db) >= 15
        after = int(time.time() * 1000)
        times = [int(row[0]) for row in db.query("SELECT leaf_rotated_at FROM mls_groups")]
        assert len(times) == 40
        assert all(before - 7 * DAY_MS - 1000 <= t <= after for t in times)
        assert len(set(times)) > 30, "spread, not one time for all"


async def test_a_refused_update_is_dropped_without_telling_the_user(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The weekly update is not the user's doing: if the server refuses it for
    good, it goes with a log line, no error for the window, and the group is
    looked at again the next day."""
    alice, _bob, chat, _bob_view = await _two_in_a_group(server)
    gid = (await _group(alice, chat.id)).group_id
    epoch = (await _group(alice, chat.id)).epoch

    async def refused(self: Transport, group_id: bytes, body: object, *, sealed: bool) -> None:
        raise UnknownGroupError("unknown_group")

    monkeypatch.setattr(Transport, "commit", refused)
    await _age(alice, gid, ROTATE_AFTER_MS + 1)
    async with alice.events() as events:
        assert await queue_leaf_rotations(alice._require()) == 1
        await alice.flush(FLUSH)
        seen = events.pending()
    assert not [e for e in seen if isinstance(e, OperationFailed)], seen
    assert (await _group(alice, chat.id)).epoch == epoch
    assert await queue_leaf_rotations(alice._require()) == 0, "tried again tomorrow"
    # A change the user asked for is still reported when refused.
    async with alice.events() as events:
        await alice.rename(chat.id, "Renamed")
        await alice.flush(FLUSH)
        seen = events.pending()
    assert [e for e in seen if isinstance(e, OperationFailed)], seen
