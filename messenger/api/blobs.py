"""Constants and the size rule of the blob store (docs/attachments.md §3).

A blob is one encrypted attachment as its sender uploaded it. The server
stores only blobs whose size is a Padmé value (:func:`padme`; Nikitin et
al., "Reducing Metadata Leakage from Encrypted Files and Communication
with PURBs", PETS 2019): a Padmé size of about ``2**E`` bytes leaks about
``log2(E)`` bits instead of ``E``, and costs at most 12 % of padding. The
client pads every blob to such a size; the server refuses other sizes, so
no client leaks an exact size by mistake.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BLOB_ID_BYTES",
    "HEADER_BLOB_ACCESS",
    "HEADER_GROUP_TOKEN",
    "MAX_BLOB_PART_BYTES",
    "MAX_BLOB_SIZE",
    "OCTET_STREAM",
    "is_padme",
    "padme",
]

#: Length of a blob ID (random, chosen by the server).
BLOB_ID_BYTES: Final = 16
#: The largest part of one upload or download request.
MAX_BLOB_PART_BYTES: Final = 8 << 20
#: No server stores a blob larger than this, whatever its configuration.
MAX_BLOB_SIZE: Final = 1 << 40
#: The access capability (32 bytes, base64url) that the message carries; the
#: server keeps only its SHA-256 and answers ``not_found`` without it.
HEADER_BLOB_ACCESS: Final = "X-Messenger-Blob-Access"
#: The current send token of the blob's group (32 bytes, unpadded base64url):
#: the server reads the member set of a group sealed under its members' keys
#: only with it (docs/metadata.md §2), so a request that needs membership
#: (the last part of an upload, a download, ``status`` and ``fetched`` for a
#: recipient) carries it; not covered by the signature, as a body would be.
HEADER_GROUP_TOKEN: Final = "X-Messenger-Group-Token"  # noqa: S105 - a header name
#: The media type of blob parts, both ways.
OCTET_STREAM: Final = "application/octet-stream"


def padme(length: int) -> int:
    """The Padmé size of ``length`` bytes: the smallest allowed size >= ``length``."""
    if length < 0:
        raise ValueError("a length is not negative")
    if length < 2:
        return length
    exponent = length.bit_length() - 1  # floor(log2(length))
    size_bits = exponent.bit_length()  # floor(log2(exponent)) + 1
    mask = (1 << (exponent - size_bits)) - 1
    return (length + mask) & ~mask


def is_padme(length: int) -> bool:
    """Whether ``length`` is a Padmé size."""
    return length >= 0 and padme(length) == length
