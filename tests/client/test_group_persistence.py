"""The MLS group state in the store: whole at an epoch change, small records per message.

A :class:`~messenger.mls.group_state.GroupCheckpoint` is saved as a base
(``mls_groups.state``) and secret-tree slots (``mls_group_ratchets``); an
application message writes its sender's slot only, in the transaction of
the stored message (RFC 9420 §9.2: a key used is deleted with it).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from messenger.client import MessengerClient
from messenger.client.errors import GroupStateRegressionError, StoreError
from messenger.client.store import Store
from messenger.client.store.groups import GroupStateRepository
from messenger.mls.ciphersuite import get_cipher_suite
from messenger.mls.credentials import Credential
from messenger.mls.events import ApplicationMessage, StagedCommit
from messenger.mls.group import Group
from messenger.mls.group_state import GroupCheckpoint
from messenger.mls.key_package_bundle import KeyPackageBundle, generate_key_package
from messenger.mls.secret_tree import GenerationError

from .in_process import InProcessServer

SUITE = get_cipher_suite(1)
FLUSH = 10.0


def _bundle(i: int, rand: Callable[[int], bytes]) -> KeyPackageBundle:
    private, _ = SUITE.generate_signature_key_pair(rand)
    return generate_key_package(
        SUITE, Credential.basic(b"member %d" % i), private, rand, now=1_700_000_000
    )


def _pair(n: int = 6) -> tuple[Group, Group, Callable[[int], bytes]]:
    rand = random.Random(3).randbytes
    alice = Group.create(_bundle(0, rand), rand)
    bundles = [_bundle(i, rand) for i in range(1, n)]
    result = alice.commit(rand, add=[b.key_package for b in bundles])
    alice.merge(result.staged)
    assert result.welcome is not None
    return alice, Group.join_from_welcome(result.welcome, bundles[0]), rand


def _load(store: Store, group_id: bytes) -> Group:
    saved = store.groups.get(group_id)
    assert saved is not None
    return Group.from_checkpoint(saved.state, saved.records)


def _ratchet_rows(store: Store, group_id: bytes) -> int:
    return int(
        store.db.query_value(
            "SELECT count(*) FROM mls_group_ratchets WHERE group_id = ?", (group_id,)
        )
    )


def test_checkpoints_round_trip_through_the_store(store: Store) -> None:
    alice, bob, rand = _pair()
    gid = bob.group_id
    store.groups.save(gid, bob.epoch, bob.checkpoint(), now=1)
    base = store.groups.get(gid)
    assert base is not None and base.records
    sent = [alice.encrypt(b"m%d" % i, rand) for i in range(6)]
    for message in sent[:4]:
        assert isinstance(bob.process(message), ApplicationMessage)
        checkpoint = bob.checkpoint()
        assert not checkpoint.full
        store.groups.save(gid, bob.epoch, checkpoint, now=2)
    saved = store.groups.get(gid)
    assert saved is not None
    # The base was not written again, only the records.
    assert saved.state == base.state and saved.updated_at == 1
    loaded = _load(store, gid)
    assert loaded.to_bytes() == bob.to_bytes()
    for message in sent[4:]:
        event = loaded.process(message)
        assert isinstance(event, ApplicationMessage)
    with pytest.raises(GenerationError):
        loaded.process(sent[0])


def test_a_full_save_replaces_the_records(store: Store) -> None:
    alice, bob, rand = _pair()
    gid = bob.group_id
    store.groups.save(gid, bob.epoch, bob.checkpoint(), now=1)
    for i in range(3):
        bob.process(alice.encrypt(b"%d" % i, rand))
        store.groups.save(gid, bob.epoch, bob.checkpoint(), now=2)
    rows = _ratchet_rows(store, gid)
    assert rows > 0
    # A commit: the whole state of the new epoch, the old epoch's rows gone
    # (those of the kept past epoch are written again with it).
    result = alice.commit(rand)
    alice.merge(result.staged)
    staged = bob.process(result.message)
    assert isinstance(staged, StagedCommit)
    checkpoint = bob.checkpoint(staged)
    assert checkpoint.full
    store.groups.save(gid, checkpoint.epoch, checkpoint, now=3)
    epochs = {
        int(e)
        for (e,) in store.db.query(
            "SELECT DISTINCT epoch FROM mls_group_ratchets WHERE group_id = ?", (gid,)
        )
    }
    assert epochs == {bob.epoch, bob.epoch + 1}
    bob.merge(staged)
    assert _load(store, gid).to_bytes() == bob.to_bytes()
    # Whole bytes (to_bytes) are saved as they are, with no records.
    store.groups.save(gid, bob.epoch, bob.to_bytes(), now=4)
    assert _ratchet_rows(store, gid) == 0
    assert _load(store, gid).to_bytes() == bob.to_bytes()
    assert store.groups.delete(gid) and _ratchet_rows(store, gid) == 0


def test_changes_need_the_base_of_their_epoch(store: Store) -> None:
    alice, bob, rand = _pair()
    gid = bob.group_id
    bob.checkpoint()
    bob.process(alice.encrypt(b"x", rand))
    changes = bob.checkpoint()
    assert not changes.full
    with pytest.raises(StoreError):
        store.groups.save(gid, bob.epoch, changes, now=1)
    store.groups.save(gid, bob.epoch + 1, b"newer", now=1)
    with pytest.raises(GroupStateRegressionError):
        store.groups.save(gid, bob.epoch, changes, now=1)
    with pytest.raises(ValueError):
        store.groups.save(gid, bob.epoch + 1, changes, now=1)
    other = GroupCheckpoint(b"other", bob.epoch, None, ())
    with pytest.raises(ValueError):
        store.groups.save(gid, bob.epoch, other, now=1)


def test_a_failed_transaction_leaves_the_state_before_the_message(store: Store) -> None:
    """The record is written with the stored message or not at all (crash, error)."""
    alice, bob, rand = _pair()
    gid = bob.group_id
    store.groups.save(gid, bob.epoch, bob.checkpoint(), now=1)
    message = alice.encrypt(b"x", rand)
    bob.process(message)
    checkpoint = bob.checkpoint()

    class Boom(Exception):
        pass

    with pytest.raises(Boom), store.db.transaction():
        store.groups.save(gid, bob.epoch, checkpoint, now=2)
        raise Boom
    # As the client does after a failed write: load again from the store.
    again = _load(store, gid)
    assert isinstance(again.process(message), ApplicationMessage)
    store.groups.save(gid, again.epoch, again.checkpoint(), now=3)
    with pytest.raises(GenerationError):
        _load(store, gid).process(message)


def test_record_bytes_per_message_do_not_depend_on_the_group_size(store: Store) -> None:
    written: dict[int, list[int]] = {}
    for n in (10, 200):
        alice, bob, rand = _pair(n)
        gid = bob.group_id
        store.groups.save(gid, bob.epoch, bob.checkpoint(), now=1)
        sizes = []
        for _ in range(4):
            bob.process(alice.encrypt(b"y" * 50, rand))
            checkpoint = bob.checkpoint()
            sizes.append(sum(len(r.data) for r in checkpoint.records))
            store.groups.save(gid, bob.epoch, checkpoint, now=2)
        written[n] = sizes
        assert _load(store, gid).to_bytes() == bob.to_bytes()
    assert written[10][1:] == written[200][1:]


# -- the client, end to end in process -----------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _account_id(client: MessengerClient) -> str:
    info = await client.account()
    assert info is not None
    return info.account_id


@pytest.mark.anyio
async def test_the_client_writes_small_records_per_message(
    server: InProcessServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    saves: list[tuple[bool, int]] = []
    original = GroupStateRepository.save

    def spy(self: GroupStateRepository, group_id: bytes, epoch: int, state: Any, **kw: Any) -> None:
        if isinstance(state, GroupCheckpoint):
            size = sum(len(r.data) for r in state.records)
            saves.append((state.full, size + len(state.base or b"")))
        else:
            saves.append((True, len(state)))
        original(self, group_id, epoch, state, **kw)

    monkeypatch.setattr(GroupStateRepository, "save", spy)
    alice = await server.client("alice")
    bob = await server.client("bob")
    chat = await alice.create_conversation(await _account_id(bob))
    await alice.send_text(chat.id, "hello")
    await alice.flush(FLUSH)
    # Created, commit built, commit accepted (whole states), then "hello":
    # the first message after a commit writes records only.
    assert [full for full, _ in saves][-1:] == [False]
    saves.clear()
    await bob.sync()
    # Joined (a whole state), then "hello" and the rest: records only.
    kinds = [full for full, _ in saves]
    assert kinds[0] and len(kinds) > 1 and not any(kinds[1:])
    (bob_chat,) = await bob.conversations()
    await bob.flush(FLUSH)
    await alice.sync()
    await bob.sync()

    saves.clear()
    for i in range(5):
        await alice.send_text(chat.id, f"text {i}")
    await alice.flush(FLUSH)
    await bob.sync()
    # Alice's five sends go as one batch and Bob receives them as one: one
    # save each, records only (the five generations of Alice's ratchet), of a
    # few hundred bytes at most, while the whole state is kilobytes.
    assert len(saves) == 2
    assert not any(full for full, _ in saves)
    assert max(size for _, size in saves) < 1000
    texts = [v.message.body for v in await bob.messages(bob_chat.id, limit=20) if v.message.body]
    assert texts[-5:] == [f"text {i}" for i in range(5)]
