"""PublicMessage / PrivateMessage protection against ``message-protection.json``.

RFC 9420 §6 (framing), §6.1 (signatures), §6.2 (membership tag), §6.3
(content and sender data encryption). Verification as in test-vectors.md,
"Message Protection": the member at leaf 1 of a two-member group sends; each
vector message is unprotected and compared, then a fresh one is protected and
unprotected again. The negative tests check that each kind of bad input
raises its typed error and leaves the secret tree able to decrypt the genuine
message afterwards.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import pytest

from messenger.mls.ciphersuite import CipherSuite, get_cipher_suite
from messenger.mls.codec import encode_varint
from messenger.mls.commit import Commit
from messenger.mls.content import (
    AuthenticatedContent,
    Content,
    ContentType,
    FramedContent,
    FramedContentAuthData,
    FramedContentTBS,
    PrivateMessage,
    PrivateMessageContent,
    PublicMessage,
    Sender,
    SenderData,
    WireFormat,
)
from messenger.mls.errors import (
    AuthenticationError,
    DecodeError,
    DecryptionError,
    EpochError,
    UsageError,
    ValidationError,
)
from messenger.mls.framing import (
    DEFAULT_PADDING_BLOCK,
    FramingContext,
    authenticate,
    framed_content_tbs_bytes,
    verify_content_signature,
)
from messenger.mls.group_context import GroupContext
from messenger.mls.messages import MLSMessage
from messenger.mls.proposals import Proposal, Remove
from messenger.mls.secret_tree import (
    MAX_GENERATION,
    GenerationConsumedError,
    GenerationTooFarError,
    RatchetType,
    SecretTree,
    SecretTreeConfig,
)

from .vectors import assert_eq, cases, h

VECTORS = cases("message-protection")
KINDS = ["proposal", "commit", "application"]
HANDSHAKE_KINDS = ["proposal", "commit"]
SENDER = 1  # test-vectors.md: "use the member with LeafIndex 1 as the sender"
N_LEAVES = 2


def members(leaf: int) -> bool:
    return leaf < N_LEAVES


# -- helpers ----------------------------------------------------------------------


def suite_of(tc: dict[str, Any]) -> CipherSuite:
    return get_cipher_suite(tc["cipher_suite"])


def group_context(tc: dict[str, Any], *, epoch: int | None = None) -> GroupContext:
    return GroupContext(
        cipher_suite=tc["cipher_suite"],
        group_id=h(tc["group_id"]),
        epoch=tc["epoch"] if epoch is None else epoch,
        tree_hash=h(tc["tree_hash"]),
        confirmed_transcript_hash=h(tc["confirmed_transcript_hash"]),
    )


def new_ctx(tc: dict[str, Any], **kwargs: Any) -> FramingContext:
    """A fresh FramingContext with its own secret tree of two leaves."""
    suite = suite_of(tc)
    return FramingContext(
        suite,
        group_context(tc),
        h(tc["membership_key"]),
        h(tc["sender_data_secret"]),
        SecretTree(suite, h(tc["encryption_secret"]), N_LEAVES),
        **kwargs,
    )


def raw_content(tc: dict[str, Any], kind: str) -> Content:
    data = h(tc[kind])
    if kind == "proposal":
        return Proposal.from_bytes(data)
    if kind == "commit":
        return Commit.from_bytes(data)
    return data


def encoded(content: Content) -> bytes:
    return content if isinstance(content, bytes) else content.to_bytes()


def sign_own(
    tc: dict[str, Any],
    kind: str,
    wire_format: WireFormat,
    *,
    authenticated_data: bytes = b"",
    signature_priv: bytes | None = None,
) -> AuthenticatedContent:
    """Sign the vector's raw content as leaf 1, as a fresh message."""
    suite = suite_of(tc)
    framed = FramedContent(
        h(tc["group_id"]),
        tc["epoch"],
        Sender.member(SENDER),
        authenticated_data,
        raw_content(tc, kind),
    )
    # No confirmation key in this vector: any MAC-sized tag will do for a commit.
    tag = os.urandom(suite.hash_len) if kind == "commit" else None
    key = h(tc["signature_priv"]) if signature_priv is None else signature_priv
    return authenticate(suite, key, wire_format, framed, group_context(tc), tag)


def over_the_wire(message: PublicMessage | PrivateMessage) -> MLSMessage:
    return MLSMessage.from_bytes(MLSMessage(message).to_bytes())


def check_vector_content(tc: dict[str, Any], kind: str, content: AuthenticatedContent) -> None:
    assert_eq(f"{kind}: content", encoded(content.content.content), h(tc[kind]))
    assert_eq(f"{kind}: sender", content.content.sender, Sender.member(SENDER))
    assert_eq(f"{kind}: group_id", content.content.group_id, h(tc["group_id"]))
    assert_eq(f"{kind}: epoch", content.content.epoch, tc["epoch"])


def flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


def manual_private_message(
    tc: dict[str, Any],
    plaintext: bytes,
    content_type: ContentType,
    *,
    generation: int = 0,
    leaf: int = SENDER,
    reuse_guard: bytes = b"\x00\x00\x00\x00",
    authenticated_data: bytes = b"",
    sender_data: bytes | None = None,
) -> PrivateMessage:
    """An independent PrivateMessage encryption (RFC 9420 §6.3) of any plaintext.

    ``sender_data`` replaces the encoded SenderData, to make malformed ones.
    """
    suite = suite_of(tc)
    group_id = h(tc["group_id"])
    epoch = tc["epoch"]
    ratchet = RatchetType.APPLICATION if content_type == 1 else RatchetType.HANDSHAKE
    # A tree that derives any generation, so the test can make too-far ones.
    config = SecretTreeConfig(maximum_forward_distance=MAX_GENERATION)
    tree = SecretTree(suite, h(tc["encryption_secret"]), N_LEAVES, config=config)
    key = tree.key_for(min(leaf, N_LEAVES - 1), ratchet, generation)
    nonce = bytes(a ^ b for a, b in zip(key.nonce[:4], reuse_guard, strict=True)) + key.nonce[4:]
    head = (
        encode_varint(len(group_id)) + group_id + epoch.to_bytes(8, "big") + bytes([content_type])
    )
    aad = head + encode_varint(len(authenticated_data)) + authenticated_data
    ciphertext = suite.aead_seal(key.key, nonce, aad, plaintext)
    sample = ciphertext[: suite.hash_len]
    secret = h(tc["sender_data_secret"])
    sd_key = suite.expand_with_label(secret, b"key", sample, suite.key_len)
    sd_nonce = suite.expand_with_label(secret, b"nonce", sample, suite.nonce_len)
    if sender_data is None:
        sender_data = SenderData(leaf, generation, reuse_guard).to_bytes()
    return PrivateMessage(
        group_id,
        epoch,
        content_type,
        authenticated_data,
        suite.aead_seal(sd_key, sd_nonce, head, sender_data),
        ciphertext,
    )


def signature_key(tc: dict[str, Any]) -> Callable[[int], bytes]:
    pub = h(tc["signature_pub"])
    return lambda leaf: pub


# -- the vectors ------------------------------------------------------------------


@pytest.mark.parametrize("kind", HANDSHAKE_KINDS)
@pytest.mark.parametrize("tc", VECTORS)
def test_unprotect_public_vector(tc, kind):
    ctx = new_ctx(tc)
    message = MLSMessage.from_bytes(h(tc[f"{kind}_pub"]))
    content = ctx.unprotect_public(message.public_message)
    assert_eq(f"{kind}_pub: wire_format", content.wire_format, WireFormat.PUBLIC_MESSAGE)
    check_vector_content(tc, f"{kind}", content)
    verify_content_signature(ctx.suite, content, h(tc["signature_pub"]), ctx.group_context)
    # The membership tag is deterministic: protecting again gives the same bytes.
    assert_eq(
        f"{kind}_pub: re-protected",
        MLSMessage(ctx.protect_public(content)).to_bytes(),
        h(tc[f"{kind}_pub"]),
    )


@pytest.mark.parametrize("kind", HANDSHAKE_KINDS)
@pytest.mark.parametrize("tc", VECTORS)
def test_protect_public_round_trip(tc, kind):
    ctx = new_ctx(tc)
    content = sign_own(tc, kind, WireFormat.PUBLIC_MESSAGE, authenticated_data=b"aad")
    message = over_the_wire(ctx.protect_public(content)).public_message
    assert message.membership_tag is not None
    assert_eq(f"{kind}: membership_tag length", len(message.membership_tag), ctx.suite.hash_len)
    received = new_ctx(tc).unprotect_public(message)
    ctx.verify_signature(received, h(tc["signature_pub"]))
    assert_eq(f"{kind}: round-tripped content", received, content)


@pytest.mark.parametrize("tc", VECTORS)
def test_protect_public_application_fails(tc):
    content = sign_own(tc, "application", WireFormat.PUBLIC_MESSAGE)
    with pytest.raises(UsageError):
        new_ctx(tc).protect_public(content)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("tc", VECTORS)
def test_unprotect_private_vector(tc, kind):
    message = MLSMessage.from_bytes(h(tc[f"{kind}_priv"])).private_message
    # With the signature checked inside unprotect ...
    content = new_ctx(tc).unprotect_private(
        message, is_member=members, signature_key_of=signature_key(tc)
    )
    assert_eq(f"{kind}_priv: wire_format", content.wire_format, WireFormat.PRIVATE_MESSAGE)
    check_vector_content(tc, kind, content)
    # ... and by the caller afterwards.
    ctx = new_ctx(tc)
    again = ctx.unprotect_private(message, is_member=members)
    ctx.verify_signature(again, h(tc["signature_pub"]))
    assert_eq(f"{kind}_priv: content (caller-verified)", again, content)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("tc", VECTORS)
def test_protect_private_round_trip(tc, kind):
    sender, receiver = new_ctx(tc), new_ctx(tc)
    contents = [
        sign_own(tc, kind, WireFormat.PRIVATE_MESSAGE, authenticated_data=bytes([i]) * i)
        for i in range(3)
    ]
    messages = [over_the_wire(sender.protect_private(c, os.urandom)) for c in contents]
    # Out of order within the window: 2, 0, 1.
    for i in (2, 0, 1):
        message = messages[i].private_message
        got = receiver.unprotect_private(
            message, is_member=members, signature_key_of=signature_key(tc)
        )
        assert_eq(f"{kind}: round-tripped content {i}", got, contents[i])
        # Padding to the block size (RFC 9420 §6.3.1): ciphertext = plaintext + 16-byte tag.
        assert_eq(
            f"{kind}: padded plaintext length mod {DEFAULT_PADDING_BLOCK}",
            (len(message.ciphertext) - 16) % DEFAULT_PADDING_BLOCK,
            0,
        )


@pytest.mark.parametrize("tc", VECTORS)
def test_protect_private_matches_independent_encryption(tc):
    """protect_private agrees byte for byte with the test's own RFC 9420 §6.3 code."""
    guard = b"\x9a\x01\xfe\x42"
    content = sign_own(tc, "application", WireFormat.PRIVATE_MESSAGE, authenticated_data=b"x")
    ctx = new_ctx(tc, padding_block=0)
    got = ctx.protect_private(content, lambda n: guard[:n])
    plaintext = PrivateMessageContent(content.content.content, content.auth).to_bytes()
    want = manual_private_message(
        tc, plaintext, ContentType.APPLICATION, reuse_guard=guard, authenticated_data=b"x"
    )
    assert_eq("PrivateMessage", got.to_bytes(), want.to_bytes())


@pytest.mark.parametrize("block", [0, 1, 7, 32, 256])
def test_padding_block_sizes(block):
    tc = VECTORS[0].values[0]
    sender, receiver = new_ctx(tc, padding_block=block), new_ctx(tc, padding_block=block)
    content = sign_own(tc, "application", WireFormat.PRIVATE_MESSAGE)
    message = sender.protect_private(content, os.urandom)
    unpadded = len(PrivateMessageContent(content.content.content, content.auth).to_bytes())
    plaintext_len = len(message.ciphertext) - 16
    if block > 1:
        assert_eq("padded length mod block", plaintext_len % block, 0)
        assert 0 <= plaintext_len - unpadded < block
    else:
        assert_eq("unpadded length", plaintext_len, unpadded)
    got = receiver.unprotect_private(message, is_member=members)
    assert_eq("content", got, content)


@pytest.mark.parametrize("tc", VECTORS)
def test_tbs_bytes_match_struct(tc):
    content = sign_own(tc, "proposal", WireFormat.PUBLIC_MESSAGE)
    gc = group_context(tc)
    want = FramedContentTBS(WireFormat.PUBLIC_MESSAGE, content.content, gc).to_bytes()
    assert_eq(
        "FramedContentTBS", framed_content_tbs_bytes(content.wire_format, content.content, gc), want
    )
    assert_eq(
        "FramedContentTBS (encoded GroupContext)",
        framed_content_tbs_bytes(content.wire_format, content.content, gc.to_bytes()),
        want,
    )
    external = dataclasses.replace(content.content, sender=Sender.external(0))
    assert_eq(
        "FramedContentTBS (external sender, no GroupContext)",
        framed_content_tbs_bytes(WireFormat.PUBLIC_MESSAGE, external, gc),
        FramedContentTBS(WireFormat.PUBLIC_MESSAGE, external).to_bytes(),
    )
    with pytest.raises(UsageError):
        framed_content_tbs_bytes(WireFormat.PUBLIC_MESSAGE, content.content, None)


# -- negative tests: PrivateMessage -------------------------------------------------


def genuine_decrypts(tc: dict[str, Any], ctx: FramingContext, kind: str) -> None:
    """The vector's genuine PrivateMessage still decrypts with ``ctx``'s tree."""
    message = MLSMessage.from_bytes(h(tc[f"{kind}_priv"])).private_message
    content = ctx.unprotect_private(message, is_member=members, signature_key_of=signature_key(tc))
    check_vector_content(tc, kind, content)


def vector_private(tc: dict[str, Any], kind: str) -> PrivateMessage:
    return MLSMessage.from_bytes(h(tc[f"{kind}_priv"])).private_message


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("tc", VECTORS)
def test_tampered_ciphertext(tc, kind):
    ctx = new_ctx(tc)
    message = vector_private(tc, kind)
    # The last byte lies in the AEAD tag: sender data still opens, content does not.
    bad = dataclasses.replace(message, ciphertext=flip(message.ciphertext, -1))
    with pytest.raises(DecryptionError):
        ctx.unprotect_private(bad, is_member=members)
    # The first byte is in the sample: the sender data key changes.
    bad = dataclasses.replace(message, ciphertext=flip(message.ciphertext, 0))
    with pytest.raises(DecryptionError):
        ctx.unprotect_private(bad, is_member=members)
    bad = dataclasses.replace(message, authenticated_data=b"changed")
    with pytest.raises(DecryptionError):
        ctx.unprotect_private(bad, is_member=members)
    genuine_decrypts(tc, ctx, kind)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("tc", VECTORS)
def test_tampered_sender_data(tc, kind):
    ctx = new_ctx(tc)
    message = vector_private(tc, kind)
    for index in (0, len(message.encrypted_sender_data) - 1):
        bad = dataclasses.replace(
            message, encrypted_sender_data=flip(message.encrypted_sender_data, index)
        )
        with pytest.raises(DecryptionError):
            ctx.unprotect_private(bad, is_member=members)
    bad = dataclasses.replace(message, encrypted_sender_data=b"")
    with pytest.raises(DecryptionError):
        ctx.unprotect_private(bad, is_member=members)
    genuine_decrypts(tc, ctx, kind)


@pytest.mark.parametrize("tc", VECTORS)
def test_malformed_sender_data(tc):
    """A SenderData that decrypts but is not 10 bytes is a DecodeError (RFC 9420 §6.3.2)."""
    ctx = new_ctx(tc)
    plaintext = PrivateMessageContent(b"hi", FramedContentAuthData(b"sig")).to_bytes()
    good = SenderData(SENDER, 0, bytes(4)).to_bytes()
    for sender_data in (good[:-1], good + b"\x00", b""):
        message = manual_private_message(
            tc, plaintext, ContentType.APPLICATION, sender_data=sender_data
        )
        with pytest.raises(DecodeError):
            ctx.unprotect_private(message, is_member=members)
    genuine_decrypts(tc, ctx, "application")


@pytest.mark.parametrize("tc", VECTORS)
def test_wrong_content_type(tc):
    """The content type is in both AADs (RFC 9420 §6.3.1, §6.3.2)."""
    ctx = new_ctx(tc)
    message = vector_private(tc, "application")
    bad = dataclasses.replace(message, content_type=ContentType.PROPOSAL)
    with pytest.raises(DecryptionError):
        ctx.unprotect_private(bad, is_member=members)
    genuine_decrypts(tc, ctx, "application")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("tc", VECTORS)
def test_wrong_epoch(tc, kind):
    ctx = new_ctx(tc)
    message = vector_private(tc, kind)
    with pytest.raises(EpochError):
        ctx.unprotect_private(
            dataclasses.replace(message, epoch=message.epoch + 1), is_member=members
        )
    with pytest.raises(EpochError):
        ctx.unprotect_private(
            dataclasses.replace(message, epoch=message.epoch - 1), is_member=members
        )
    # A context of another epoch rejects the genuine message too.
    suite = ctx.suite
    later = FramingContext(
        suite,
        group_context(tc, epoch=tc["epoch"] + 1),
        ctx.membership_key,
        ctx.sender_data_secret,
        SecretTree(suite, h(tc["encryption_secret"]), N_LEAVES),
    )
    with pytest.raises(EpochError):
        later.unprotect_private(message, is_member=members)
    genuine_decrypts(tc, ctx, kind)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("tc", VECTORS)
def test_wrong_group(tc, kind):
    ctx = new_ctx(tc)
    message = vector_private(tc, kind)
    with pytest.raises(ValidationError):
        ctx.unprotect_private(
            dataclasses.replace(message, group_id=b"another group"), is_member=members
        )
    genuine_decrypts(tc, ctx, kind)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("tc", VECTORS)
def test_replayed_generation(tc, kind):
    sender, receiver = new_ctx(tc), new_ctx(tc)
    first = sender.protect_private(sign_own(tc, kind, WireFormat.PRIVATE_MESSAGE), os.urandom)
    second_content = sign_own(tc, kind, WireFormat.PRIVATE_MESSAGE)
    second = sender.protect_private(second_content, os.urandom)
    receiver.unprotect_private(first, is_member=members)
    with pytest.raises(GenerationConsumedError) as info:
        receiver.unprotect_private(first, is_member=members)
    assert isinstance(info.value, DecryptionError)
    got = receiver.unprotect_private(second, is_member=members)
    assert_eq(f"{kind}: message after a replay", got, second_content)


@pytest.mark.parametrize("tc", VECTORS)
def test_generation_too_far(tc):
    ctx = new_ctx(tc)
    far = ctx.secret_tree.config.maximum_forward_distance + 1
    plaintext = PrivateMessageContent(b"hello", FramedContentAuthData(b"sig")).to_bytes()
    message = manual_private_message(tc, plaintext, ContentType.APPLICATION, generation=far)
    with pytest.raises(GenerationTooFarError):
        ctx.unprotect_private(message, is_member=members)
    genuine_decrypts(tc, ctx, "application")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("tc", VECTORS)
def test_bad_signature_does_not_consume_the_key(tc, kind):
    """An insider forging leaf 1's generation 0 cannot burn the genuine message's key."""
    suite = suite_of(tc)
    forger_key, _ = suite.generate_signature_key_pair(os.urandom)
    forged_content = sign_own(tc, kind, WireFormat.PRIVATE_MESSAGE, signature_priv=forger_key)
    forged = new_ctx(tc).protect_private(forged_content, os.urandom)
    ctx = new_ctx(tc)
    with pytest.raises(AuthenticationError):
        ctx.unprotect_private(forged, is_member=members, signature_key_of=signature_key(tc))
    genuine_decrypts(tc, ctx, kind)


@pytest.mark.parametrize("tc", VECTORS)
def test_sender_not_a_member(tc):
    ctx = new_ctx(tc)
    message = vector_private(tc, "application")
    with pytest.raises(ValidationError):
        ctx.unprotect_private(message, is_member=lambda leaf: leaf != SENDER)
    # A leaf index outside the tree, with valid sender data encryption.
    plaintext = PrivateMessageContent(b"hi", FramedContentAuthData(b"sig")).to_bytes()
    outside = manual_private_message(tc, plaintext, ContentType.APPLICATION, leaf=N_LEAVES)
    with pytest.raises(ValidationError):
        ctx.unprotect_private(outside, is_member=lambda leaf: True)
    genuine_decrypts(tc, ctx, "application")


@pytest.mark.parametrize("tc", VECTORS)
def test_non_zero_padding(tc):
    """RFC 9420 §6.3.1: a non-zero padding byte makes the message malformed."""
    ctx = new_ctx(tc)
    content = sign_own(tc, "application", WireFormat.PRIVATE_MESSAGE)
    good = PrivateMessageContent(content.content.content, content.auth, 8).to_bytes()
    bad = good[:-3] + b"\x01" + good[-2:]
    with pytest.raises(DecodeError):
        ctx.unprotect_private(
            manual_private_message(tc, bad, ContentType.APPLICATION), is_member=members
        )
    # A plaintext cut short inside the content is malformed, too.
    with pytest.raises(DecodeError):
        ctx.unprotect_private(
            manual_private_message(tc, good[:5], ContentType.APPLICATION), is_member=members
        )
    got = ctx.unprotect_private(
        manual_private_message(tc, good, ContentType.APPLICATION), is_member=members
    )
    assert_eq("content with valid padding", got, content)


@pytest.mark.parametrize("tc", VECTORS)
def test_protect_private_usage_errors(tc):
    ctx = new_ctx(tc)
    public = sign_own(tc, "application", WireFormat.PUBLIC_MESSAGE)
    with pytest.raises(UsageError):
        ctx.protect_private(public, os.urandom)
    content = sign_own(tc, "application", WireFormat.PRIVATE_MESSAGE)
    with pytest.raises(UsageError):
        ctx.protect_private(content, lambda n: b"\x00")
    other_epoch = dataclasses.replace(
        content, content=dataclasses.replace(content.content, epoch=tc["epoch"] + 1)
    )
    with pytest.raises(UsageError):
        ctx.protect_private(other_epoch, os.urandom)


# -- negative tests: PublicMessage --------------------------------------------------


@pytest.mark.parametrize("kind", HANDSHAKE_KINDS)
@pytest.mark.parametrize("tc", VECTORS)
def test_bad_membership_tag(tc, kind):
    ctx = new_ctx(tc)
    message = MLSMessage.from_bytes(h(tc[f"{kind}_pub"])).public_message
    assert message.membership_tag is not None
    bad = dataclasses.replace(message, membership_tag=flip(message.membership_tag, 0))
    with pytest.raises(AuthenticationError):
        ctx.unprotect_public(bad)
    short = dataclasses.replace(message, membership_tag=message.membership_tag[:-1])
    with pytest.raises(AuthenticationError):
        ctx.unprotect_public(short)
    # Tampering with the content breaks the tag.
    changed = dataclasses.replace(
        message, content=dataclasses.replace(message.content, authenticated_data=b"x")
    )
    with pytest.raises(AuthenticationError):
        ctx.unprotect_public(changed)
    # Another membership key.
    other = dataclasses.replace(ctx, membership_key=bytes(ctx.suite.hash_len))
    with pytest.raises(AuthenticationError):
        other.unprotect_public(message)
    ctx.unprotect_public(message)


@pytest.mark.parametrize("kind", HANDSHAKE_KINDS)
@pytest.mark.parametrize("tc", VECTORS)
def test_missing_or_extra_membership_tag(tc, kind):
    wire = h(tc[f"{kind}_pub"])
    tag_len = new_ctx(tc).suite.hash_len
    # A member's message without its tag is truncated.
    with pytest.raises(DecodeError):
        MLSMessage.from_bytes(wire[: -(tag_len + 1)])
    # A non-member's message with a tag has trailing bytes.
    message = MLSMessage.from_bytes(wire).public_message
    external = PublicMessage(
        dataclasses.replace(message.content, sender=Sender.new_member_proposal()), message.auth
    )
    with_tag = MLSMessage(external).to_bytes() + encode_varint(tag_len) + bytes(tag_len)
    with pytest.raises(DecodeError):
        MLSMessage.from_bytes(with_tag)


@pytest.mark.parametrize("kind", HANDSHAKE_KINDS)
@pytest.mark.parametrize("tc", VECTORS)
def test_public_wrong_epoch_or_group(tc, kind):
    ctx = new_ctx(tc)
    message = MLSMessage.from_bytes(h(tc[f"{kind}_pub"])).public_message
    with pytest.raises(EpochError):
        ctx.unprotect_public(
            dataclasses.replace(
                message, content=dataclasses.replace(message.content, epoch=tc["epoch"] + 1)
            )
        )
    with pytest.raises(ValidationError):
        ctx.unprotect_public(
            dataclasses.replace(
                message, content=dataclasses.replace(message.content, group_id=b"other")
            )
        )


@pytest.mark.parametrize("tc", VECTORS)
def test_public_application_rejected(tc):
    ctx = new_ctx(tc)
    content = sign_own(tc, "application", WireFormat.PUBLIC_MESSAGE)
    tag = ctx.suite.mac(
        ctx.membership_key,
        framed_content_tbs_bytes(WireFormat.PUBLIC_MESSAGE, content.content, ctx.group_context)
        + content.auth.to_bytes(),
    )
    message = PublicMessage(content.content, content.auth, tag)
    with pytest.raises(ValidationError):
        ctx.unprotect_public(message)


@pytest.mark.parametrize("tc", VECTORS)
def test_public_sender_type_rules(tc):
    """RFC 9420 §6.1: external senders propose; new members add or commit."""
    ctx = new_ctx(tc)
    suite = ctx.suite
    priv = h(tc["signature_priv"])

    def public(sender: Sender, body: Content) -> PublicMessage:
        framed = FramedContent(h(tc["group_id"]), tc["epoch"], sender, b"", body)
        tag = os.urandom(suite.hash_len) if isinstance(body, Commit) else None
        content = authenticate(
            suite, priv, WireFormat.PUBLIC_MESSAGE, framed, ctx.group_context, tag
        )
        return ctx.protect_public(content)

    remove = Proposal(Remove(0))
    commit = raw_content(tc, "commit")
    accepted = ctx.unprotect_public(public(Sender.external(0), remove))
    verify_content_signature(suite, accepted, h(tc["signature_pub"]), None)
    with pytest.raises(ValidationError):
        ctx.unprotect_public(public(Sender.external(0), commit))
    with pytest.raises(ValidationError):
        ctx.unprotect_public(public(Sender.new_member_proposal(), remove))
    with pytest.raises(ValidationError):
        ctx.unprotect_public(public(Sender.new_member_commit(), remove))
    accepted = ctx.unprotect_public(public(Sender.new_member_commit(), commit))
    verify_content_signature(suite, accepted, h(tc["signature_pub"]), ctx.group_context)


@pytest.mark.parametrize("kind", HANDSHAKE_KINDS)
@pytest.mark.parametrize("tc", VECTORS)
def test_bad_signature(tc, kind):
    ctx = new_ctx(tc)
    content = ctx.unprotect_public(MLSMessage.from_bytes(h(tc[f"{kind}_pub"])).public_message)
    suite = ctx.suite
    _, other_pub = suite.generate_signature_key_pair(os.urandom)
    with pytest.raises(AuthenticationError):
        ctx.verify_signature(content, other_pub)
    # The signature covers the wire format (RFC 9420 §6.1).
    as_private = dataclasses.replace(content, wire_format=WireFormat.PRIVATE_MESSAGE)
    with pytest.raises(AuthenticationError):
        ctx.verify_signature(as_private, h(tc["signature_pub"]))
    # ... and the GroupContext.
    with pytest.raises(AuthenticationError):
        verify_content_signature(suite, content, h(tc["signature_pub"]), group_context(tc, epoch=0))
    with pytest.raises(AuthenticationError):
        ctx.verify_signature(content, b"not a key")
    ctx.verify_signature(content, h(tc["signature_pub"]))


def test_context_usage_errors():
    tc = VECTORS[0].values[0]
    suite = suite_of(tc)
    tree = SecretTree(suite, h(tc["encryption_secret"]), N_LEAVES)
    gc = group_context(tc)
    with pytest.raises(UsageError):
        FramingContext(suite, gc, b"short", h(tc["sender_data_secret"]), tree)
    with pytest.raises(UsageError):
        FramingContext(suite, gc, h(tc["membership_key"]), h(tc["sender_data_secret"]), tree, -1)
    with pytest.raises(UsageError):
        FramingContext(
            get_cipher_suite(3), gc, h(tc["membership_key"]), h(tc["sender_data_secret"]), tree
        )
