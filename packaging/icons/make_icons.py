"""Renders the app icon's SVG master into every size and container the packages need.

::

    python packaging/icons/make_icons.py [--master resources/icons/app.svg]
                                         [--out resources/icons]

From the master (``resources/icons/app.svg``) it writes, under ``--out``:

- ``hicolor/NxN/apps/messenger.png`` for N = 16, 24, 32, 48, 64, 128, 256,
  512 and ``hicolor/NxN@2/apps/messenger.png`` (rendered at 2N) for N = 16 …
  256: the freedesktop icon theme layout, for the ``.deb``, the Flatpak and
  the app's own window icon (``ui.resources.app_icon``);
- ``hicolor/scalable/apps/messenger.svg``: the master itself;
- ``messenger.ico`` (Windows: 16 … 256 px, PNG payloads, as Windows Vista and
  later read them) for the PyInstaller spec and the installer;
- ``messenger.icns`` (macOS: 16 … 1024 px incl. the @2x types, PNG payloads)
  for the ``.app`` bundle.

Rendering is Qt's SVG renderer (PySide6, which the app needs anyway, so the
script runs the same on Linux, macOS and Windows); PNG, ICO and ICNS are
written here, byte for byte (no timestamps, fixed zlib level), so the same
master and Qt version give identical files. ``tests/packaging/test_icons.py``
checks that two runs agree and that every file decodes at its size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import sys
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
MASTER: Final = ROOT / "resources" / "icons" / "app.svg"
OUT: Final = ROOT / "resources" / "icons"
NAME: Final = "messenger"

#: hicolor sizes (``NxN``) and those that also get an ``NxN@2`` (2N px) render.
SIZES: Final = (16, 24, 32, 48, 64, 128, 256, 512)
SCALED_SIZES: Final = (16, 24, 32, 48, 64, 128, 256)
#: The images in the .ico (256 is the largest an ICO entry describes).
ICO_SIZES: Final = (16, 24, 32, 48, 64, 128, 256)
#: The .icns element types and their pixel sizes (PNG payloads; Apple's
#: "icns" format: ic11 to ic14 and ic10 are the @2x retina variants).
ICNS_TYPES: Final = (
    (b"icp4", 16),
    (b"icp5", 32),
    (b"icp6", 64),
    (b"ic07", 128),
    (b"ic08", 256),
    (b"ic09", 512),
    (b"ic10", 1024),
    (b"ic11", 32),
    (b"ic12", 64),
    (b"ic13", 256),
    (b"ic14", 512),
)


class Renderer:
    """The SVG master rendered with Qt into straight (not premultiplied) RGBA."""

    def __init__(self, master: Path) -> None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        from PySide6.QtGui import QGuiApplication
        from PySide6.QtSvg import QSvgRenderer

        self._app = QGuiApplication.instance() or QGuiApplication([sys.argv[0]])
        self._svg = QSvgRenderer(str(master))
        if not self._svg.isValid():
            raise SystemExit(f"make_icons: {master} is not a valid SVG")
        self._cache: dict[int, bytes] = {}

    def rgba(self, size: int) -> bytes:
        """``size`` by ``size`` pixels, 4 bytes each, rows top to bottom."""
        if size not in self._cache:
            from PySide6.QtCore import Qt
            from PySide6.QtGui import QImage, QPainter

            image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
            image.fill(Qt.GlobalColor.transparent)
            painter = QPainter(image)
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            self._svg.render(painter)
            painter.end()
            image = image.convertToFormat(QImage.Format.Format_RGBA8888)
            stride = image.bytesPerLine()
            data = bytes(image.constBits())
            self._cache[size] = b"".join(
                data[row * stride : row * stride + 4 * size] for row in range(size)
            )
        return self._cache[size]

    def png(self, size: int) -> bytes:
        return encode_png(size, size, self.rgba(size))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(width: int, height: int, rgba: bytes) -> bytes:
    """A PNG (8-bit RGBA, no filters, no ancillary chunks) of ``rgba``."""
    row = 4 * width
    raw = b"".join(b"\x00" + rgba[y * row : (y + 1) * row] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def encode_ico(images: Iterable[tuple[int, bytes]]) -> bytes:
    """An ICO file of square PNG ``images`` (size, PNG bytes)."""
    entries = list(images)
    offset = 6 + 16 * len(entries)
    directory = b""
    payload = b""
    for size, png in entries:
        side = 0 if size >= 256 else size  # 0 means 256 in an ICONDIRENTRY
        directory += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(png), offset)
        offset += len(png)
        payload += png
    return struct.pack("<HHH", 0, 1, len(entries)) + directory + payload


def encode_icns(elements: Iterable[tuple[bytes, bytes]]) -> bytes:
    """An ICNS file of (type, PNG bytes) elements."""
    body = b"".join(kind + struct.pack(">I", 8 + len(data)) + data for kind, data in elements)
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_icons(master: Path, out: Path) -> list[Path]:
    """Writes every icon file under ``out``; the paths written."""
    render = Renderer(master)
    written: list[Path] = []
    for size in SIZES:
        path = out / "hicolor" / f"{size}x{size}" / "apps" / f"{NAME}.png"
        _write(path, render.png(size))
        written.append(path)
    for size in SCALED_SIZES:
        path = out / "hicolor" / f"{size}x{size}@2" / "apps" / f"{NAME}.png"
        _write(path, render.png(2 * size))
        written.append(path)
    scalable = out / "hicolor" / "scalable" / "apps" / f"{NAME}.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    if scalable.resolve() != master.resolve():
        shutil.copyfile(master, scalable)
    written.append(scalable)
    ico = out / f"{NAME}.ico"
    _write(ico, encode_ico((size, render.png(size)) for size in ICO_SIZES))
    icns = out / f"{NAME}.icns"
    _write(icns, encode_icns((kind, render.png(size)) for kind, size in ICNS_TYPES))
    return [*written, ico, icns]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--master", type=Path, default=MASTER, help="the SVG master")
    parser.add_argument("--out", type=Path, default=OUT, help="where to write (resources/icons)")
    args = parser.parse_args(argv)
    for path in make_icons(args.master, args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
