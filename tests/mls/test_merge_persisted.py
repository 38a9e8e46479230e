"""Stage, persist, merge without writing the new epoch twice (``Group.merge(persisted=True)``).

A client writes ``checkpoint(staged)`` -- the whole state once the commit is
merged -- in the transaction that records the commit, then merges. Told that
(``persisted=True``), the merged group's next checkpoint holds only the
secret-tree records changed since (RFC 9420 §9.1: a message changes its
sender's ratchet); without it, the next checkpoint is the whole state again.
Either way the state in the store is the state in memory.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from messenger.mls.events import StagedCommit
from messenger.mls.group import Group

from .test_incremental_state import FakeStore, _read, build


def _random(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def test_the_next_checkpoint_after_a_persisted_merge_holds_only_the_changes() -> None:
    alice, bob = build(6)
    rand = _random(11)
    store = FakeStore()
    store.write(bob.checkpoint())
    commit = alice.commit(rand, remove=[5])
    alice.merge(commit.staged)
    staged = bob.process(commit.message)
    assert isinstance(staged, StagedCommit)
    # Stage, persist (the state once merged), merge.
    after = bob.checkpoint(staged)
    assert after.full and after.epoch == bob.epoch + 1
    store.write(after)
    bob.merge(staged, persisted=True)
    assert store.load().to_bytes() == bob.to_bytes()

    # The next message writes a record or two, not the whole state again.
    assert _read(bob, alice.encrypt(b"after the commit", rand)) == b"after the commit"
    change = bob.checkpoint()
    assert not change.full and change.base is None and change.records
    store.write(change)
    loaded = store.load()
    assert loaded.to_bytes() == bob.to_bytes()
    assert _read(loaded, alice.encrypt(b"and again", rand)) == b"and again"


def test_without_persisted_the_next_checkpoint_is_whole() -> None:
    alice, bob = build(4)
    rand = _random(12)
    commit = alice.commit(rand, remove=[3])
    alice.merge(commit.staged)
    staged = bob.process(commit.message)
    assert isinstance(staged, StagedCommit)
    bob.merge(staged)
    assert bob.checkpoint().full


def test_an_own_commit_merged_after_persisting_reloads_the_same() -> None:
    alice, bob = build(5)
    rand = _random(13)
    store = FakeStore()
    store.write(alice.checkpoint())
    commit = alice.commit(rand, remove=[4])
    store.write(alice.checkpoint())  # building the commit may consume handshake keys
    store.write(alice.checkpoint(commit.staged))
    alice.merge(commit.staged, persisted=True)
    reloaded: Group = store.load()
    assert reloaded.to_bytes() == alice.to_bytes()
    bob_event = bob.process(commit.message)
    assert isinstance(bob_event, StagedCommit)
    bob.merge(bob_event)
    assert _read(bob, reloaded.encrypt(b"from the reloaded group", rand)) == (
        b"from the reloaded group"
    )
