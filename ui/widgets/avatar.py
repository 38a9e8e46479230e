"""Avatars: initials on a colour chosen by a stable hash of the account ID.

The same person has the same colour everywhere (conversation list, header,
timeline, member lists), on every run and every machine: the colour comes
from a SHA-256 of the key (an account ID or, for groups, a conversation
key), never from Python's randomised ``hash()`` (ui-design.md, "Avatars").
"""

from __future__ import annotations

import hashlib
import unicodedata

from PySide6.QtCore import QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

#: A fixed palette of saturated mid-tones; white initials on each reach at
#: least 4.5:1 contrast, so they read in both themes.
AVATAR_PALETTE: tuple[str, ...] = (
    "#C2410C",  # orange
    "#B91C1C",  # red
    "#BE185D",  # pink
    "#A21CAF",  # fuchsia
    "#7E22CE",  # purple
    "#4F46E5",  # indigo
    "#1D4ED8",  # blue
    "#0E7490",  # cyan
    "#0F766E",  # teal
    "#15803D",  # green
    "#4D7C0F",  # lime
    "#A16207",  # amber
)


def _digest(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:4], "big")


def avatar_color(key: str) -> QColor:
    """The avatar colour of ``key`` (stable across runs and machines)."""
    return QColor(AVATAR_PALETTE[_digest(key) % len(AVATAR_PALETTE)])


def initials(name: str) -> str:
    """One or two letters for ``name``: first letters of the first and last word.

    Emoji and symbols are skipped; a name without letters gives ``"?"``.
    """
    words = [w for w in name.replace("@", " ").replace(".", " ").split() if w]
    letters: list[str] = []
    for word in words:
        for ch in word:
            if unicodedata.category(ch)[0] in ("L", "N"):
                letters.append(ch)
                break
    if not letters:
        return "?"
    if len(letters) == 1:
        return letters[0].upper()
    return (letters[0] + letters[-1]).upper()


def paint_avatar(painter: QPainter, rect: QRect | QRectF, name: str, key: str) -> None:
    """Paint a round avatar for ``name`` (colour from ``key``) into ``rect``."""
    r = QRectF(rect)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(avatar_color(key))
    painter.drawEllipse(r)
    font = QFont(painter.font())
    font.setPixelSize(max(8, round(r.height() * 0.38)))
    font.setWeight(QFont.Weight.DemiBold)
    painter.setFont(font)
    painter.setPen(QColor("#FFFFFF"))
    painter.drawText(r, Qt.AlignmentFlag.AlignCenter, initials(name))
    painter.restore()


class Avatar(QWidget):
    """A round avatar of a fixed size; screen readers hear the name."""

    def __init__(self, name: str, key: str, size: int = 44, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._name = name
        self._key = key
        self._size = size
        self.setFixedSize(size, size)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        self.setAccessibleName(name)

    def set_identity(self, name: str, key: str) -> None:
        self._name = name
        self._key = key
        self.setAccessibleName(name)
        self.update()

    def name(self) -> str:
        return self._name

    def key(self) -> str:
        return self._key

    def sizeHint(self) -> QSize:
        return QSize(self._size, self._size)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        paint_avatar(painter, self.rect(), self._name, self._key)
        painter.end()
