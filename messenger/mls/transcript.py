"""Transcript hashes and confirmation tags (RFC 9420 §8.2, §6.1, §11).

Each Commit advances two running hashes (RFC 9420 §8.2)::

    confirmed_[n] = Hash(interim_[n-1] || ConfirmedTranscriptHashInput_[n])
    interim_[n]   = Hash(confirmed_[n] || InterimTranscriptHashInput_[n])

with the ``confirmation_tag`` of the Commit in between (RFC 9420 §6.1)::

    confirmation_tag = MAC(confirmation_key_[n], confirmed_[n])

The order matters: ``confirmed_[n]`` goes into the GroupContext of epoch
``n``, from which the key schedule derives ``confirmation_key_[n]``, which
makes the tag that ``interim_[n]`` covers. So this module offers the three
steps separately -- :func:`confirmed_transcript_hash`,
:func:`confirmation_tag` / :func:`verify_confirmation_tag` and
:func:`interim_transcript_hash` -- and :class:`TranscriptHashes` ties them
together for the common cases.

A new group (RFC 9420 §11) starts with an empty confirmed transcript hash and
computes its first interim transcript hash from a confirmation tag over that
empty hash: :meth:`TranscriptHashes.for_new_group`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from .ciphersuite import CipherSuite
from .codec import encode_varint, vl_bytes
from .content import AuthenticatedContent, ConfirmedTranscriptHashInput, ContentType
from .errors import AuthenticationError, UsageError

__all__ = [
    "TranscriptHashes",
    "confirmation_tag",
    "confirmed_transcript_hash",
    "confirmed_transcript_hash_from_parts",
    "interim_transcript_hash",
    "verify_confirmation_tag",
]


def confirmed_transcript_hash(
    suite: CipherSuite,
    interim_transcript_hash_before: bytes,
    commit: ConfirmedTranscriptHashInput | AuthenticatedContent,
) -> bytes:
    """``confirmed_transcript_hash_[n]`` after ``commit`` (RFC 9420 §8.2).

    ``commit`` is the Commit's ``ConfirmedTranscriptHashInput`` (what a
    committer has before it can compute its confirmation tag) or its whole
    ``AuthenticatedContent``. :class:`UsageError` if it is not a commit.
    """
    if isinstance(commit, AuthenticatedContent):
        if commit.content_type != ContentType.COMMIT:
            raise UsageError("the confirmed transcript hash covers commits only")
        commit = commit.confirmed_transcript_hash_input()
    return suite.hash(interim_transcript_hash_before + commit.to_bytes())


def confirmed_transcript_hash_from_parts(
    suite: CipherSuite,
    interim_transcript_hash_before: bytes,
    wire_format: bytes,
    content: bytes,
    signature: bytes,
) -> bytes:
    """:func:`confirmed_transcript_hash` from a Commit's encoded parts (RFC 9420 §8.2).

    ``ConfirmedTranscriptHashInput`` is ``wire_format || FramedContent ||
    signature<V>``: a committer that has encoded its (possibly large)
    FramedContent once for the signature passes the bytes here.
    """
    return suite.hash(interim_transcript_hash_before + wire_format + content + vl_bytes(signature))


def interim_transcript_hash(
    suite: CipherSuite, confirmed_transcript_hash: bytes, confirmation_tag: bytes
) -> bytes:
    """``interim_transcript_hash_[n]`` (RFC 9420 §8.2).

    ``InterimTranscriptHashInput`` is just ``MAC confirmation_tag`` (an
    ``opaque<V>``), encoded inline here.
    """
    return suite.hash(
        confirmed_transcript_hash + encode_varint(len(confirmation_tag)) + confirmation_tag
    )


def confirmation_tag(
    suite: CipherSuite, confirmation_key: bytes, confirmed_transcript_hash: bytes
) -> bytes:
    """``MAC(confirmation_key, confirmed_transcript_hash)`` (RFC 9420 §6.1)."""
    return suite.mac(confirmation_key, confirmed_transcript_hash)


def verify_confirmation_tag(
    suite: CipherSuite, confirmation_key: bytes, confirmed_transcript_hash: bytes, tag: bytes
) -> None:
    """Check a confirmation tag in constant time (RFC 9420 §6.1, §12.4.2).

    :class:`AuthenticationError` if it does not match.
    """
    expected = suite.mac(confirmation_key, confirmed_transcript_hash)
    if not hmac.compare_digest(expected, tag):
        raise AuthenticationError("confirmation_tag does not verify")


@dataclass(frozen=True, slots=True)
class TranscriptHashes:
    """The confirmed and interim transcript hashes of one epoch (RFC 9420 §8.2)."""

    confirmed: bytes
    interim: bytes

    @classmethod
    def for_new_group(cls, suite: CipherSuite, confirmation_key: bytes) -> TranscriptHashes:
        """The hashes of a new group's epoch 0 (RFC 9420 §11).

        The confirmed transcript hash is the empty string; the interim one
        covers a confirmation tag computed over it with epoch 0's
        ``confirmation_key``.
        """
        tag = confirmation_tag(suite, confirmation_key, b"")
        return cls(b"", interim_transcript_hash(suite, b"", tag))

    @classmethod
    def from_group_info(cls, suite: CipherSuite, confirmed: bytes, tag: bytes) -> TranscriptHashes:
        """The hashes of a joiner, from the GroupInfo's ``GroupContext`` and
        ``confirmation_tag`` (RFC 9420 §8.2, §12.4.3.1).

        The caller checks ``tag`` against the epoch's
        ``confirmation_key`` with :func:`verify_confirmation_tag`.
        """
        return cls(confirmed, interim_transcript_hash(suite, confirmed, tag))

    def next_confirmed(
        self, suite: CipherSuite, commit: ConfirmedTranscriptHashInput | AuthenticatedContent
    ) -> bytes:
        """The next epoch's confirmed transcript hash (RFC 9420 §8.2)."""
        return confirmed_transcript_hash(suite, self.interim, commit)

    def advance(self, suite: CipherSuite, commit: AuthenticatedContent) -> TranscriptHashes:
        """Both hashes after ``commit``, which carries its confirmation tag.

        This does not check the tag: a receiver first computes
        :meth:`next_confirmed`, derives the next epoch's ``confirmation_key``
        from a GroupContext holding it, checks the tag with
        :func:`verify_confirmation_tag`, and only then advances.
        """
        tag = commit.auth.confirmation_tag
        if tag is None:
            raise UsageError("the transcript hashes advance with commits only")
        confirmed = confirmed_transcript_hash(suite, self.interim, commit)
        return TranscriptHashes(confirmed, interim_transcript_hash(suite, confirmed, tag))
