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
