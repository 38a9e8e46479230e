"""QR codes of invite links and safety numbers, as pixmaps.

segno (pure Python) renders the code to PNG bytes, which ``QImage`` loads
(architecture guide, "Facts about the GUI stack": QR codes). The code is
drawn dark on light in both themes, with a quiet zone, because phone
cameras read inverted codes poorly; ``dark`` only picks a light colour that
does not glare on a dark window.
"""

from __future__ import annotations

import io

import segno
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap

#: The quiet zone around the code, in modules (ISO/IEC 18004 asks for 4).
QUIET_ZONE = 4


def qr_pixmap(text: str, size: int, dark: bool, *, ratio: float = 1.0) -> QPixmap:
    """A square pixmap of ``size`` logical pixels holding ``text`` as a QR code.

    ``ratio`` is the screen's device pixel ratio: the code is drawn with that
    many more pixels, so it stays sharp on HiDPI screens.
    """
    logical = size
    size = round(size * ratio)
    code = segno.make(text, error="m", micro=False)
    width, _ = code.symbol_size(scale=1, border=QUIET_ZONE)
    scale = max(1, size // width)
    buffer = io.BytesIO()
    light = "#E8EAED" if dark else "#FFFFFF"
    code.save(buffer, kind="png", scale=scale, border=QUIET_ZONE, dark="#000000", light=light)
    image = QImage.fromData(buffer.getvalue())
    pixmap = QPixmap.fromImage(image)
    if pixmap.width() != size:
        pixmap = pixmap.scaled(
            size,
            size,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.FastTransformation,
        )
    pixmap.setDevicePixelRatio(size / logical)
    return pixmap
