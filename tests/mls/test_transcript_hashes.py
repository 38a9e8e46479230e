"""Transcript hashes and confirmation tags against ``transcript-hashes.json``.

RFC 9420 §8.2 (transcript hashes), §6.1 (confirmation tag) and §11 (the
initial values of a new group). Verification as in test-vectors.md,
"Transcript Hashes".
"""

from __future__ import annotations

import pytest

from messenger.mls.ciphersuite import PQ_CIPHER_SUITES, get_cipher_suite
from messenger.mls.content import (
    AuthenticatedContent,
    ContentType,
    FramedContent,
    FramedContentAuthData,
    InterimTranscriptHashInput,
    Sender,
    WireFormat,
)
from messenger.mls.errors import AuthenticationError, UsageError
from messenger.mls.transcript import (
    TranscriptHashes,
    confirmation_tag,
    confirmed_transcript_hash,
    interim_transcript_hash,
    verify_confirmation_tag,
)

from .vectors import assert_eq, cases, h

VECTORS = cases("transcript-hashes")


@pytest.mark.parametrize("tc", VECTORS)
def test_transcript_hashes_vector(tc):
    suite = get_cipher_suite(tc["cipher_suite"])
    content = AuthenticatedContent.from_bytes(h(tc["authenticated_content"]))
    confirmation_key = h(tc["confirmation_key"])
    interim_before = h(tc["interim_transcript_hash_before"])
    confirmed_after = h(tc["confirmed_transcript_hash_after"])
    interim_after = h(tc["interim_transcript_hash_after"])

    assert_eq("authenticated_content.content_type", content.content_type, ContentType.COMMIT)
    tag = content.auth.confirmation_tag
    assert tag is not None

    # The three steps of RFC 9420 §8.2 / §6.1, in the order a receiver takes them.
    confirmed = confirmed_transcript_hash(suite, interim_before, content)
    assert_eq("confirmed_transcript_hash_after", confirmed, confirmed_after)
    assert_eq("confirmation_tag", confirmation_tag(suite, confirmation_key, confirmed), tag)
    verify_confirmation_tag(suite, confirmation_key, confirmed_after, tag)
    assert_eq(
        "interim_transcript_hash_after",
        interim_transcript_hash(suite, confirmed, tag),
        interim_after,
    )

    # The committer's route: from ConfirmedTranscriptHashInput, before the tag exists.
    hash_input = content.confirmed_transcript_hash_input()
    assert_eq(
        "confirmed_transcript_hash_after (from ConfirmedTranscriptHashInput)",
        confirmed_transcript_hash(suite, interim_before, hash_input),
        confirmed_after,
    )

    # The same through TranscriptHashes.
    before = TranscriptHashes(confirmed=b"unused", interim=interim_before)
    assert_eq("TranscriptHashes.next_confirmed", before.next_confirmed(suite, content), confirmed)
    after = before.advance(suite, content)
    assert_eq("TranscriptHashes.advance().confirmed", after.confirmed, confirmed_after)
    assert_eq("TranscriptHashes.advance().interim", after.interim, interim_after)


@pytest.mark.parametrize("tc", VECTORS)
def test_interim_hash_matches_struct_encoding(tc):
    """The inline encoding of InterimTranscriptHashInput matches the struct's."""
    suite = get_cipher_suite(tc["cipher_suite"])
    content = AuthenticatedContent.from_bytes(h(tc["authenticated_content"]))
    confirmed = h(tc["confirmed_transcript_hash_after"])
    hash_input = content.interim_transcript_hash_input()
    assert isinstance(hash_input, InterimTranscriptHashInput)
    assert_eq(
        "interim_transcript_hash_after (struct encoding)",
        suite.hash(confirmed + hash_input.to_bytes()),
        h(tc["interim_transcript_hash_after"]),
    )


@pytest.mark.parametrize("tc", VECTORS)
def test_confirmation_tag_rejects_tampering(tc):
    suite = get_cipher_suite(tc["cipher_suite"])
    content = AuthenticatedContent.from_bytes(h(tc["authenticated_content"]))
    key = h(tc["confirmation_key"])
    confirmed = h(tc["confirmed_transcript_hash_after"])
    tag = content.auth.confirmation_tag
    assert tag is not None

    bad_tag = bytes([tag[0] ^ 1]) + tag[1:]
    with pytest.raises(AuthenticationError):
        verify_confirmation_tag(suite, key, confirmed, bad_tag)
    with pytest.raises(AuthenticationError):
        verify_confirmation_tag(suite, key, confirmed, tag[:-1])
    with pytest.raises(AuthenticationError):
        verify_confirmation_tag(suite, bytes(len(key)), confirmed, tag)
    with pytest.raises(AuthenticationError):
        verify_confirmation_tag(suite, key, bytes(len(confirmed)), tag)

    # A changed commit gives another confirmed hash, so the tag no longer fits.
    interim_before = h(tc["interim_transcript_hash_before"])
    other = AuthenticatedContent(
        WireFormat.PRIVATE_MESSAGE
        if content.wire_format == WireFormat.PUBLIC_MESSAGE
        else WireFormat.PUBLIC_MESSAGE,
        content.content,
        content.auth,
    )
    with pytest.raises(AuthenticationError):
        verify_confirmation_tag(
            suite, key, confirmed_transcript_hash(suite, interim_before, other), tag
        )


@pytest.mark.parametrize("suite_id", [*range(1, 8), *PQ_CIPHER_SUITES], ids=lambda s: f"suite-{s}")
def test_new_group_initial_hashes(suite_id):
    """RFC 9420 §11: confirmed = "", interim from a tag over the empty hash."""
    suite = get_cipher_suite(suite_id)
    confirmation_key = bytes(range(suite.hash_len))
    hashes = TranscriptHashes.for_new_group(suite, confirmation_key)

    tag = suite.mac(confirmation_key, b"")
    assert_eq("confirmed_transcript_hash_[0]", hashes.confirmed, b"")
    assert_eq(
        "interim_transcript_hash_[0]",
        hashes.interim,
        suite.hash(InterimTranscriptHashInput(tag).to_bytes()),
    )
    assert_eq("hash length", len(hashes.interim), suite.hash_len)

    joined = TranscriptHashes.from_group_info(suite, b"", tag)
    assert_eq("TranscriptHashes.from_group_info", joined, hashes)


def test_non_commit_is_a_usage_error():
    suite = get_cipher_suite(1)
    proposal_like = AuthenticatedContent(
        WireFormat.PUBLIC_MESSAGE,
        FramedContent(b"group", 0, Sender.member(0), b"", b"application data"),
        FramedContentAuthData(b"signature"),
    )
    with pytest.raises(UsageError):
        confirmed_transcript_hash(suite, b"", proposal_like)
    with pytest.raises(UsageError):
        TranscriptHashes(b"", b"").advance(suite, proposal_like)
