"""Previews of images, made without trusting the image (docs/attachments.md §2, §5).

An image from the user's disk or the network may be malformed, or a
decompression bomb: a few bytes whose header claims billions of pixels.
:func:`open_image` therefore opens it lazily (Pillow reads only the
header), accepts only the formats of :data:`FORMATS`, and refuses more than
:data:`MAX_PIXELS` pixels or :data:`MAX_SIDE` pixels a side *before*
anything is decoded; Pillow's own ``Image.MAX_IMAGE_PIXELS`` is set to the
same bound as a second guard. Any failure is an :class:`ImageRejectedError`
(the sender then sends the file as a plain file, without a preview).

:func:`make_thumbnail` makes the preview a file message carries: a JPEG
of at most :data:`THUMBNAIL_SIDE` pixels on its longer side and at most
``MAX_THUMBNAIL_BYTES`` (48 KiB), turned upright by its EXIF orientation
and written without any metadata, so no EXIF or GPS data leaves the
device through it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from PIL import Image, ImageOps, UnidentifiedImageError

from ..content import MAX_THUMBNAIL_BYTES
from ..errors import ImageRejectedError

__all__ = [
    "FORMATS",
    "MAX_PIXELS",
    "MAX_SIDE",
    "THUMBNAIL_SIDE",
    "Thumbnail",
    "check_thumbnail",
    "image_size",
    "make_thumbnail",
    "open_image",
]

#: The most pixels an image may have to be decoded at all.
MAX_PIXELS: Final = 50_000_000
#: The longest side an image may have to be decoded at all.
MAX_SIDE: Final = 16_384
#: The longer side of a thumbnail, at most.
THUMBNAIL_SIDE: Final = 320
#: The image formats decoded (Pillow's names).
FORMATS: Final = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
#: The JPEG qualities tried, best first, until the thumbnail fits.
_QUALITIES: Final = (80, 70, 60, 50, 40, 30, 20)
#: The EXIF tag of the orientation.
_ORIENTATION: Final = 0x0112

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


@dataclass(frozen=True, slots=True)
class Thumbnail:
    """A preview (JPEG) and the size of the full image it shows."""

    jpeg: bytes = field(repr=False)
    width: int
    height: int


def _rejected(why: str) -> ImageRejectedError:
    return ImageRejectedError(f"image rejected: {why}")


def open_image(source: Path | bytes) -> Image.Image:
    """Open an image lazily and check its format and dimensions; nothing decoded yet.

    ImageRejectedError for a file that is not one of :data:`FORMATS`, or
    whose header is malformed or claims too many pixels.
    """
    stream: Path | io.BytesIO = source if isinstance(source, Path) else io.BytesIO(source)
    try:
        image = Image.open(stream, formats=FORMATS)
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
    ) as exc:
        raise _rejected(f"cannot read its header ({type(exc).__name__})") from None
    width, height = image.size
    if (
        image.format not in FORMATS
        or not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE)
        or width * height > MAX_PIXELS
    ):
        image.close()
        raise _rejected("too large, or not an allowed format")
    return image


def image_size(source: Path | bytes) -> tuple[int, int]:
    """An image's size in pixels, from its checked header (nothing decoded)."""
    with open_image(source) as image:
        return image.size


def check_thumbnail(data: bytes) -> bool:
    """Whether a thumbnail from the network is what a sender makes: a JPEG of at
    most 48 KiB and :data:`THUMBNAIL_SIDE` pixels a side (its header is read,
    nothing decoded). A receiver keeps no other."""
    if not 0 < len(data) <= MAX_THUMBNAIL_BYTES:
        return False
    try:
        with open_image(data) as image:
            return image.format == "JPEG" and max(image.size) <= THUMBNAIL_SIDE
    except ImageRejectedError:
        return False


def make_thumbnail(source: Path | bytes) -> Thumbnail:
    """The preview of an image (ImageRejectedError if it is not a safe image).

    Runs in a worker thread: decoding takes up to a second for a large photo.
    """
    with open_image(source) as image:
        full_width, full_height = image.size  # from the header, before any draft scaling
        try:
            if image.getexif().get(_ORIENTATION, 1) in (5, 6, 7, 8):  # shown turned a quarter
                full_width, full_height = full_height, full_width
            image.draft("RGB", (THUMBNAIL_SIDE * 2, THUMBNAIL_SIDE * 2))  # JPEG: decode smaller
            upright = ImageOps.exif_transpose(image)
            upright.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
            rgb = _flatten(upright)
        except (
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
            OSError,
            ValueError,
            SyntaxError,
            EOFError,
            MemoryError,
        ) as exc:
            raise _rejected(f"cannot decode it ({type(exc).__name__})") from None
    for quality in _QUALITIES:
        out = io.BytesIO()
        # A new image carries no metadata: no EXIF, GPS, ICC, comment.
        clean = Image.new("RGB", rgb.size)
        clean.paste(rgb)
        clean.save(out, "JPEG", quality=quality, optimize=True)
        data = out.getvalue()
        if len(data) <= MAX_THUMBNAIL_BYTES:
            return Thumbnail(data, full_width, full_height)
    raise _rejected("no thumbnail small enough")


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparency laid on white."""
    if image.mode in ("RGBA", "LA", "P", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")
