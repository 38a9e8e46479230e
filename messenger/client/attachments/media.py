"""What kind of file an attachment is, and a name safe to show and to save under.

The media type comes from the file's first bytes when they are a known
format (so an image is shown as an image whatever its name says), else
from the name's extension, else ``application/octet-stream``. A file name
from the network is only ever displayed, or used sanitised inside the
private directory of :func:`~.files.open_dir` (docs/attachments.md §5):
:func:`safe_file_name` keeps the last path component, drops control and
bidirectional-override characters, and bounds the length.
:func:`format_size` says how big a file is, for the timeline and the CLI.
"""

from __future__ import annotations

import mimetypes
import unicodedata
from typing import Final

from ..content import MAX_FILE_NAME_BYTES, MAX_MEDIA_TYPE_LENGTH

__all__ = [
    "DEFAULT_MEDIA_TYPE",
    "display_name",
    "format_size",
    "pasted_name",
    "safe_file_name",
    "sniff_media_type",
]

DEFAULT_MEDIA_TYPE: Final = "application/octet-stream"
_FALLBACK_NAME: Final = "file"

#: Magic numbers of the formats recognised by content.
_MAGIC: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"OggS", "audio/ogg"),
    (b"fLaC", "audio/flac"),
    (b"ID3", "audio/mpeg"),
)


def sniff_media_type(head: bytes, name: str | None) -> str:
    """The media type of a file that starts with ``head`` and is called ``name``."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return "video/mp4"
    for magic, media_type in _MAGIC:
        if head.startswith(magic):
            if media_type == "application/zip" and name:  # docx, odt, epub... are zips
                guessed = _by_extension(name)
                if guessed is not None:
                    return guessed
            return media_type
    guessed = _by_extension(name) if name else None
    return guessed or DEFAULT_MEDIA_TYPE


def pasted_name(head: bytes) -> str:
    """A name for pasted bytes without one: ``image.png``, ``image.jpg``... or ``file``."""
    media_type = sniff_media_type(head, None)
    extension = _EXTENSIONS.get(media_type)
    if extension is None:
        return _FALLBACK_NAME
    return f"{'image' if media_type.startswith('image/') else 'file'}.{extension}"


_EXTENSIONS: Final = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/bmp": "bmp",
    "application/pdf": "pdf",
}


def _by_extension(name: str) -> str | None:
    guessed, _ = mimetypes.guess_type(safe_file_name(name), strict=False)
    if guessed is None or not guessed.isascii() or len(guessed) > MAX_MEDIA_TYPE_LENGTH:
        return None
    if guessed.startswith("image/") and guessed not in _IMAGE_BY_NAME:
        return None  # an image format only the content may claim (SVG is not shown inline)
    return guessed


#: Image types a name alone may give (the content is checked before decoding anyway).
_IMAGE_BY_NAME: Final = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


def _allowed(char: str) -> bool:
    category = unicodedata.category(char)
    # Cc control, Cf format (bidi overrides, zero-width), Cs surrogates, Co private use.
    return category not in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")


def display_name(name: str) -> str:
    """``name`` without control or format characters, spaces collapsed (1 to 255 bytes)."""
    cleaned = " ".join("".join(c for c in name if _allowed(c)).split())
    return _bounded(cleaned) or _FALLBACK_NAME


def safe_file_name(name: str) -> str:
    """A file name to create in a private directory: one component, no tricks."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = display_name(base)
    for bad in '<>:"|?*':
        cleaned = cleaned.replace(bad, "_")
    cleaned = cleaned.strip(" .")
    if not cleaned or cleaned in (".", ".."):
        return _FALLBACK_NAME
    return _bounded(cleaned)


def _bounded(text: str) -> str:
    """``text`` cut to at most :data:`MAX_FILE_NAME_BYTES` of UTF-8, keeping its extension."""
    if len(text.encode("utf-8")) <= MAX_FILE_NAME_BYTES:
        return text
    stem, dot, ext = text.rpartition(".")
    suffix = f".{ext}" if dot and stem and len(ext.encode("utf-8")) <= 16 else ""
    body = text[: len(text) - len(suffix)] if suffix else text
    budget = MAX_FILE_NAME_BYTES - len(suffix.encode("utf-8"))
    while len(body.encode("utf-8")) > budget:
        body = body[:-1]
    return body + suffix


def format_size(size: int) -> str:
    """``size`` bytes for people, in decimal units as file managers show them:
    "512 bytes", "48 KB", "4.2 MB", "2.1 GB"."""
    if size < 1000:
        return f"{size} byte" + ("" if size == 1 else "s")
    value = float(size)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1000
        if value < 999.5 or unit == "TB":
            break
    return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
