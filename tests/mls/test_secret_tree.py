"""RFC 9420 §9 secret tree (secret-tree.json) and the sender-data key (§6.3.2),
plus the out-of-order window, replay, deletion and persistence."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from messenger.mls import treemath
from messenger.mls.ciphersuite import PQ_CIPHER_SUITES, get_cipher_suite
from messenger.mls.errors import (
    DecodeError,
    DecryptionError,
    InvalidMessageError,
    UsageError,
    ValidationError,
)
from messenger.mls.secret_tree import (
    GenerationConsumedError,
    GenerationTooFarError,
    RatchetType,
    SecretTree,
    SecretTreeConfig,
    _RatchetKdf,
    ratchet_type_for,
    sender_data_key_nonce,
)
from tests.mls.vectors import assert_eq, cases, h

HS = RatchetType.HANDSHAKE
APP = RatchetType.APPLICATION


@pytest.mark.parametrize("tc", cases("secret-tree"))
def test_secret_tree_vector(tc: dict[str, Any]) -> None:
    suite = get_cipher_suite(tc["cipher_suite"])
    sd = tc["sender_data"]
    key, nonce = sender_data_key_nonce(suite, h(sd["sender_data_secret"]), h(sd["ciphertext"]))
    assert_eq("sender_data.key", key, h(sd["key"]))
    assert_eq("sender_data.nonce", nonce, h(sd["nonce"]))

    n_leaves = len(tc["leaves"])
    # Receivers: one tree consuming every listed generation in order.
    tree = SecretTree(suite, h(tc["encryption_secret"]), n_leaves)
    for i, gens in enumerate(tc["leaves"]):
        for g in gens:
            gen = g["generation"]
            hs = tree.key_for(i, HS, gen)
            app = tree.key_for(i, APP, gen)
            assert_eq(f"leaf {i} gen {gen}: handshake_key", hs.key, h(g["handshake_key"]))
            assert_eq(f"leaf {i} gen {gen}: handshake_nonce", hs.nonce, h(g["handshake_nonce"]))
            assert_eq(f"leaf {i} gen {gen}: application_key", app.key, h(g["application_key"]))
            assert_eq(
                f"leaf {i} gen {gen}: application_nonce", app.nonce, h(g["application_nonce"])
            )
    # Senders: a fresh tree per leaf, in reverse leaf order, via next_key.
    for i in reversed(range(n_leaves)):
        tree = SecretTree(suite, h(tc["encryption_secret"]), n_leaves)
        wanted = {g["generation"]: g for g in tc["leaves"][i]}
        for gen in range(max(wanted) + 1):
            k = tree.next_key(i, APP)
            assert k.generation == gen
            if gen in wanted:
                assert_eq(
                    f"leaf {i} gen {gen}: application_key (sender)",
                    k.key,
                    h(wanted[gen]["application_key"]),
                )


@pytest.mark.parametrize("suite_id", [*range(1, 8), *PQ_CIPHER_SUITES])
def test_fast_kdf_matches_derive_tree_secret(suite_id: int) -> None:
    suite = get_cipher_suite(suite_id)
    kdf = _RatchetKdf(suite)
    secret = os.urandom(suite.hash_len)
    for gen in (0, 1, 255, 65536, 0xFFFF_FFFF):
        key, nonce, next_secret = kdf.step(secret, gen)
        assert next_secret == kdf.next_secret(secret, gen)
        assert key == suite.derive_tree_secret(secret, b"key", gen, suite.key_len)
        assert nonce == suite.derive_tree_secret(secret, b"nonce", gen, suite.nonce_len)
        assert kdf.next_secret(secret, gen) == suite.derive_tree_secret(
            secret, b"secret", gen, suite.hash_len
        )


def _pair(
    n_leaves: int = 8, config: SecretTreeConfig | None = None
) -> tuple[SecretTree, SecretTree]:
    suite = get_cipher_suite(1)
    secret = os.urandom(32)
    kw = {} if config is None else {"config": config}
    return SecretTree(suite, secret, n_leaves, **kw), SecretTree(suite, secret, n_leaves, **kw)


def test_sender_and_receiver_agree_out_of_order() -> None:
    sender, receiver = _pair()
    sent = [sender.next_key(3, APP) for _ in range(10)]
    for k in (sent[4], sent[0], sent[9], sent[1], sent[5], sent[2], sent[3], sent[8], sent[7]):
        assert receiver.key_for(3, APP, k.generation) == k
    assert receiver.key_for(3, APP, 6) == sent[6]


def test_ratchets_are_independent() -> None:
    sender, receiver = _pair()
    hs = sender.next_key(5, HS)
    app = sender.next_key(5, APP)
    other = sender.next_key(4, APP)
    assert hs.generation == app.generation == other.generation == 0
    assert len({hs.key, app.key, other.key}) == 3
    assert receiver.key_for(4, APP, 0) == other
    assert receiver.key_for(5, HS, 0) == hs
    assert receiver.key_for(5, APP, 0) == app


def test_replay_rejected() -> None:
    sender, receiver = _pair()
    k = sender.next_key(0, APP)
    receiver.key_for(0, APP, 0)
    with pytest.raises(GenerationConsumedError):
        receiver.key_for(0, APP, 0)
    # Skipped keys are single-use too.
    sender.next_key(0, APP)
    sender.next_key(0, APP)
    receiver.key_for(0, APP, 2)
    receiver.key_for(0, APP, 1)
    with pytest.raises(GenerationConsumedError):
        receiver.key_for(0, APP, 1)
    assert isinstance(GenerationConsumedError("x"), DecryptionError)
    assert k.generation == 0


def test_too_far_ahead_rejected() -> None:
    _, receiver = _pair(config=SecretTreeConfig(maximum_forward_distance=50))
    receiver.key_for(1, APP, 50)  # exactly at the limit is fine
    with pytest.raises(GenerationTooFarError):
        receiver.key_for(1, APP, 51 + 51)
    receiver.key_for(1, APP, 101)


def test_default_forward_distance_is_1000() -> None:
    _, receiver = _pair()
    with pytest.raises(GenerationTooFarError):
        receiver.key_for(2, HS, 1001)
    assert receiver.key_for(2, HS, 1000).generation == 1000


def test_out_of_order_window() -> None:
    sender, receiver = _pair(config=SecretTreeConfig(out_of_order_tolerance=5))
    sent = [sender.next_key(6, APP) for _ in range(20)]
    assert receiver.key_for(6, APP, 10) == sent[10]
    # Generations 6..10 are within 5 of the next expected (11); 0..5 are gone.
    for gen in range(6):
        with pytest.raises(GenerationConsumedError):
            receiver.key_for(6, APP, gen)
    assert receiver.key_for(6, APP, 7) == sent[7]
    # Advancing the ratchet evicts old skipped keys.
    assert receiver.key_for(6, APP, 12) == sent[12]
    with pytest.raises(GenerationConsumedError):
        receiver.key_for(6, APP, 6)
    assert receiver.key_for(6, APP, 8) == sent[8]
    assert receiver.key_for(6, APP, 11) == sent[11]


def test_zero_tolerance_keeps_nothing() -> None:
    sender, receiver = _pair(config=SecretTreeConfig(out_of_order_tolerance=0))
    sent = [sender.next_key(0, HS) for _ in range(3)]
    assert receiver.key_for(0, HS, 2) == sent[2]
    for gen in (0, 1):
        with pytest.raises(GenerationConsumedError):
            receiver.key_for(0, HS, gen)


def test_open_consumes_only_on_success() -> None:
    suite = get_cipher_suite(1)
    sender, receiver = _pair()
    sent = [sender.next_key(2, APP) for _ in range(4)]
    ct = suite.aead_seal(sent[3].key, sent[3].nonce, b"aad", b"hello")

    def forged(key: bytes, nonce: bytes) -> bytes:
        return suite.aead_open(key, nonce, b"aad", ct + b"x")

    with pytest.raises(DecryptionError):
        receiver.open(2, APP, 3, forged)
    before = receiver.to_bytes()
    with pytest.raises(DecryptionError):
        receiver.open(2, APP, 3, forged)
    assert receiver.to_bytes() == before  # a forgery does not advance the ratchet

    got = receiver.open(2, APP, 3, lambda k, n: suite.aead_open(k, n, b"aad", ct))
    assert got == b"hello"
    with pytest.raises(GenerationConsumedError):
        receiver.open(2, APP, 3, lambda k, n: suite.aead_open(k, n, b"aad", ct))
    # The skipped generations stayed available; a failed open of one keeps it.
    with pytest.raises(DecryptionError):
        receiver.open(2, APP, 1, forged)
    assert receiver.key_for(2, APP, 1) == sent[1]


def test_failed_open_of_a_fresh_leaf_changes_no_byte() -> None:
    """A forgery naming a leaf not used yet leaves even the encoding alone."""
    suite = get_cipher_suite(1)
    _, receiver = _pair()
    before = receiver.to_bytes()

    def forged(key: bytes, nonce: bytes) -> bytes:
        return suite.aead_open(key, nonce, b"aad", b"not a ciphertext at all")

    with pytest.raises(DecryptionError):
        receiver.open(5, APP, 0, forged)
    with pytest.raises(GenerationTooFarError):
        receiver.open(6, APP, 5000, forged)
    assert receiver.to_bytes() == before


def test_leaf_out_of_range() -> None:
    _, receiver = _pair(n_leaves=4)
    with pytest.raises(ValidationError):
        receiver.key_for(4, APP, 0)
    with pytest.raises(InvalidMessageError):
        receiver.key_for(-1, APP, 0)


def test_constructor_checks() -> None:
    suite = get_cipher_suite(1)
    with pytest.raises(UsageError):
        SecretTree(suite, bytes(32), 6)
    with pytest.raises(UsageError):
        SecretTree(suite, bytes(16), 8)
    with pytest.raises(UsageError):
        SecretTreeConfig(out_of_order_tolerance=-1)
    with pytest.raises(UsageError):
        SecretTreeConfig(maximum_forward_distance=1 << 32)


def test_deletion_schedule() -> None:
    """RFC 9420 §9.2: deriving a leaf deletes the path and keeps the copath."""
    suite = get_cipher_suite(1)
    tree = SecretTree(suite, os.urandom(32), 4)
    assert tree._nodes.keys() == {3}
    tree.key_for(3, APP, 1)  # leaf D of the RFC's four-member example
    # G (3), F (5) and D (6) are gone; E (1) and C (4) remain.
    assert tree._nodes.keys() == {1, 4}
    assert tree._ratchets.keys() == {3}
    hs, app = tree._ratchets[3]
    assert app.next_generation == 2
    assert app.skipped.keys() == {0}  # K0/N0 kept for out-of-order delivery
    assert hs.next_generation == 0  # HR0 kept
    tree.key_for(3, APP, 0)
    assert app.skipped == {}
    tree.key_for(0, HS, 0)
    assert tree._nodes.keys() == {2, 4}
    tree.key_for(1, HS, 0)
    tree.key_for(2, HS, 0)
    assert tree._nodes == {}
    assert tree._ratchets.keys() == {0, 1, 2, 3}


def test_large_tree_lazy() -> None:
    suite = get_cipher_suite(1)
    tree = SecretTree(suite, os.urandom(32), 16384)
    tree.key_for(9999, APP, 0)
    assert len(tree._nodes) == 14  # the copath of leaf 9999
    assert set(tree._nodes) == set(treemath.copath(treemath.leaf_to_node(9999), 16384))


def test_state_round_trip_mid_epoch() -> None:
    config = SecretTreeConfig(out_of_order_tolerance=7, maximum_forward_distance=300)
    sender, receiver = _pair(n_leaves=16, config=config)
    sent = {
        (leaf, rt): [sender.next_key(leaf, rt) for _ in range(12)]
        for leaf in (1, 9)
        for rt in RatchetType
    }
    receiver.key_for(1, APP, 10)
    receiver.key_for(9, HS, 3)
    receiver.key_for(9, HS, 1)

    data = receiver.to_bytes()
    restored = SecretTree.from_bytes(data)
    assert restored.to_bytes() == data
    assert restored.config == config
    assert restored.n_leaves == 16
    assert restored.suite is receiver.suite
    assert repr(restored) == repr(receiver)

    # Both behave identically from here on.
    for tree in (receiver, restored):
        assert tree.key_for(1, APP, 5) == sent[(1, APP)][5]
        with pytest.raises(GenerationConsumedError):
            tree.key_for(9, HS, 1)
        assert tree.key_for(9, HS, 0) == sent[(9, HS)][0]
        assert tree.key_for(9, APP, 11) == sent[(9, APP)][11]
        assert tree.key_for(1, HS, 0) == sent[(1, HS)][0]
    assert receiver.next_key(4, APP) == restored.next_key(4, APP)
    assert receiver.to_bytes() == restored.to_bytes()
    # A fresh tree round-trips too.
    fresh, _ = _pair()
    assert SecretTree.from_bytes(fresh.to_bytes()).to_bytes() == fresh.to_bytes()


def test_decode_rejects_bad_state() -> None:
    tree, _ = _pair(n_leaves=4)
    tree.key_for(0, APP, 3)
    data = tree.to_bytes()
    with pytest.raises(DecodeError):
        SecretTree.from_bytes(data[:-1])
    with pytest.raises(DecodeError):
        SecretTree.from_bytes(data + b"\x00")
    with pytest.raises(DecodeError):  # unknown suite
        SecretTree.from_bytes(b"\x00\x63" + data[2:])
    with pytest.raises(DecodeError):  # not a power of two
        SecretTree.from_bytes(data[:2] + (3).to_bytes(4, "big") + data[6:])
    with pytest.raises(DecodeError):  # eight leaves are not covered by this state
        SecretTree.from_bytes(data[:2] + (8).to_bytes(4, "big") + data[6:])
    for cut in range(0, len(data), 7):
        with pytest.raises(DecodeError):
            SecretTree.from_bytes(data[:cut])


def test_sender_exhaustion() -> None:
    tree, _ = _pair(n_leaves=2)
    hs, _app = tree._leaf_ratchets(1)
    hs.next_generation = 0xFFFF_FFFF
    assert tree.next_key(1, HS).generation == 0xFFFF_FFFF
    with pytest.raises(UsageError):
        tree.next_key(1, HS)


def test_ratchet_type_for_content_type() -> None:
    assert ratchet_type_for(1) is APP
    assert ratchet_type_for(2) is HS
    assert ratchet_type_for(3) is HS


def test_sender_data_short_ciphertext_uses_all_of_it() -> None:
    suite = get_cipher_suite(1)
    secret = os.urandom(32)
    short = os.urandom(10)
    key, nonce = sender_data_key_nonce(suite, secret, short)
    assert key == suite.expand_with_label(secret, b"key", short, 16)
    assert nonce == suite.expand_with_label(secret, b"nonce", short, 12)
    assert (
        sender_data_key_nonce(suite, secret, short + bytes(40))[0]
        == (sender_data_key_nonce(suite, secret, (short + bytes(40))[:32])[0])
    )


@settings(max_examples=60)
@given(
    st.permutations(list(range(12))),
    st.integers(0, 12),
)
def test_any_delivery_order_within_window(order: list[int], tolerance: int) -> None:
    sender, receiver = _pair(n_leaves=2, config=SecretTreeConfig(out_of_order_tolerance=tolerance))
    sent = [sender.next_key(1, APP) for _ in range(12)]
    newest = -1
    for gen in order:
        in_window = gen >= newest + 1 - tolerance
        if in_window:
            assert receiver.key_for(1, APP, gen) == sent[gen]
            newest = max(newest, gen)
        else:
            with pytest.raises(GenerationConsumedError):
                receiver.key_for(1, APP, gen)
