"""The send token (docs/metadata.md §3): every member derives the same one, per epoch.

The committer registers the digest of the epoch its commit makes, computed
from the staged commit before it merges (``next_send_token_hash``); the test
checks that every member, after merging the commit or joining from its
Welcome, derives a token with exactly that digest, that each epoch has its
own, and that a removed member's last token is not the new epoch's.
"""

from __future__ import annotations

import pytest

from messenger.api import models as m
from messenger.api.fields import b64encode
from messenger.api.sealed import token_digest
from messenger.client.sealed_sending import next_send_token_hash, send_token, send_token_hash
from messenger.client.sync.outbox import _sealed
from messenger.mls.ciphersuite import PQ_CIPHER_SUITES
from tests.mls.harness import NOW, Network


@pytest.mark.parametrize("suite", [1, 3, PQ_CIPHER_SUITES[0]])
def test_every_member_derives_the_digest_the_committer_registers(suite: int) -> None:
    net = Network(suite, seed=41)
    alice = net.create("alice")
    first = send_token_hash(alice)
    result = alice.commit(net.random, now=NOW, add=[net.key_package(n) for n in ("bob", "carol")])
    registered = next_send_token_hash(alice, result.staged)
    assert registered is not None
    net.accept("alice", result, ["bob", "carol"])
    assert {send_token_hash(g) for g in net.groups.values()} == {registered}
    assert registered != first, "each epoch has its own token"
    assert len(send_token(net.groups["bob"])) == m.SEND_TOKEN_BYTES

    bob_last = send_token(net.groups["bob"])
    result = net.groups["carol"].commit(net.random, now=NOW, remove=[net.groups["bob"].leaf_index])
    registered = next_send_token_hash(net.groups["carol"], result.staged)
    net.accept("carol", result)
    assert "bob" not in net.groups
    assert {send_token_hash(g) for g in net.groups.values()} == {registered}
    assert token_digest(bob_last) != registered, "a removed member's last token is stale"


def test_the_committer_removed_by_its_own_commit_registers_nothing() -> None:
    net = Network(1, seed=42)
    net.create("alice")
    net.commit("alice", add_names=["bob"])
    bob = net.groups["bob"]
    message = bob.propose_remove(bob.leaf_index, net.random)
    net.propose("bob", message)
    result = net.groups["alice"].commit(net.random, now=NOW)
    assert next_send_token_hash(net.groups["alice"], result.staged) is not None
    staged_at_bob = net.groups["bob"].process(result.message, now=NOW)
    assert next_send_token_hash(bob, staged_at_bob) is None  # type: ignore[arg-type]


def test_a_send_built_before_tokens_is_built_again() -> None:
    message = b"\x00\x01" + bytes(100)
    old = b'{"message":"' + b64encode(message).encode() + b'"}'
    assert not _sealed(old), "a bare message from before padding"
    unsealed = m.SendRequest(message).dumps()
    assert not _sealed(unsealed), "padded but without a token"
    assert _sealed(m.SendRequest(message, None, bytes(32)).dumps())
    assert not _sealed(None)
