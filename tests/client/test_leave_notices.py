"""A member who left reads as having left, even when its proposal lost a race
(messenger/client/leave_notices.py).

Against the real server app in process. Bob leaves (a proposal to remove
himself) while Carol, who has not read it yet, renames the group: her
commit gets in first and Bob's proposal dies with its epoch. Alice, who
read the proposal, removes Bob by value. The commit carries Bob's leave
notice, so Alice and Carol both read "bob left", not "You removed bob" /
"alice removed bob". A notice the committer made up, or Bob's notice for a
leaf key he has since replaced, says nothing: those removals read as
removals.
"""

from __future__ import annotations

import struct

import pytest

from messenger.client import MessengerClient
from messenger.client.leave_notices import _notice, _parse, commit_leavers, sealed_notices
from messenger.client.store.outbox import OutboxKind
from messenger.client.sync.intents import Intent

from .helpers import account_id
from .in_process import InProcessServer
from .test_timeline_notes import notes

pytestmark = pytest.mark.anyio

FLUSH = 10.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def only(client: MessengerClient) -> int:
    (view,) = await client.conversations()
    return view.id


async def trio(
    server: InProcessServer,
) -> tuple[MessengerClient, MessengerClient, MessengerClient, int, bytes]:
    """Alice's group with Bob and Carol, everyone in step; Alice's conversation, the group."""
    alice, bob, carol = [await server.client(n) for n in ("alice", "bob", "carol")]
    for client in (alice, bob, carol):
        await client.sync()
    chat = await alice.create_group("Club", [await account_id(c) for c in (bob, carol)])
    await alice.flush(FLUSH)
    for client in (bob, carol):
        await client.sync()
        await client.flush(FLUSH)  # the move off the contact queue, the profile
    for client in (alice, bob, carol, alice):
        await client.sync()
        await client.flush(FLUSH)
    assert chat.group_id is not None
    return alice, bob, carol, chat.id, chat.group_id


async def test_a_leave_that_lost_a_race_still_reads_as_leaving(server: InProcessServer) -> None:
    alice, bob, carol, chat, _group_id = await trio(server)
    await bob.leave(await only(bob))
    await bob.flush(FLUSH)  # his proposal, in this epoch
    carol_chat = await only(carol)
    await carol.rename(carol_chat, "Carol's club")
    await carol.flush(FLUSH)  # first: Bob's proposal dies with the epoch
    await alice.sync()  # the proposal (a removal of Bob queued), then Carol's commit
    await alice.flush(FLUSH)  # Bob removed by value, his notice with it
    await carol.sync()
    await bob.sync()

    assert (await notes(alice, chat))[-2:] == [
        "carol renamed the group to “Carol's club”",
        "bob left",
    ]
    assert (await notes(carol, carol_chat))[-1] == "bob left"
    assert {m.account_id for m in await alice.members(chat)} == {
        await account_id(alice),
        await account_id(carol),
    }


async def removal_reads_as_removal(
    alice: MessengerClient,
    carol: MessengerClient,
    chat: int,
    group_id: bytes,
    bob_id: str,
    notice: bytes,
) -> None:
    """As Alice: remove Bob by value, the commit carrying ``notice``; Alice and
    Carol both read it as a removal (the notice says nothing)."""
    intent = Intent("remove", accounts=(bob_id,), notices=(notice,)).dumps()
    await alice._store.transaction(
        lambda s: s.outbox.enqueue(OutboxKind.COMMIT, b"", now=0, group_id=group_id, intent=intent)
    )
    await alice.flush(FLUSH)
    await carol.sync()
    assert (await notes(alice, chat))[-1] == "You removed bob"
    assert (await notes(carol, await only(carol)))[-1] == "alice removed bob"


async def test_a_notice_the_committer_made_up_says_nothing(server: InProcessServer) -> None:
    alice, bob, carol, chat, group_id = await trio(server)
    group = await alice._require().epochs.get(group_id)
    bob_group = await bob._require().epochs.get(group_id)
    assert group is not None and bob_group is not None
    # Alice's signature over Bob's leaf and key: the shape of Bob's notice, not his.
    genuine, own = _parse(_notice(bob_group)), _parse(_notice(group))
    assert genuine is not None and own is not None
    leaf_index, key, _signature = genuine
    made_up = struct.pack(">IH", leaf_index, len(key)) + key + own[2]
    await removal_reads_as_removal(alice, carol, chat, group_id, await account_id(bob), made_up)


async def test_a_notice_for_a_replaced_leaf_key_says_nothing(server: InProcessServer) -> None:
    alice, bob, carol, chat, group_id = await trio(server)
    bob_group = await bob._require().epochs.get(group_id)
    assert bob_group is not None
    old_notice = _notice(bob_group)  # Bob meant to leave once, with the key he had then
    # Bob's leaf gets fresh keys (a commit of his with a path), then Alice removes him.
    await bob.rename(await only(bob), "Bob stays")
    await bob.flush(FLUSH)
    await alice.sync()
    await removal_reads_as_removal(alice, carol, chat, group_id, await account_id(bob), old_notice)


async def test_notices_are_sealed_for_the_epoch(server: InProcessServer) -> None:
    """What the server sees of a notice is a blob; another epoch's key opens nothing."""
    alice, bob, _carol, _chat, group_id = await trio(server)
    bob_group = await bob._require().epochs.get(group_id)
    assert bob_group is not None
    notice = _notice(bob_group)
    sealed = sealed_notices(bob_group, [notice])
    assert notice not in sealed and bob_group.group_id not in sealed

    class Staged:  # what commit_leavers reads of a StagedCommit
        def __init__(self, data: bytes, removed: list[object]) -> None:
            self.authenticated_data = data
            self.removed = removed

    member = bob_group.member(bob_group.leaf_index)
    alice_group = await alice._require().epochs.get(group_id)
    assert alice_group is not None and member is not None
    epoch = alice_group.epoch
    bob_id = await account_id(bob)
    assert commit_leavers(alice_group, Staged(sealed, [member])) == {bob_id}  # type: ignore[arg-type]
    # The next epoch's key does not open this one's seal.
    await alice.rename(await only(alice), "Later")
    await alice.flush(FLUSH)
    later = await alice._require().epochs.get(group_id)
    assert later is not None and later.epoch == epoch + 1
    assert commit_leavers(later, Staged(sealed, [member])) == frozenset()  # type: ignore[arg-type]
    # Whatever a committer puts there reads as no notice, never as an error.
    for junk in (b"MLN1" + bytes(40), b"MLN1", b"other data", b""):
        assert commit_leavers(later, Staged(junk, [member])) == frozenset()  # type: ignore[arg-type]
    truncated = sealed_notices(later, [notice])[:-20]
    assert commit_leavers(later, Staged(truncated, [member])) == frozenset()  # type: ignore[arg-type]
