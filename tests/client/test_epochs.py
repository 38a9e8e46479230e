"""The owner of group transitions reads membership changes from the staged commit.

:func:`messenger.client.epochs.membership_after` gives the members of the
next epoch from a :class:`StagedCommit` alone (added, removed and updated
leaves, RFC 9420 §12.3), without serializing and loading the new state; it
must agree with the group once merged, for commits that add, remove and
update at once, received or own. :class:`GroupEpochs` persists the epoch
after a received commit and merges the staged commit into the live group.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from messenger.client.epochs import membership_after, queues_of
from messenger.client.groups import (
    GROUP_CONFIG,
    ConversationInfo,
    group_extensions,
    group_members,
    new_key_package,
)
from messenger.client.session import Session
from messenger.client.store import ConversationKind
from messenger.mls.events import StagedCommit
from messenger.mls.group import Group

from .sync_helpers import Authority, close_session, make_session

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def people(tmp_path: Path) -> AsyncIterator[list[Session]]:
    authority = Authority()
    sessions = [
        await make_session(tmp_path / name, name, authority)
        for name in ("alice", "bob", "carol", "dave")
    ]
    try:
        yield sessions
    finally:
        for session in sessions:
            await close_session(session)


def _key_package(session: Session) -> bytes:
    return new_key_package(session.account, os.urandom, now=int(time.time())).message()


def _group(session: Session) -> Group:
    return Group.create(
        new_key_package(session.account, os.urandom, now=int(time.time())),
        os.urandom,
        extensions=group_extensions(ConversationInfo(ConversationKind.GROUP, "Team")),
        config=GROUP_CONFIG,
        identity=session.account.verifier,
    )


def _accounts(group: Group) -> list[tuple[int, str, str | None]]:
    return [(m.leaf_index, m.account_id, m.queue_id) for m in group_members(group)]


async def test_membership_after_a_commit_agrees_with_the_merged_group(
    people: list[Session],
) -> None:
    alice, bob, carol, dave = people
    group = _group(alice)
    result = group.commit(os.urandom, add=[_key_package(bob), _key_package(carol)])
    predicted = membership_after(group, result.staged)
    group.merge(result.staged)
    assert [(m.leaf_index, m.account_id) for m in predicted] == [
        (m.leaf_index, m.account_id) for m in group_members(group)
    ]
    assert len(predicted) == 3

    # Remove Bob and add Dave in one commit: Dave takes Bob's blank leaf (RFC 9420 §12.1.1).
    result = group.commit(os.urandom, add=[_key_package(dave)], remove=[1])
    predicted = membership_after(group, result.staged)
    queues = queues_of(predicted)
    group.merge(result.staged)
    assert [(m.leaf_index, m.account_id, m.queue_id) for m in predicted] == _accounts(group)
    assert [m.account_id for m in predicted] == ["acct-alice", "acct-dave", "acct-carol"]
    assert queues == ["queue-alice", "queue-carol", "queue-dave"]


async def test_a_received_commit_is_persisted_then_merged_by_the_owner(
    people: list[Session],
) -> None:
    alice, bob, carol, _ = people
    group = _group(alice)
    bob_bundle = new_key_package(bob.account, os.urandom, now=int(time.time()))
    result = group.commit(os.urandom, add=[bob_bundle.message()])
    group.merge(result.staged)
    assert result.welcome is not None
    bobs = Group.join_from_welcome(
        result.welcome, bob_bundle, config=GROUP_CONFIG, identity=bob.account.verifier
    )
    gid = bobs.group_id
    epoch = bobs.epoch
    await bob.store.transaction(lambda s: s.groups.save(gid, epoch, bobs.checkpoint(), now=0))
    bob.groups.put(bobs)

    commit = group.commit(os.urandom, add=[_key_package(carol)])
    group.merge(commit.staged)
    staged = bobs.process(commit.message)
    assert isinstance(staged, StagedCommit)
    marked: list[int] = []
    async with bob.group_lock(gid):
        await bob.epochs.commit_received(
            bobs, staged, finish=lambda s: marked.append(s.groups.epoch(gid) or 0)
        )
    # The new epoch was in the store inside the transaction, and the live group merged.
    assert marked == [epoch + 1]
    assert bobs.epoch == epoch + 1 and await bob.groups.get(gid) is bobs
    assert _accounts(bobs) == _accounts(group)
    stored = await bob.store.run(lambda s: s.groups.get(gid))
    assert stored is not None and stored.epoch == epoch + 1
    # The next message writes a record or two: the merge knew the state was persisted.
    message = group.encrypt(b"hello", os.urandom)
    bobs.process(message)
    assert not bobs.checkpoint().full
