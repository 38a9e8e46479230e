"""The app icon's renders: reproducible, and every file decodes at its size.

``packaging/icons/make_icons.py`` renders ``resources/icons/app.svg`` into the
hicolor PNGs (1x and @2), ``messenger.ico`` and ``messenger.icns``. Two runs
must write identical bytes; each PNG, each image in the ICO and each element
of the ICNS must decode (Qt's image reader) to the size its name or
directory entry promises. The committed files in ``resources/icons`` are
checked the same way.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

from PySide6.QtGui import QImage

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "packaging" / "icons" / "make_icons.py"
COMMITTED = ROOT / "resources" / "icons"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
SCALED = (16, 24, 32, 48, 64, 128, 256)
ICO_SIZES = [16, 24, 32, 48, 64, 128, 256]
ICNS_SIZES = {
    b"icp4": 16,
    b"icp5": 32,
    b"icp6": 64,
    b"ic07": 128,
    b"ic08": 256,
    b"ic09": 512,
    b"ic10": 1024,
    b"ic11": 32,
    b"ic12": 64,
    b"ic13": 256,
    b"ic14": 512,
}


def _generate(out: Path) -> None:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = QImage.fromData(data, "PNG")
    assert not image.isNull()
    return image.width(), image.height()


def _ico_sizes(data: bytes) -> list[int]:
    reserved, kind, count = struct.unpack_from("<HHH", data)
    assert (reserved, kind) == (0, 1)
    sizes = []
    for index in range(count):
        width, height, _, _, planes, bits, length, offset = struct.unpack_from(
            "<BBBBHHII", data, 6 + 16 * index
        )
        assert (planes, bits) == (1, 32)
        side = width or 256
        assert height == width
        assert _png_size(data[offset : offset + length]) == (side, side)
        sizes.append(side)
    return sizes


def _icns_types(data: bytes) -> list[bytes]:
    assert data[:4] == b"icns"
    assert struct.unpack_from(">I", data, 4)[0] == len(data)
    position, kinds = 8, []
    while position < len(data):
        kind = data[position : position + 4]
        (length,) = struct.unpack_from(">I", data, position + 4)
        side = ICNS_SIZES[kind]
        assert _png_size(data[position + 8 : position + length]) == (side, side), kind
        kinds.append(kind)
        position += length
    assert position == len(data)
    return kinds


def _check(icons: Path) -> None:
    for size in SIZES:
        png = icons / "hicolor" / f"{size}x{size}" / "apps" / "messenger.png"
        assert _png_size(png.read_bytes()) == (size, size), png
    for size in SCALED:
        png = icons / "hicolor" / f"{size}x{size}@2" / "apps" / "messenger.png"
        assert _png_size(png.read_bytes()) == (2 * size, 2 * size), png
    svg = icons / "hicolor" / "scalable" / "apps" / "messenger.svg"
    assert svg.read_bytes() == (COMMITTED / "app.svg").read_bytes()
    assert _ico_sizes((icons / "messenger.ico").read_bytes()) == ICO_SIZES
    assert _icns_types((icons / "messenger.icns").read_bytes()) == list(ICNS_SIZES)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_generated_icons_are_reproducible_and_decode(tmp_path: Path) -> None:
    _generate(tmp_path / "one")
    _generate(tmp_path / "two")
    one, two = _tree(tmp_path / "one"), _tree(tmp_path / "two")
    assert one == two
    assert len(one) == len(SIZES) + len(SCALED) + 3
    _check(tmp_path / "one")


def test_committed_icons_decode() -> None:
    _check(COMMITTED)
