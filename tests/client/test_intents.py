"""Outbox intents: their JSON form, and commits that become moot."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from messenger.client.groups import (
    GROUP_CONFIG,
    ConversationInfo,
    group_extensions,
    group_members,
    new_key_package,
)
from messenger.client.store import ConversationKind
from messenger.client.sync import Intent, build_commit
from messenger.mls.group import Group

from .sync_helpers import Authority, close_session, make_session

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_intents_round_trip_as_json() -> None:
    for intent in (
        Intent("add", key_packages=(b"\x00kp", b"\x01")),
        Intent("remove", accounts=("a", "b")),
        Intent("rename", name="New name"),
        Intent("commit_pending"),
        Intent("leave"),
    ):
        assert Intent.loads(intent.dumps()) == intent
    assert Intent.loads(None) == Intent("send")
    with pytest.raises(ValueError):
        Intent("explode")


async def test_commits_for_done_intents_are_not_built(tmp_path: Path) -> None:
    authority = Authority()
    alice = await make_session(tmp_path / "a", "alice", authority)
    bob = await make_session(tmp_path / "b", "bob", authority)
    try:
        now = int(time.time())
        group = Group.create(
            new_key_package(alice.account, os.urandom, now=now),
            os.urandom,
            extensions=group_extensions(ConversationInfo(ConversationKind.GROUP, "G")),
            config=GROUP_CONFIG,
            identity=alice.account.verifier,
        )
        bob_kp = new_key_package(bob.account, os.urandom, now=now).message()
        add = Intent("add", key_packages=(bob_kp,))
        result = build_commit(group, add, os.urandom, now=now)
        assert result is not None
        group.merge(result.staged)
        assert [m.account_id for m in group_members(group)] == ["acct-alice", "acct-bob"]
        assert [m.queue_id for m in group_members(group)] == ["queue-alice", "queue-bob"]
        # Bob is in: adding him again, renaming to the same name, removing a stranger: moot.
        assert build_commit(group, add, os.urandom, now=now) is None
        assert build_commit(group, Intent("rename", name="G"), os.urandom, now=now) is None
        assert build_commit(group, Intent("remove", accounts=("x",)), os.urandom, now=now) is None
        assert build_commit(group, Intent("commit_pending"), os.urandom, now=now) is None
        renamed = build_commit(group, Intent("rename", name="H"), os.urandom, now=now)
        assert renamed is not None
        group.merge(renamed.staged)
        assert ConversationInfo.from_extensions(group.extensions) == ConversationInfo(
            ConversationKind.GROUP, "H"
        )
        removed = build_commit(group, Intent("remove", accounts=("acct-bob",)), os.urandom, now=now)
        assert removed is not None and [m.leaf_index for m in removed.staged.removed] == [1]
    finally:
        await close_session(alice)
        await close_session(bob)
