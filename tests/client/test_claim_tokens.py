"""Claim tokens from claims to intents (docs/metadata.md §3): none lost, none reused."""

from __future__ import annotations

from messenger.client.net.claim_tokens import ClaimTokens
from messenger.client.sync.intents import Intent


def test_each_claim_gives_one_token_to_one_intent_oldest_first() -> None:
    tokens = ClaimTokens()
    tokens.record(b"kp-a", b"t1")
    tokens.record(b"kp-b", b"t2")
    tokens.record(b"kp-a", b"t3")  # a last-resort KeyPackage claimed again
    assert tokens.take([b"kp-a", b"kp-b"]) == (b"t1", b"t2")
    assert tokens.take([b"kp-a", b"kp-b", b"kp-c"]) == (b"t3",)
    assert tokens.take([b"kp-a"]) == ()


def test_tokens_no_intent_took_are_forgotten_oldest_first() -> None:
    tokens = ClaimTokens()
    for n in range(1001):
        tokens.record(b"kp-%d" % n, b"t-%d" % n)
    assert tokens.take([b"kp-0"]) == ()
    assert tokens.take([b"kp-1", b"kp-1000"]) == (b"t-1", b"t-1000")


def test_an_add_intent_keeps_its_claim_tokens_across_a_restart() -> None:
    intent = Intent("add", key_packages=(b"kp-a", b"kp-b"), claims=(b"\x01" * 32, b"\x02" * 32))
    again = Intent.loads(intent.dumps())
    assert again == intent
    assert Intent.loads(Intent("add", key_packages=(b"kp",)).dumps()).claims == ()


def test_a_commit_built_before_sealed_commits_is_sent_again_signed() -> None:
    """A commit an older app built and persisted (its answer lost) has no send
    token: it goes again as it was, signed, to get its idempotent answer."""
    from messenger.api import models as m
    from messenger.api.fields import b64encode
    from messenger.client.sync.outbox import _sealed_commit

    commit, queue = b"\x00\x01\x00\x01" + bytes(40), b64encode(b"\x01" * 16)
    old = m.CommitRequest(3, commit, (queue,), idempotency_key=b"k" * 16).dumps()
    new = m.CommitRequest(3, commit, (queue,), token=b"t" * 32).dumps()
    assert not _sealed_commit(old)
    assert _sealed_commit(new)
    assert not _sealed_commit(b"not json")
