"""Incremental persistence of a group: a base without secrets plus secret-tree records.

:meth:`Group.checkpoint` gives the whole state (a base and all the secret
tree slots) when more than the secret trees changed, and otherwise only the
slots changed since the last checkpoint (RFC 9420 §9: a sender's leaf, and
the first time the tree secrets on its way down). :class:`FakeStore` keeps
them the way the client's store does (upsert per slot, replace all on a
full checkpoint), and :meth:`Group.from_checkpoint` must give back a group
that behaves as the one in memory: it decrypts the same future messages
and refuses generations already used (RFC 9420 §9.2).
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Callable

import pytest

from messenger.mls.ciphersuite import PQ_CIPHER_SUITES, CipherSuite, get_cipher_suite
from messenger.mls.codec import Reader, Writer
from messenger.mls.credentials import Credential
from messenger.mls.errors import DecodeError
from messenger.mls.events import ApplicationMessage, StagedCommit
from messenger.mls.group import Group
from messenger.mls.group_state import GroupCheckpoint, GroupConfig, GroupState, StateRecord
from messenger.mls.key_package_bundle import KeyPackageBundle, generate_key_package
from messenger.mls.secret_tree import GenerationError, RatchetType, SecretTree, SecretTreeConfig

SUITE = get_cipher_suite(1)
NOW = 1_700_000_000


def _random(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def _bundle(i: int, rand: Callable[[int], bytes], suite: CipherSuite = SUITE) -> KeyPackageBundle:
    private, _ = suite.generate_signature_key_pair(rand)
    return generate_key_package(suite, Credential.basic(b"member %d" % i), private, rand, now=NOW)


def build(
    n: int, *, seed: int = 1, config: GroupConfig | None = None, suite: CipherSuite = SUITE
) -> tuple[Group, Group]:
    """Alice (leaf 0) and Bob (leaf 1) in a group of ``n`` members, epoch 1."""
    rand = _random(seed)
    alice = Group.create(_bundle(0, rand, suite), rand, config=config)
    bundles = [_bundle(i, rand, suite) for i in range(1, n)]
    result = alice.commit(rand, add=[b.key_package for b in bundles])
    alice.merge(result.staged)
    assert result.welcome is not None
    bob = Group.join_from_welcome(result.welcome, bundles[0], config=config)
    return alice, bob


class FakeStore:
    """What the client's store keeps: a base and one record per slot."""

    def __init__(self) -> None:
        self.base = b""
        self.epoch = -1
        self.rows: dict[tuple[int, int], bytes] = {}

    def write(self, checkpoint: GroupCheckpoint) -> None:
        if checkpoint.base is not None:
            self.base, self.epoch = checkpoint.base, checkpoint.epoch
            self.rows = {}
        else:
            assert checkpoint.epoch == self.epoch
        for record in checkpoint.records:
            self.rows[record.epoch, record.node] = record.data

    def records(self) -> list[StateRecord]:
        return [StateRecord(e, n, d) for (e, n), d in sorted(self.rows.items())]

    def load(self) -> Group:
        return Group.from_checkpoint(self.base, self.records())


def _read(group: Group, message: bytes) -> bytes:
    event = group.process(message)
    assert isinstance(event, ApplicationMessage)
    return event.data


def record_bytes(checkpoint: GroupCheckpoint) -> int:
    """What a store writes for the records: node, epoch (8 bytes each) and data."""
    return sum(16 + len(r.data) for r in checkpoint.records)


@pytest.mark.parametrize("suite_id", [1, *PQ_CIPHER_SUITES])
def test_round_trip_behaves_like_the_group_in_memory(suite_id: int) -> None:
    alice, bob = build(10, suite=get_cipher_suite(suite_id))
    rand = _random(7)
    store = FakeStore()
    first = bob.checkpoint()
    assert first.full and first.base is not None
    store.write(first)
    sent = [alice.encrypt(b"m%d" % i, rand) for i in range(12)]
    # Out of order: 3 and 5 are kept as skipped keys (RFC 9420 §9.2).
    for i in (0, 1, 2, 4, 6, 7):
        assert _read(bob, sent[i]) == b"m%d" % i
        checkpoint = bob.checkpoint()
        assert not checkpoint.full and checkpoint.base is None
        store.write(checkpoint)

    loaded = store.load()
    assert loaded.to_bytes() == bob.to_bytes()
    for i in (3, 5, 8, 9, 10, 11):
        assert _read(loaded, sent[i]) == _read(bob, sent[i]) == b"m%d" % i
    for group in (loaded, bob):
        for i in (0, 4, 5, 11):
            with pytest.raises(GenerationError):
                group.process(sent[i])


def test_a_sender_does_not_reuse_a_generation_after_reloading() -> None:
    alice, bob = build(10)
    rand = _random(8)
    store = FakeStore()
    store.write(alice.checkpoint())
    for i in range(3):
        assert _read(bob, alice.encrypt(b"a%d" % i, rand)) == b"a%d" % i
        store.write(alice.checkpoint())
    reloaded = store.load()
    assert reloaded.to_bytes() == alice.to_bytes()
    # Alice's next message after reloading uses generation 3, which Bob takes;
    # a reused generation 0..2 would be refused.
    assert _read(bob, reloaded.encrypt(b"after", rand)) == b"after"


def test_crash_after_n_messages_leaves_a_consistent_state() -> None:
    alice, bob = build(10)
    rand = _random(9)
    store = FakeStore()
    store.write(bob.checkpoint())
    sent = [alice.encrypt(b"x%d" % i, rand) for i in range(8)]
    for n in range(1, 8):
        # Message n-1 processed and persisted, message n processed and then
        # the process dies before its transaction: the store has n messages.
        _read(bob, sent[n - 1])
        store.write(bob.checkpoint())
        _read(bob, sent[n])
        bob = store.load()
        for used in sent[:n]:
            with pytest.raises(GenerationError):
                bob.process(used)
        # The lost message is processed again (the server redelivers it).
    assert _read(bob, sent[7]) == b"x7"


def _message_records(n: int) -> tuple[int, dict[str, list[int]]]:
    """The full state's size, and the record bytes of six messages each way."""
    sizes: dict[str, list[int]] = {}
    alice, bob = build(n, seed=n)
    rand = _random(n)
    bob.checkpoint()
    alice.checkpoint()
    full = len(bob.to_bytes())
    received, sent = [], []
    for _ in range(6):
        _read(bob, alice.encrypt(b"y" * 100, rand))
        checkpoint = bob.checkpoint()
        assert not checkpoint.full
        received.append(record_bytes(checkpoint))
        sent.append(record_bytes(alice.checkpoint()))
    sizes["received"], sizes["sent"] = received, sent
    return full, sizes


@pytest.mark.parametrize("n", [10, 1000])
def test_bytes_per_message_do_not_grow_with_the_group(n: int) -> None:
    full, sizes = _message_records(n)
    # After the first message of a sender, one record: the sender's leaf, two
    # ratchets -- the same bytes at any group size.
    for kind in ("received", "sent"):
        steady = sizes[kind][1:]
        assert steady == [steady[0]] * len(steady)
        assert steady[0] < 200
        # The first message also splits the tree secrets on the way to the
        # leaf: at most one record per level (RFC 9420 §9).
        assert sizes[kind][0] <= steady[0] + (math.ceil(math.log2(n)) + 2) * 60
    assert full > (20 if n < 100 else 1000) * sizes["received"][1]


def test_steady_record_is_the_same_at_10_and_1000() -> None:
    _, small = _message_records(10)
    _, large = _message_records(1000)
    assert small["received"][1] == large["received"][1]
    assert small["sent"][1] == large["sent"][1]


def test_full_checkpoint_when_more_than_the_secret_tree_changes() -> None:
    alice, bob = build(4)
    rand = _random(10)
    assert bob.checkpoint().full
    assert not bob.checkpoint().full
    assert bob.checkpoint().records == ()
    # A proposal received is cached: the base changed.
    proposal = alice.propose_remove(3, rand)
    bob.process(proposal)
    assert bob.checkpoint().full
    assert not bob.checkpoint().full
    bob.clear_pending_proposals()
    assert bob.checkpoint().full
    # A commit merged, and a checkpoint of a staged commit.
    alice.clear_pending_proposals()
    result = alice.commit(rand)
    staged = bob.process(result.message)
    assert isinstance(staged, StagedCommit)
    as_staged = bob.checkpoint(staged)
    assert as_staged.full and as_staged.epoch == bob.epoch + 1
    assert not bob.checkpoint().full  # staging changed nothing
    bob.merge(staged)
    assert bob.checkpoint().full
    # A group from whole bytes does not know what is stored: full.
    assert Group.from_bytes(bob.to_bytes()).checkpoint().full


def test_a_staged_checkpoint_loads_as_the_merged_group() -> None:
    alice, bob = build(4)
    rand = _random(11)
    result = alice.commit(rand)
    staged = bob.process(result.message)
    assert isinstance(staged, StagedCommit)
    store = FakeStore()
    store.write(bob.checkpoint(staged))
    expected = bob.to_bytes(staged)
    assert store.load().to_bytes() == expected


def test_a_handshake_message_keeps_the_changes_not_yet_checkpointed() -> None:
    config = GroupConfig(encrypt_handshake=True)
    alice, bob = build(4, config=config)
    rand = _random(12)
    store = FakeStore()
    store.write(bob.checkpoint())
    message = alice.encrypt(b"before the commit", rand)
    _read(bob, message)
    # An encrypted Commit: its handshake key is given back by restoring the
    # secret tree (it is only staged); the application key stays consumed.
    staged = bob.process(alice.commit(rand).message)
    assert isinstance(staged, StagedCommit)
    checkpoint = bob.checkpoint()
    assert not checkpoint.full and checkpoint.records
    store.write(checkpoint)
    with pytest.raises(GenerationError):
        store.load().process(message)


def test_late_message_of_a_past_epoch_is_a_record_of_that_epoch() -> None:
    alice, bob = build(4)
    rand = _random(13)
    late = alice.encrypt(b"late", rand)
    past_epoch = alice.epoch
    result = alice.commit(rand)
    alice.merge(result.staged)
    staged = bob.process(result.message)
    assert isinstance(staged, StagedCommit)
    bob.merge(staged)
    store = FakeStore()
    store.write(bob.checkpoint())
    assert _read(bob, late) == b"late"
    checkpoint = bob.checkpoint()
    assert not checkpoint.full
    assert {r.epoch for r in checkpoint.records} == {past_epoch}
    store.write(checkpoint)
    with pytest.raises(GenerationError):
        store.load().process(late)


def test_records_over_whole_bytes_empty_the_slots_they_say() -> None:
    # A store that holds whole bytes (saved with to_bytes) and records of the
    # changes after it, emptied slots included.
    alice, bob = build(8)
    rand = _random(14)
    bob.checkpoint()
    whole = bob.to_bytes()
    store = FakeStore()
    store.base, store.epoch = whole, bob.epoch
    _read(bob, alice.encrypt(b"z", rand))
    checkpoint = bob.checkpoint()
    assert any(not r.data for r in checkpoint.records)  # the root secret was consumed
    store.write(checkpoint)
    loaded = store.load()
    assert loaded.to_bytes() == bob.to_bytes()
    assert loaded.checkpoint().full  # whole bytes: the next save replaces them


def test_the_base_alone_is_not_a_group() -> None:
    _, bob = build(4)
    checkpoint = bob.checkpoint()
    assert checkpoint.base is not None
    assert GroupState.is_split(checkpoint.base)
    assert not GroupState.is_split(bob.to_bytes())
    assert b"" not in {r.data for r in checkpoint.records}
    with pytest.raises(DecodeError):
        Group.from_bytes(checkpoint.base)
    with pytest.raises(DecodeError):
        Group.from_checkpoint(checkpoint.base, [])
    # The tree secrets are not in the base (RFC 9420 §9.2: a consumed one
    # must go, so it lives only in a record that is rewritten). The root is
    # the epoch's encryption_secret, which the key schedule keeps.
    other_alice, other_bob = build(4)
    _read(other_bob, other_alice.encrypt(b"w", _random(15)))
    whole = Group.from_bytes(other_bob.to_bytes()).checkpoint()
    assert whole.base is not None
    assert len(whole.records) > 1
    for record in whole.records:
        assert record.data[-32:] not in whole.base
    with pytest.raises(DecodeError):
        Group.from_checkpoint(checkpoint.base, [StateRecord(bob.epoch, 10**6, b"\x00")])
    # Records of an epoch the group does not keep are ignored.
    stale = [*checkpoint.records, StateRecord(bob.epoch + 5, 0, b"\x07")]
    assert Group.from_checkpoint(checkpoint.base, stale).to_bytes() == bob.to_bytes()


def test_secret_tree_slots_follow_any_order_of_use() -> None:
    """Slots taken after each use rebuild the tree exactly (RFC 9420 §9, §9.2)."""
    rng = random.Random(16)
    config = SecretTreeConfig(out_of_order_tolerance=5, maximum_forward_distance=50)
    tree = SecretTree(SUITE, rng.randbytes(32), 16, config=config)
    shape = Writer()
    tree.encode_shape(shape)
    rows = dict(tree.slots())
    tree.clear_changes()
    for _ in range(200):
        leaf = rng.randrange(16)
        ratchet = RatchetType(rng.randrange(2))
        generation = rng.randrange(12)
        with contextlib.suppress(GenerationError):
            tree.key_for(leaf, ratchet, generation)
        rows.update(tree.take_changes())
        rebuilt = SecretTree.decode_shape(Reader(shape.getvalue()))
        rebuilt.load_slots(sorted(rows.items()))
        rebuilt.check_complete()
        assert rebuilt.to_bytes() == tree.to_bytes()
    assert dict(tree.slots()) == {node: data for node, data in rows.items() if data}
