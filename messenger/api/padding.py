"""Every MLS message travels and is stored padded to a bucket size (docs/metadata.md §4).

MLS pads a PrivateMessage's plaintext (RFC 9420 §6.3.1) but leaves a
Welcome, a PublicMessage and a GroupInfo their exact size, and the size of
a Welcome or a GroupInfo grows with the group. So the API wraps every MLS
message it carries in an envelope of a bucket size::

    0xFF 0x01              magic: no MLSMessage starts with 0xFF (its version is 0x0001)
    uint32 length          of the message, big-endian
    message                the MLSMessage bytes
    zeros                  up to :func:`bucket` (6 + length)

Buckets (:func:`bucket`): 256 bytes at least, then powers of two up to
64 KiB, then Padmé sizes (:func:`messenger.api.blobs.padme`, at most 12 %
larger). A text message is 256 or 512 bytes on the wire and in the
database whatever its length; a Welcome shows its group's size only to a
power of two. The envelope must be the canonical one (exact bucket, zero
padding), so a client cannot leak a size on purpose or by mistake, and an
old client that sends bare MLS bytes gets ``outdated_client``.
"""

from __future__ import annotations

from typing import Final

from .blobs import padme

__all__ = [
    "ENVELOPE_OVERHEAD",
    "MIN_BUCKET",
    "PaddingError",
    "bucket",
    "is_bucket",
    "pad",
    "padded_length",
    "unpad",
]

#: The smallest envelope.
MIN_BUCKET: Final = 256
#: Up to here buckets are powers of two; above, Padmé sizes.
POWER_OF_TWO_LIMIT: Final = 64 << 10
_MAGIC: Final = b"\xff\x01"
#: Magic and length.
ENVELOPE_OVERHEAD: Final = 6
#: What every MLSMessage starts with (``ProtocolVersion mls10 = 1``, RFC 9420 §6).
_MLS10: Final = b"\x00\x01"


class PaddingError(ValueError):
    """Not a canonical envelope; ``outdated`` if it is a bare MLSMessage (an old client)."""

    def __init__(self, message: str, *, outdated: bool = False) -> None:
        super().__init__(message)
        self.outdated = outdated


def bucket(length: int) -> int:
    """The bucket size for ``length`` bytes (envelope included): the smallest >= it."""
    if length < 0:
        raise ValueError("a length is not negative")
    if length <= MIN_BUCKET:
        return MIN_BUCKET
    if length <= POWER_OF_TWO_LIMIT:
        return 1 << (length - 1).bit_length()
    return padme(length)


def is_bucket(length: int) -> bool:
    """Whether ``length`` is a bucket size."""
    return length >= 0 and bucket(length) == length


def padded_length(message_length: int) -> int:
    """The envelope's size for a message of ``message_length`` bytes."""
    return bucket(ENVELOPE_OVERHEAD + message_length)


def pad(message: bytes) -> bytes:
    """``message`` in its canonical envelope."""
    size = padded_length(len(message))
    head = _MAGIC + len(message).to_bytes(4, "big")
    return b"".join((head, message, bytes(size - ENVELOPE_OVERHEAD - len(message))))


def unpad(data: bytes) -> bytes:
    """The message inside a canonical envelope; :class:`PaddingError` otherwise."""
    if data[:2] == _MLS10:
        raise PaddingError("a bare MLS message: messages must be padded", outdated=True)
    if len(data) < ENVELOPE_OVERHEAD or data[:2] != _MAGIC:
        raise PaddingError("not a padded message")
    length = int.from_bytes(data[2:6], "big")
    end = ENVELOPE_OVERHEAD + length
    if length == 0 or end > len(data):
        raise PaddingError("the padded message's length is wrong")
    if len(data) != bucket(end):
        raise PaddingError("the padding is not the canonical bucket size")
    if data.count(0, end) != len(data) - end:
        raise PaddingError("the padding is not zero")
    return data[ENVELOPE_OVERHEAD:end]
