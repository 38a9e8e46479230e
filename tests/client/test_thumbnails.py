"""Image previews made without trusting the image (docs/attachments.md §2, §5).

Real PNG and JPEG files made with Pillow; metadata (EXIF, GPS) never
reaches the thumbnail; a malformed file or a decompression bomb is an
ImageRejectedError, and the bomb is refused from its header, before
anything is allocated for its pixels.
"""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib
from pathlib import Path

import pytest
from PIL import Image

from messenger.client import ImageRejectedError
from messenger.client.attachments.media import display_name, safe_file_name, sniff_media_type
from messenger.client.attachments.thumbnails import (
    MAX_SIDE,
    THUMBNAIL_SIDE,
    image_size,
    make_thumbnail,
)
from messenger.client.content import MAX_THUMBNAIL_BYTES


def encoded(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def noisy(width: int, height: int) -> Image.Image:
    """An image that compresses badly (a thumbnail of it needs lower quality)."""
    import os

    return Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP", "BMP"])
def test_thumbnail_of_each_format(fmt: str) -> None:
    data = encoded(Image.new("RGB", (1200, 800), (10, 120, 200)), fmt)
    thumb = make_thumbnail(data)
    assert (thumb.width, thumb.height) == (1200, 800)
    with Image.open(io.BytesIO(thumb.jpeg)) as shown:
        assert shown.format == "JPEG"
        assert shown.size == (THUMBNAIL_SIDE, 213)


def test_noisy_photo_fits_in_48_kib(tmp_path: Path) -> None:
    path = tmp_path / "noise.png"
    path.write_bytes(encoded(noisy(1000, 1000), "PNG"))
    thumb = make_thumbnail(path)
    assert len(thumb.jpeg) <= MAX_THUMBNAIL_BYTES


def test_exif_and_gps_are_stripped_and_orientation_applied() -> None:
    image = Image.new("RGB", (400, 200), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turned a quarter (shown 200 x 400)
    exif[0x010F] = "SecretCam"  # camera make
    exif[0x8825] = {2: (48.0, 51.0, 24.0), 1: "N"}  # GPS IFD: latitude
    data = encoded(image, "JPEG", exif=exif.tobytes(), comment=b"my home")
    with Image.open(io.BytesIO(data)) as original:
        assert original.getexif().get(0x010F) == "SecretCam"
    thumb = make_thumbnail(data)
    assert (thumb.width, thumb.height) == (200, 400)
    with Image.open(io.BytesIO(thumb.jpeg)) as shown:
        assert shown.size[0] < shown.size[1]  # upright
        assert not shown.getexif()
        assert "exif" not in shown.info and "comment" not in shown.info
    assert b"Exif" not in thumb.jpeg and b"SecretCam" not in thumb.jpeg
    assert b"my home" not in thumb.jpeg


def test_transparent_png_becomes_rgb() -> None:
    data = encoded(Image.new("RGBA", (64, 64), (0, 0, 0, 0)), "PNG")
    with Image.open(io.BytesIO(make_thumbnail(data).jpeg)) as shown:
        assert shown.mode == "RGB" and shown.getpixel((1, 1)) == (255, 255, 255)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image at all",
        b"\x89PNG\r\n\x1a\n" + bytes(50),
        encoded(Image.new("RGB", (50, 50)), "PNG")[:60],  # cut in the middle
        encoded(Image.new("RGB", (50, 50)), "TIFF"),  # a format not allowed
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
    ],
)
def test_malformed_or_foreign_bytes_are_rejected(data: bytes) -> None:
    with pytest.raises(ImageRejectedError) as caught:
        make_thumbnail(data)
    assert "cannot be shown" in caught.value.user_message


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(bytes(1024)))
        + _png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "size", [(100_000, 100_000), (MAX_SIDE + 1, 10), (8000, 8000), (10, MAX_SIDE + 1)]
)
def test_decompression_bomb_is_refused_from_its_header(size: tuple[int, int]) -> None:
    data = bomb_png(*size)
    assert len(data) < 2000
    tracemalloc.start()
    try:
        with pytest.raises(ImageRejectedError):
            make_thumbnail(data)
        with pytest.raises(ImageRejectedError):
            image_size(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20  # nothing the size of the claimed pixels (gigabytes)


def test_image_size_reads_only_the_header() -> None:
    assert image_size(encoded(Image.new("RGB", (321, 123)), "PNG")) == (321, 123)


def test_media_types_by_content_then_name() -> None:
    png = encoded(Image.new("RGB", (2, 2)), "PNG")
    assert sniff_media_type(png[:64], "holiday.txt") == "image/png"  # the bytes win
    assert sniff_media_type(b"%PDF-1.7", None) == "application/pdf"
    assert sniff_media_type(b"hello", "notes.txt") == "text/plain"
    assert sniff_media_type(b"hello", "x.svg") == "application/octet-stream"  # never inline
    assert sniff_media_type(b"hello", "photo.png") == "image/png"  # decoded checked anyway
    assert sniff_media_type(b"hello", None) == "application/octet-stream"


def test_names_are_sanitised() -> None:
    assert safe_file_name("../../etc/passwd") == "passwd"
    assert safe_file_name("C:\\Windows\\evil.exe") == "evil.exe"
    assert safe_file_name("..") == "file" and safe_file_name("") == "file"
    assert safe_file_name("invoice\u202egpj.exe") == "invoicegpj.exe"  # no bidi override
    assert safe_file_name("a\x00b\nc.txt") == "abc.txt"
    long = "x" * 300 + ".pdf"
    assert safe_file_name(long).endswith(".pdf") and len(safe_file_name(long).encode()) <= 255
    assert display_name("  report\t final .pdf ") == "report final .pdf"
    assert len(display_name("é" * 300).encode()) <= 255
