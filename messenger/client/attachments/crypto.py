"""The encrypted form of an attachment: a chunked AES-256-GCM stream (docs/attachments.md §2).

The key never leaves the MLS application message that describes the file
(content kind ``file``, RFC 9420 §6.3): the server stores only the blob
made here. A file is cut into chunks of :data:`CHUNK_SIZE` bytes of
plaintext (the last may be shorter, and is empty for an empty file);
chunk ``i`` is sealed with the nonce ``i`` (11 bytes, big-endian) ‖
``final`` (one byte, 1 on the last chunk only) and the associated data
:data:`AAD`. The sealed chunks, ``size + 16 * chunks`` bytes, are padded
with zeros to the Padmé size (:func:`messenger.api.blobs.padme`), and
``digest`` is the SHA-256 of the padded blob.

A reordered chunk fails (its index is in the nonce), a truncated blob fails
(no chunk has the final flag), an extended one fails (its size is not the
one the message gives). Every defect is an :class:`AttachmentCorruptError`.
Memory stays bounded by a few chunks: :func:`encrypt_file` and
:func:`decrypt_to` stream from file to file, and :class:`BlobVerifier`
checks a download part by part as it arrives.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from messenger.api.blobs import padme

from ..errors import AttachmentCorruptError
from .layout import CHUNK_SIZE, TAG_SIZE, chunk_count, sealed_size, stored_size

__all__ = [
    "AAD",
    "CHUNK_SIZE",
    "KEY_SIZE",
    "TAG_SIZE",
    "BlobVerifier",
    "EncryptedFile",
    "chunk_count",
    "decrypt_to",
    "encrypt_file",
    "sealed_size",
    "stored_size",
    "verify_file",
]

#: The file key: AES-256.
KEY_SIZE: Final = 32
#: The associated data of every chunk.
AAD: Final = b"messenger-attachment-v1"
_SEALED_CHUNK: Final = CHUNK_SIZE + TAG_SIZE
_INDEX_BYTES: Final = 11
#: How much of the zero padding is compared at a time.
_ZEROS: Final = bytes(1 << 16)


def _nonce(index: int, final: bool) -> bytes:
    return index.to_bytes(_INDEX_BYTES, "big") + (b"\x01" if final else b"\x00")


def _corrupt(why: str) -> AttachmentCorruptError:
    return AttachmentCorruptError(f"attachment blob: {why}")


@dataclass(frozen=True, slots=True)
class EncryptedFile:
    """What the message says about an encrypted file (the key never in ``repr``)."""

    key: bytes = field(repr=False)
    digest: bytes
    size: int
    """The plaintext's size."""
    stored_size: int
    """The blob's size: sealed chunks and zero padding."""


def _plain_chunks(source: Path | bytes) -> Iterator[tuple[bytes, bool]]:
    """``(chunk, final)`` of ``source``, read a chunk ahead to know the last one."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        count = chunk_count(len(data))
        for i in range(count):
            yield data[i * CHUNK_SIZE : (i + 1) * CHUNK_SIZE], i == count - 1
        return
    with open(source, "rb") as f:
        current = f.read(CHUNK_SIZE)
        while True:
            following = f.read(CHUNK_SIZE) if len(current) == CHUNK_SIZE else b""
            if not following:
                yield current, True
                return
            yield current, False
            current = following


def _create_private(path: Path) -> BinaryIO:
    """A new file readable by its owner only (O_EXCL: never an existing one)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    return os.fdopen(os.open(path, flags, 0o600), "wb")


def encrypt_file(source: Path | bytes, destination: Path) -> EncryptedFile:
    """Encrypt ``source`` (a file, or the bytes of one) into the new file ``destination``.

    A fresh key from :mod:`secrets`; the blob is padded to its Padmé size.
    ``destination`` must not exist; it is removed again if anything fails.
    """
    key = secrets.token_bytes(KEY_SIZE)
    aead = AESGCM(key)
    digest = hashlib.sha256()
    size = 0
    written = 0
    out = _create_private(destination)  # raises FileExistsError before anything is touched
    try:
        with out:
            for index, (chunk, final) in enumerate(_plain_chunks(source)):
                sealed = aead.encrypt(_nonce(index, final), chunk, AAD)
                digest.update(sealed)
                out.write(sealed)
                size += len(chunk)
                written += len(sealed)
            total = padme(written)
            remaining = total - written
            while remaining:
                zeros = _ZEROS[: min(remaining, len(_ZEROS))]
                digest.update(zeros)
                out.write(zeros)
                remaining -= len(zeros)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        destination.unlink(missing_ok=True)
        raise
    return EncryptedFile(key, digest.digest(), size, total)


class BlobVerifier:
    """Checks a blob part by part as it arrives, in order (a download).

    :meth:`feed` takes the next bytes (any length) and raises
    :class:`AttachmentCorruptError` at the first defect: a chunk that does
    not open under its index and final flag, padding that is not zero, more
    bytes than the blob has. :meth:`finish` checks that all of it came and
    that the digest matches. The plaintext is not kept.
    """

    def __init__(self, key: bytes, size: int, digest: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise _corrupt("a file key is 32 bytes")
        self._aead = AESGCM(key)
        self._expected = digest
        self._hash = hashlib.sha256()
        self._chunks = chunk_count(size)
        self._sealed = sealed_size(size)
        self.total = padme(self._sealed)
        """The blob's size."""
        self.received = 0
        self._index = 0
        self._pending = bytearray()

    def _chunk_length(self, index: int) -> int:
        if index < self._chunks - 1:
            return _SEALED_CHUNK
        return self._sealed - (self._chunks - 1) * _SEALED_CHUNK

    def feed(self, data: bytes) -> None:
        if self.received + len(data) > self.total:
            raise _corrupt("longer than its size")
        self._hash.update(data)
        start = self.received
        self.received += len(data)
        view = memoryview(data)
        # The sealed chunks end at self._sealed; what follows is padding.
        chunk_part = max(0, min(len(data), self._sealed - start))
        if chunk_part:
            self._consume(view[:chunk_part])
        padding = view[chunk_part:]
        if padding and padding.tobytes().count(0) != len(padding):
            raise _corrupt("the padding is not zero")

    def _consume(self, view: memoryview) -> None:
        """Open every chunk completed by ``view``; keep the rest of one for the next part.

        Whole chunks are opened where they lie in the part (no copy); only a
        chunk split between two parts is gathered first.
        """
        while view:
            length = self._chunk_length(self._index)
            if self._pending:
                take = length - len(self._pending)
                self._pending += view[:take]
                view = view[take:]
                if len(self._pending) < length:
                    return
                self._open(self._pending)
                self._pending = bytearray()
            elif len(view) >= length:
                self._open(view[:length])
                view = view[length:]
            else:
                self._pending += view
                return

    def _open(self, sealed: memoryview | bytearray) -> None:
        final = self._index == self._chunks - 1
        try:
            self._aead.decrypt(_nonce(self._index, final), sealed, AAD)
        except InvalidTag:
            raise _corrupt(f"chunk {self._index} does not open") from None
        self._index += 1

    def finish(self) -> None:
        """Raise unless the whole blob came, every chunk opened and the digest matches."""
        if self.received != self.total or self._index != self._chunks:
            raise _corrupt("shorter than its size")
        if not hmac.compare_digest(self._hash.digest(), self._expected):
            raise _corrupt("the digest does not match")


def verify_file(path: Path, key: bytes, size: int, digest: bytes) -> BlobVerifier:
    """A verifier fed with the bytes already in ``path`` (a download resumed)."""
    verifier = BlobVerifier(key, size, digest)
    with open(path, "rb") as f:
        while block := f.read(CHUNK_SIZE):
            verifier.feed(block)
    return verifier


def decrypt_to(blob: Path, key: bytes, size: int, destination: BinaryIO) -> None:
    """Decrypt the verified blob ``blob`` of a file of ``size`` bytes into ``destination``.

    Each chunk is opened again (its tag, index and final flag), the blob's
    length and padding are checked; a defect raises :class:`AttachmentCorruptError`
    after some plaintext may have been written, so the caller writes to a
    temporary file and renames it only on success.
    """
    if len(key) != KEY_SIZE:
        raise _corrupt("a file key is 32 bytes")
    aead = AESGCM(key)
    chunks = chunk_count(size)
    sealed_total = sealed_size(size)
    with open(blob, "rb") as f:
        if os.fstat(f.fileno()).st_size != padme(sealed_total):
            raise _corrupt("its size does not match")
        for index in range(chunks):
            final = index == chunks - 1
            length = sealed_total - index * _SEALED_CHUNK if final else _SEALED_CHUNK
            sealed = f.read(length)
            if len(sealed) != length:
                raise _corrupt("shorter than its size")
            try:
                destination.write(aead.decrypt(_nonce(index, final), sealed, AAD))
            except InvalidTag:
                raise _corrupt(f"chunk {index} does not open") from None
        while block := f.read(len(_ZEROS)):
            if block.count(0) != len(block):
                raise _corrupt("the padding is not zero")
