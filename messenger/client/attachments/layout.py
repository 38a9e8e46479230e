"""The sizes of an attachment's encrypted form (docs/attachments.md §2).

A file of ``size`` bytes is cut into :func:`chunk_count` chunks of at most
:data:`CHUNK_SIZE` bytes (one empty chunk for an empty file; no empty chunk
after an exact multiple); each sealed chunk carries a :data:`TAG_SIZE`
tag; the blob is padded to the Padmé size of the sealed chunks. Kept apart
from :mod:`.crypto` so that views can reason about sizes without loading
the cipher.
"""

from __future__ import annotations

from typing import Final

from messenger.api.blobs import padme

__all__ = ["CHUNK_SIZE", "TAG_SIZE", "chunk_count", "sealed_size", "stored_size"]

#: Plaintext bytes per chunk.
CHUNK_SIZE: Final = 1 << 20
#: The AES-GCM tag that each sealed chunk carries.
TAG_SIZE: Final = 16


def chunk_count(size: int) -> int:
    """How many chunks a file of ``size`` bytes makes (an empty file: one empty chunk)."""
    if size < 0:
        raise ValueError("a size is not negative")
    return max(1, -(-size // CHUNK_SIZE))


def sealed_size(size: int) -> int:
    """The bytes of the sealed chunks of a file of ``size`` bytes."""
    return size + TAG_SIZE * chunk_count(size)


def stored_size(size: int) -> int:
    """The size of the blob (sealed chunks and padding) of a file of ``size`` bytes."""
    return padme(sealed_size(size))
