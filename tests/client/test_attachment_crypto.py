"""The chunked AES-256-GCM stream of attachments (docs/attachments.md §2), and its attacks.

Every defect of a blob -- a chunk reordered, cut, added or changed, a
wrong digest, padding that is not zero, a blob of the wrong size -- is an
AttachmentCorruptError, both while downloading (BlobVerifier) and when
decrypting (decrypt_to).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from messenger.api.blobs import is_padme, padme
from messenger.client import AttachmentCorruptError
from messenger.client.attachments.crypto import (
    AAD,
    CHUNK_SIZE,
    TAG_SIZE,
    BlobVerifier,
    EncryptedFile,
    chunk_count,
    decrypt_to,
    encrypt_file,
    sealed_size,
    stored_size,
    verify_file,
)

SIZES = [0, 1, 1000, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, 3 * CHUNK_SIZE + 7]


def encrypted(tmp_path: Path, data: bytes, name: str = "blob") -> tuple[Path, EncryptedFile]:
    path = tmp_path / name
    return path, encrypt_file(data, path)


def decrypted(path: Path, info: EncryptedFile) -> bytes:
    out = io.BytesIO()
    decrypt_to(path, info.key, info.size, out)
    return out.getvalue()


def verified(blob: bytes, info: EncryptedFile, part: int = 100_003) -> None:
    verifier = BlobVerifier(info.key, info.size, info.digest)
    for start in range(0, len(blob), part):
        verifier.feed(blob[start : start + part])
    verifier.finish()


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_sizes_and_layout(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path, info = encrypted(tmp_path, data)
    blob = path.read_bytes()
    assert info.size == size
    assert len(blob) == info.stored_size == stored_size(size) == padme(sealed_size(size))
    assert is_padme(len(blob))
    assert sealed_size(size) == size + TAG_SIZE * chunk_count(size)
    assert chunk_count(size) == max(1, -(-size // CHUNK_SIZE))  # exact multiples: no empty chunk
    assert hashlib.sha256(blob).digest() == info.digest
    assert decrypted(path, info) == data
    verified(blob, info)
    verified(blob, info, part=len(blob) or 1)  # one part


def test_file_source_is_streamed_and_private(tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 5)
    source = tmp_path / "plain"
    source.write_bytes(data)
    path = tmp_path / "blob"
    info = encrypt_file(source, path)
    assert decrypted(path, info) == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert data[:64] not in path.read_bytes()
    assert "key" not in repr(info) and info.key.hex() not in repr(info)


def test_fresh_key_per_file(tmp_path: Path) -> None:
    _, one = encrypted(tmp_path, b"same", "a")
    _, two = encrypted(tmp_path, b"same", "b")
    assert one.key != two.key and one.digest != two.digest


def test_existing_destination_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"keep")
    with pytest.raises(FileExistsError):
        encrypt_file(b"data", path)
    assert path.read_bytes() == b"keep"


def _chunks(blob: bytes, size: int) -> list[bytes]:
    total = sealed_size(size)
    step = CHUNK_SIZE + TAG_SIZE
    return [blob[i : min(i + step, total)] for i in range(0, total, step)]


def _assert_refused(tmp_path: Path, blob: bytes, info: EncryptedFile) -> None:
    """Both the download check and the decryption refuse ``blob``."""
    with pytest.raises(AttachmentCorruptError) as caught:
        verified(blob, info)
    assert "damaged" in caught.value.user_message
    bad = tmp_path / "bad"
    bad.write_bytes(blob)
    with pytest.raises(AttachmentCorruptError):
        decrypted(bad, EncryptedFile(info.key, hashlib.sha256(blob).digest(), info.size, 0))


def test_reordered_chunks_fail(tmp_path: Path) -> None:
    size = 3 * CHUNK_SIZE
    path, info = encrypted(tmp_path, os.urandom(size))
    blob = path.read_bytes()
    first, second, third = _chunks(blob, size)
    padding = blob[sealed_size(size) :]
    _assert_refused(tmp_path, second + first + third + padding, info)


def test_truncated_blob_fails(tmp_path: Path) -> None:
    size = 2 * CHUNK_SIZE + 10
    path, info = encrypted(tmp_path, os.urandom(size))
    blob = path.read_bytes()
    with pytest.raises(AttachmentCorruptError):
        verified(blob[:-1], info)
    # Cut after a whole chunk, and padded again: no chunk carries the final flag.
    first, second, _ = _chunks(blob, size)
    cut = first + second
    _assert_refused(tmp_path, cut + bytes(len(blob) - len(cut)), info)


def test_final_chunk_moved_earlier_fails(tmp_path: Path) -> None:
    """A blob made of a real file's first chunk sealed as final does not pass for the file."""
    key = os.urandom(32)
    aead = AESGCM(key)
    size = 2 * CHUNK_SIZE
    data = os.urandom(size)
    fake_final = aead.encrypt(bytes(11) + b"\x01", data[:CHUNK_SIZE], AAD)
    second = aead.encrypt((1).to_bytes(11, "big") + b"\x01", data[CHUNK_SIZE:], AAD)
    blob = fake_final + second
    blob += bytes(padme(len(blob)) - len(blob))
    info = EncryptedFile(key, hashlib.sha256(blob).digest(), size, len(blob))
    _assert_refused(tmp_path, blob, info)


def test_extended_blob_fails(tmp_path: Path) -> None:
    path, info = encrypted(tmp_path, os.urandom(5000))
    blob = path.read_bytes()
    with pytest.raises(AttachmentCorruptError):
        verified(blob + b"\x00", info)
    longer = tmp_path / "longer"
    longer.write_bytes(blob + bytes(padme(len(blob) + 1) - len(blob)))
    with pytest.raises(AttachmentCorruptError):
        decrypted(longer, info)


@pytest.mark.parametrize("where", [0, 17, CHUNK_SIZE + 3, CHUNK_SIZE + TAG_SIZE + 1])
def test_bit_flip_in_any_chunk_fails(tmp_path: Path, where: int) -> None:
    path, info = encrypted(tmp_path, os.urandom(CHUNK_SIZE + 100))
    blob = bytearray(path.read_bytes())
    blob[where] ^= 0x01
    _assert_refused(tmp_path, bytes(blob), info)


def test_wrong_digest_fails(tmp_path: Path) -> None:
    path, info = encrypted(tmp_path, b"hello")
    blob = path.read_bytes()
    wrong = EncryptedFile(info.key, bytes(32), info.size, info.stored_size)
    verifier = BlobVerifier(wrong.key, wrong.size, wrong.digest)
    verifier.feed(blob)  # every chunk opens...
    with pytest.raises(AttachmentCorruptError):
        verifier.finish()  # ...but it is not the blob the message named


def test_non_zero_padding_fails(tmp_path: Path) -> None:
    size = 70_000  # padme leaves room for padding here
    path, info = encrypted(tmp_path, os.urandom(size))
    blob = bytearray(path.read_bytes())
    assert len(blob) > sealed_size(size)
    blob[-1] = 1
    _assert_refused(tmp_path, bytes(blob), info)


def test_stored_size_not_matching_fails(tmp_path: Path) -> None:
    path, info = encrypted(tmp_path, os.urandom(3000))
    blob = path.read_bytes()
    # The message claims another size: the chunk layout and blob size differ.
    for claimed in (2999, 3001, 0):
        other = EncryptedFile(info.key, info.digest, claimed, 0)
        with pytest.raises(AttachmentCorruptError):
            verified(blob, other)
        with pytest.raises(AttachmentCorruptError):
            decrypted(path, other)


def test_wrong_key_fails(tmp_path: Path) -> None:
    path, info = encrypted(tmp_path, b"secret")
    other = EncryptedFile(os.urandom(32), info.digest, info.size, info.stored_size)
    _assert_refused(tmp_path, path.read_bytes(), other)
    with pytest.raises(AttachmentCorruptError):
        BlobVerifier(b"short", 1, info.digest)


def test_verify_file_resumes_a_partial_download(tmp_path: Path) -> None:
    size = 2 * CHUNK_SIZE + 99
    path, info = encrypted(tmp_path, os.urandom(size))
    blob = path.read_bytes()
    partial = tmp_path / "partial"
    partial.write_bytes(blob[: CHUNK_SIZE + 12345])
    verifier = verify_file(partial, info.key, info.size, info.digest)
    assert verifier.received == CHUNK_SIZE + 12345
    verifier.feed(blob[verifier.received :])
    verifier.finish()
    partial.write_bytes(blob[:100] + b"\xff" + blob[101 : CHUNK_SIZE + 200])
    with pytest.raises(AttachmentCorruptError):
        verify_file(partial, info.key, info.size, info.digest)
