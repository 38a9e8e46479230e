"""A QR code painted module by module, crisp at any size and pixel ratio.

:func:`ui.qr.qr_pixmap` renders a fixed-size picture; :class:`QrCode` is a
widget that paints segno's module matrix itself, on every paint, so the
modules land on whole device pixels whatever the widget's size and the
screen's device pixel ratio (no resampling blur, no uneven modules).

The code is always drawn dark on a white tile with a quiet zone of
:data:`QUIET_ZONE` modules (ISO/IEC 18004), in both themes: phone cameras
read inverted codes poorly, and a white tile reads on a dark window too.
"""

from __future__ import annotations

import math

import segno
from PySide6.QtCore import QRectF, QSize
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

__all__ = ["QUIET_ZONE", "QrCode", "qr_matrix"]

#: The quiet zone around the code, in modules.
QUIET_ZONE = 4
#: The tile's corner radius, in logical pixels.
RADIUS = 12.0
TILE = QColor("#FFFFFF")
INK = QColor("#000000")


def qr_matrix(text: str) -> list[list[bool]]:
    """The dark modules of ``text``'s QR code (error correction M), without quiet zone."""
    code = segno.make(text, error="m", micro=False)
    return [[bool(cell) for cell in row] for row in code.matrix]


class QrCode(QWidget):
    """``text`` as a QR code on a white tile; square, at least :attr:`minimum` px."""

    def __init__(
        self,
        text: str = "",
        *,
        size: int = 240,
        accessible: str = "QR code",
        description: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._size = size
        self._text = ""
        self._image = QImage()
        self.modules = 0
        #: A hairline around the tile, so that it reads on a white window too.
        self._outline = QColor(0, 0, 0, 28)
        self.setAccessibleName(accessible)
        if description:
            self.setAccessibleDescription(description)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setFixedSize(size, size)
        self.set_text(text)

    def text(self) -> str:
        return self._text

    def set_text(self, text: str) -> None:
        """Show ``text`` (empty: a blank tile)."""
        self._text = text
        if not text:
            self._image = QImage()
            self.modules = 0
        else:
            matrix = qr_matrix(text)
            count = len(matrix) + 2 * QUIET_ZONE
            image = QImage(count, count, QImage.Format.Format_RGB32)
            image.fill(TILE)
            ink = INK.rgb()
            for y, row in enumerate(matrix):
                for x, dark in enumerate(row):
                    if dark:
                        image.setPixel(x + QUIET_ZONE, y + QUIET_ZONE, ink)
            self._image = image
            self.modules = count
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(self._size, self._size)

    def module_pixels(self, ratio: float | None = None) -> int:
        """The device pixels of one module at pixel ratio ``ratio`` (the widget's by default)."""
        if not self.modules:
            return 0
        scale = self.devicePixelRatioF() if ratio is None else ratio
        side = math.floor(min(self.width(), self.height()) * scale)
        return max(1, side // self.modules)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(QPen(self._outline, 1.0))
        painter.setBrush(TILE)
        side = min(self.width(), self.height())
        painter.drawRoundedRect(QRectF(0.5, 0.5, side - 1, side - 1), RADIUS, RADIUS)
        if not self._image.isNull():
            # The device really painted on (a pixmap when the widget is rendered
            # into one for a screenshot), not the widget: its own pixel ratio.
            engine = painter.paintEngine()
            target = engine.paintDevice() if engine is not None else None
            ratio = (target or self).devicePixelRatioF()
            module = self.module_pixels(ratio)
            drawn = module * self.modules / ratio  # whole device pixels per module
            offset = math.floor((side - drawn) / 2 * ratio) / ratio
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
            painter.drawImage(QRectF(offset, offset, drawn, drawn), self._image)
        painter.end()
