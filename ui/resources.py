"""Where the app's files are, and its icons as :class:`QIcon` objects.

``resources/`` sits beside the ``ui`` package in the source tree and in a
PyInstaller bundle (``sys._MEIPASS/resources``); ``MESSENGER_RESOURCES``
overrides both (packagers).

The icon set in ``resources/icons/`` is drawn on a 20 px grid with strokes
in one fixed colour, :data:`ICON_INK` (the light theme's text colour), so the
files look right in any SVG viewer. :func:`icon` substitutes another colour
for it before rendering: by default the application palette's
``ButtonText`` colour at the time of the call, so an icon made after
``ui.theme.apply_theme`` matches the theme; pass ``color=`` for anything
else (white on the accent, the danger red). Icons do not follow a later
theme change: make them again when the palette changes (``theme``'s
palette-change handler). A few icons carry colours of their own on purpose
(:data:`FIXED_COLOUR_ICONS`); they are rendered unchanged.
"""

from __future__ import annotations

import os
import sys
from functools import cache, lru_cache
from pathlib import Path
from typing import Final

from PySide6.QtCore import QByteArray, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPainter, QPalette, QPixmap
from PySide6.QtSvg import QSvgRenderer

__all__ = [
    "APP_ICON_SIZES",
    "FIXED_COLOUR_ICONS",
    "ICON_INK",
    "ICON_NAMES",
    "app_icon",
    "app_icon_svg",
    "fonts_dir",
    "icon",
    "icon_path",
    "icon_pixmap",
    "icons_dir",
    "resources_dir",
]

#: The colour every monochrome icon is drawn in; :func:`icon` replaces it.
ICON_INK: Final = "#1B1C1F"
#: Icons whose colours are part of the design (rendered as drawn).
FIXED_COLOUR_ICONS: Final = frozenset({"app"})
#: The sizes of the PNG renders of the app icon (``icons/hicolor/NxN/apps``).
APP_ICON_SIZES: Final = (16, 24, 32, 48, 64, 128, 256, 512)
#: The icon set (each is ``resources/icons/<name>.svg``).
ICON_NAMES: Final = (
    "send",
    "attach",
    "emoji",
    "search",
    "compose",
    "settings",
    "back",
    "more",
    "close",
    "reply",
    "react",
    "edit",
    "delete",
    "copy",
    "retry",
    "check",
    "double-check",
    "clock",
    "alert",
    "lock",
    "verified",
    "mute",
    "archive",
    "user-add",
    "group",
    "qr",
    "copy-link",
    "info",
    "laptop",
    "hourglass",
    "file",
    "download",
    "save",
    "zoom-in",
    "zoom-out",
)
#: The pixel sizes rendered into a recoloured icon (times 1, 1.5 and 2 for HiDPI).
_RENDER_SIZES: Final = (16, 20, 24, 32, 40, 48, 64)
_SCALES: Final = (1.0, 1.5, 2.0)


def resources_dir() -> Path:
    """The ``resources/`` directory (source tree, PyInstaller bundle or override)."""
    override = os.environ.get("MESSENGER_RESOURCES")
    if override:
        return Path(override)
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle is not None:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def fonts_dir() -> Path:
    """The bundled fonts (``resources/fonts``; see its README for licences)."""
    return resources_dir() / "fonts"


def icons_dir() -> Path:
    """The SVG icon set and the app icon (``resources/icons``)."""
    return resources_dir() / "icons"


def icon_path(name: str) -> Path:
    """The SVG file of icon ``name``; FileNotFoundError when there is none."""
    path = icons_dir() / f"{name}.svg"
    if not path.is_file():
        raise FileNotFoundError(f"no icon named {name!r} in {icons_dir()}")
    return path


@cache
def _svg_source(name: str) -> str:
    return icon_path(name).read_text(encoding="utf-8")


def _default_ink() -> QColor:
    app = QGuiApplication.instance()
    if isinstance(app, QGuiApplication):
        return QGuiApplication.palette().color(QPalette.ColorRole.ButtonText)
    return QColor(ICON_INK)


def _renderer(name: str, color: QColor | None) -> QSvgRenderer:
    source = _svg_source(name)
    if color is not None and name not in FIXED_COLOUR_ICONS:
        source = source.replace(ICON_INK, color.name(QColor.NameFormat.HexRgb))
        if color.alpha() < 255:
            source = source.replace("<svg ", f'<svg opacity="{color.alphaF():.3f}" ', 1)
    renderer = QSvgRenderer(QByteArray(source.encode("utf-8")))
    if not renderer.isValid():
        raise ValueError(f"icon {name!r} is not a valid SVG file")
    return renderer


def _render(renderer: QSvgRenderer, size: int, scale: float) -> QPixmap:
    pixels = round(size * scale)
    pixmap = QPixmap(pixels, pixels)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter, QRectF(0, 0, pixels, pixels))
    painter.end()
    pixmap.setDevicePixelRatio(scale)
    return pixmap


def icon_pixmap(
    name: str, size: int, *, color: QColor | str | None = None, scale: float = 1.0
) -> QPixmap:
    """Icon ``name`` drawn at ``size`` logical pixels for a screen of ``scale``."""
    ink = QColor(color) if color is not None else _default_ink()
    return _render(_renderer(name, ink), size, scale)


def icon(name: str, *, color: QColor | str | None = None) -> QIcon:
    """Icon ``name`` in ``color`` (default: the palette's button text colour).

    The result holds renders at the usual sizes for scales 1, 1.5 and 2;
    Qt derives the disabled look from them. Icons are cached by name and
    colour (QIcon is shared, so the same object may be handed out again).
    """
    ink = QColor(color) if color is not None else _default_ink()
    return _icon(name, ink.rgba())


@lru_cache(maxsize=512)
def _icon(name: str, rgba: int) -> QIcon:
    renderer = _renderer(name, QColor.fromRgba(rgba))
    result = QIcon()
    for size in _RENDER_SIZES:
        for scale in _SCALES:
            result.addPixmap(_render(renderer, size, scale))
    return result


def app_icon_svg() -> Path:
    """The app icon's SVG master."""
    return icons_dir() / "app.svg"


def app_icon() -> QIcon:
    """The app icon: the SVG master plus its PNG renders (for window managers)."""
    result = QIcon(str(app_icon_svg()))
    for size in APP_ICON_SIZES:
        png = icons_dir() / "hicolor" / f"{size}x{size}" / "apps" / "messenger.png"
        if png.is_file():
            result.addFile(str(png), QSize(size, size))
    return result
