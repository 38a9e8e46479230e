"""The link's sealed channel: tamper, reorder, replay, wrong key or direction all fail."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from messenger.client import LinkFailedError
from messenger.client.linking.channel import OVERHEAD, LinkChannel, derive_link_keys

SECRET = bytes(range(15))


def pair() -> tuple[LinkChannel, LinkChannel]:
    return LinkChannel(SECRET, creator=True), LinkChannel(SECRET, creator=False)


def _hkdf_sha256(secret: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 by hand, empty salt (HashLen zeros)."""
    prk = hmac.new(bytes(32), secret, hashlib.sha256).digest()
    okm, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
    return okm[:length]


def test_keys_follow_the_design() -> None:
    link_id, key = derive_link_keys(SECRET)
    assert link_id == _hkdf_sha256(SECRET, b"messenger-link-v1 id", 16)
    assert key == _hkdf_sha256(SECRET, b"messenger-link-v1 key", 32)
    assert derive_link_keys(bytes(15))[0] != link_id


def test_messages_go_both_ways_in_order() -> None:
    creator, new = pair()
    assert creator.link_id == new.link_id
    for i in range(3):
        sealed = creator.seal(b"to new %d" % i)
        assert len(sealed) == len(b"to new %d" % i) + OVERHEAD
        assert new.open(sealed) == b"to new %d" % i
        assert creator.open(new.seal(b"to creator %d" % i)) == b"to creator %d" % i
    assert (creator.sent, creator.received, new.sent, new.received) == (3, 3, 3, 3)


def test_nonces_are_random() -> None:
    creator, _ = pair()
    assert creator.seal(b"x")[:12] != creator.seal(b"x")[:12]


@pytest.mark.parametrize("position", [0, 11, 12, 20, -1])
def test_a_tampered_message_fails(position: int) -> None:
    creator, new = pair()
    sealed = bytearray(creator.seal(b"invitation"))
    sealed[position] ^= 1
    with pytest.raises(LinkFailedError):
        new.open(bytes(sealed))
    assert new.received == 0  # nothing was consumed


def test_a_reordered_message_fails() -> None:
    creator, new = pair()
    first, second = creator.seal(b"0"), creator.seal(b"1")
    with pytest.raises(LinkFailedError):
        new.open(second)
    assert new.open(first) == b"0"


def test_a_replayed_message_fails() -> None:
    creator, new = pair()
    sealed = creator.seal(b"0")
    assert new.open(sealed) == b"0"
    with pytest.raises(LinkFailedError):
        new.open(sealed)


def test_a_dropped_message_makes_the_next_fail() -> None:
    creator, new = pair()
    creator.seal(b"dropped")
    with pytest.raises(LinkFailedError):
        new.open(creator.seal(b"1"))


def test_a_reflected_message_fails() -> None:
    """A message sent one way cannot be posted back the other way (the direction byte)."""
    creator, new = pair()
    sealed = creator.seal(b"answer")
    with pytest.raises(LinkFailedError):
        creator.open(sealed)  # as if the server handed it back to its sender
    to_creator = new.seal(b"offer")
    with pytest.raises(LinkFailedError):
        LinkChannel(SECRET, creator=False).open(to_creator)


def test_a_wrong_key_fails() -> None:
    creator = LinkChannel(SECRET, creator=True)
    stranger = LinkChannel(bytes(15), creator=False)
    with pytest.raises(LinkFailedError):
        stranger.open(creator.seal(b"x"))


def test_short_and_garbage_input_fails_cleanly() -> None:
    _, new = pair()
    for garbage in (b"", b"x" * (OVERHEAD - 1), b"\x00" * 100):
        with pytest.raises(LinkFailedError):
            new.open(garbage)


def test_resuming_counters() -> None:
    creator, _ = pair()
    creator.seal(b"0")
    sealed = creator.seal(b"1")
    assert LinkChannel(SECRET, creator=False, received=1).open(sealed) == b"1"
