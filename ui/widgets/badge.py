"""The unread badge (a pill with a bold count) and the verified mark.

ui-design.md: the unread badge is an accent-coloured pill with a bold
count; in a muted conversation it is grey. :func:`paint_badge` is shared by
the conversation list's delegate and the :class:`UnreadBadge` widget.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetricsF,
    QIcon,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import QWidget

from .. import theme

BADGE_H = 20


def badge_text(count: int) -> str:
    return "999+" if count > 999 else str(count)


def badge_width(count: int, font: QFont | None = None) -> float:
    metrics = QFontMetricsF(font or theme.font(theme.CAPTION_PX, QFont.Weight.Bold))
    return max(float(BADGE_H), metrics.horizontalAdvance(badge_text(count)) + 12)


def paint_badge(
    painter: QPainter, right: float, center_y: float, count: int, *, muted: bool = False
) -> QRectF:
    """Paint a badge whose right edge is at ``right``; its rectangle."""
    c = theme.colors()
    font = theme.font(theme.CAPTION_PX, QFont.Weight.Bold)
    width = badge_width(count, font)
    rect = QRectF(right - width, center_y - BADGE_H / 2, width, BADGE_H)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor("#8A8F98") if muted else c.accent)
    painter.drawRoundedRect(rect, BADGE_H / 2, BADGE_H / 2)
    painter.setFont(font)
    painter.setPen(QColor("#FFFFFF"))
    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, badge_text(count))
    painter.restore()
    return rect


class UnreadBadge(QWidget):
    """A pill with the unread count; hidden at zero."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._count = 0
        self._muted = False
        self.setFixedHeight(BADGE_H)
        self.hide()

    def count(self) -> int:
        return self._count

    def set_count(self, count: int, *, muted: bool = False) -> None:
        self._count = max(0, count)
        self._muted = muted
        self.setFixedWidth(round(badge_width(self._count)))
        self.setAccessibleName(f"{self._count} unread")
        self.setVisible(self._count > 0)
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(round(badge_width(self._count)), BADGE_H)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        paint_badge(painter, self.width(), self.height() / 2, self._count, muted=self._muted)
        painter.end()


def paint_verified(painter: QPainter, center: QPointF, radius: float = 7.0) -> None:
    """A small filled circle with a check: the contact's safety number was verified."""
    c = theme.colors()
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(c.accent)
    painter.drawEllipse(center, radius, radius)
    pen = QPen(QColor("#FFFFFF"), max(1.2, radius / 4.5))
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    painter.setPen(pen)
    path = QPainterPath()
    s = radius
    path.moveTo(center.x() - s * 0.45, center.y() + s * 0.02)
    path.lineTo(center.x() - s * 0.1, center.y() + s * 0.36)
    path.lineTo(center.x() + s * 0.48, center.y() - s * 0.3)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawPath(path)
    painter.restore()


def verified_icon(size: int = 16) -> QIcon:
    """The verified mark as an icon (for lists and labels), sharp at 1x and 2x."""
    icon = QIcon()
    for scale in (1.0, 2.0):
        pixmap = QPixmap(round(size * scale), round(size * scale))
        pixmap.fill(Qt.GlobalColor.transparent)
        pixmap.setDevicePixelRatio(scale)
        painter = QPainter(pixmap)
        paint_verified(painter, QPointF(size / 2, size / 2), size / 2 - 0.5)
        painter.end()
        icon.addPixmap(pixmap)
    return icon
