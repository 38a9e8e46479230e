"""The error hierarchy of the MLS core.

One base, :class:`MLSError`. Below it, the peer's fault is kept apart from
the caller's (architecture guide, convention 5):

* :class:`InvalidMessageError` -- bytes or values that came from someone else
  are malformed, forged, replayed or otherwise unacceptable. The group state
  is left untouched and the caller may carry on.
* :class:`UsageError` -- the caller asked for something that the API does not
  allow (wrong state, wrong argument). This is a bug in the caller.

Any other exception escaping ``messenger.mls`` is a bug in this package.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "DecodeError",
    "DecryptionError",
    "EpochError",
    "InvalidMessageError",
    "MLSError",
    "UsageError",
    "ValidationError",
]


class MLSError(Exception):
    """Base of every error raised on purpose by ``messenger.mls``."""


class InvalidMessageError(MLSError):
    """Input from a peer (or the network) is not acceptable."""


class DecodeError(InvalidMessageError):
    """Bytes do not decode as the expected structure (RFC 9420 §2.1).

    Raised for truncation, trailing bytes, non-minimal variable-length
    integers, unknown enum values where the RFC forbids them, and lengths
    that exceed the input.
    """


class AuthenticationError(InvalidMessageError):
    """A signature, membership tag or confirmation tag did not verify."""


class DecryptionError(InvalidMessageError):
    """An AEAD or HPKE ciphertext could not be opened."""


class EpochError(InvalidMessageError):
    """A message is for an epoch that this member cannot process."""


class ValidationError(InvalidMessageError):
    """A well-formed value breaks a validity rule of RFC 9420."""


class UsageError(MLSError):
    """The caller used the API in a way it does not allow."""
