"""Getting a file ready to send: its media type, its preview, its encrypted copy.

docs/attachments.md §2 and §4. Runs in a worker thread (encryption and
decoding an image take time): the media type is sniffed from the first
bytes and the name (:mod:`.media`), an image gets a thumbnail
(:mod:`.thumbnails`; an image that cannot be decoded safely is sent as a
plain file, without one), and the file is encrypted (:mod:`.crypto`) into a
new file of the profile's ``attachments/`` directory, which the upload
then reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import AttachmentError, ImageRejectedError
from .crypto import EncryptedFile, encrypt_file
from .files import attachment_file, attachments_dir, new_local_file
from .media import DEFAULT_MEDIA_TYPE, sniff_media_type
from .thumbnails import make_thumbnail

__all__ = ["PreparedFile", "prepare_file"]

#: Media types a thumbnail is made for.
_PREVIEWED = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"})


@dataclass(frozen=True, slots=True)
class PreparedFile:
    """An encrypted copy of a file to send, and what its message says about it."""

    local_file: str
    encrypted: EncryptedFile
    media_type: str
    width: int = 0
    height: int = 0
    thumbnail: bytes = field(default=b"", repr=False)


def _head(source: Path | bytes) -> bytes:
    if isinstance(source, bytes):
        return source[:64]
    with open(source, "rb") as f:
        return f.read(64)


def prepare_file(profile_dir: Path, source: Path | bytes, name: str) -> PreparedFile:
    """Sniff, preview and encrypt ``source`` (AttachmentError if it cannot be read)."""
    try:
        media_type = sniff_media_type(_head(source), name)
        width = height = 0
        thumbnail = b""
        if media_type in _PREVIEWED:
            try:
                preview = make_thumbnail(source)
                width, height, thumbnail = preview.width, preview.height, preview.jpeg
            except ImageRejectedError:
                media_type = DEFAULT_MEDIA_TYPE  # sent as a plain file, never shown inline
        attachments_dir(profile_dir)
        local_file = new_local_file()
        encrypted = encrypt_file(source, attachment_file(profile_dir, local_file))
    except OSError as exc:
        raise AttachmentError(
            f"reading the file failed: {exc.strerror}", user_message="This file cannot be read."
        ) from None
    return PreparedFile(local_file, encrypted, media_type, width, height, thumbnail)
