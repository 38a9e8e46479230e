"""An on/off switch: a check box painted as a track with a sliding knob.

A stylesheet cannot draw a knob on a check box's indicator without
bitmaps, so :class:`ToggleSwitch` paints the track and the knob itself with
antialiased vector shapes (crisp at any device pixel ratio: 1x, 1.5x, 2x),
from the theme's colours, and keeps everything else of ``QCheckBox``: the
``toggled`` signal, the keyboard (Space), the accessible role and name,
the focus chain. The text is drawn after the switch (before it in
right-to-left layouts), and the whole row is clickable.
"""

from __future__ import annotations

from PySide6.QtCore import QPoint, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QCheckBox, QWidget

from .. import theme

TRACK_WIDTH = 36
TRACK_HEIGHT = 20
KNOB_MARGIN = 3
SPACING = 10


class ToggleSwitch(QCheckBox):
    """A ``QCheckBox`` that looks like a switch (``class="toggle"``)."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setProperty("class", "toggle")
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setAttribute(Qt.WidgetAttribute.WA_Hover)
        if text:
            self.setAccessibleName(text)

    def sizeHint(self) -> QSize:
        metrics = self.fontMetrics()
        text = metrics.horizontalAdvance(self.text()) + SPACING if self.text() else 0
        return QSize(TRACK_WIDTH + 4 + text, max(TRACK_HEIGHT + 6, metrics.height() + 4))

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def hitButton(self, pos: QPoint) -> bool:
        return self.rect().contains(pos)

    def track_rect(self) -> QRectF:
        """Where the switch is drawn (left, or right in a right-to-left layout)."""
        top = (self.height() - TRACK_HEIGHT) / 2
        left = 2.0
        if self.layoutDirection() is Qt.LayoutDirection.RightToLeft:
            left = self.width() - TRACK_WIDTH - 2.0
        return QRectF(left, top, TRACK_WIDTH, TRACK_HEIGHT)

    def paintEvent(self, event: QPaintEvent) -> None:
        c = theme.colors()
        dark = theme.is_dark()
        on = self.isChecked()
        enabled = self.isEnabled()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        track = self.track_rect()
        radius = TRACK_HEIGHT / 2
        fill = QColor(c.accent) if on else QColor("#5A5E66" if dark else "#B9BDC4")
        if enabled and self.underMouse() and not on:
            fill = fill.lighter(108) if dark else fill.darker(108)
        if not enabled:
            fill.setAlphaF(0.4)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(fill)
        painter.drawRoundedRect(track, radius, radius)
        knob_size = TRACK_HEIGHT - 2 * KNOB_MARGIN
        x = track.right() - KNOB_MARGIN - knob_size if on else track.left() + KNOB_MARGIN
        if self.layoutDirection() is Qt.LayoutDirection.RightToLeft:
            x = track.left() + track.right() - x - knob_size
        knob = QColor("#FFFFFF")
        if not enabled:
            knob.setAlphaF(0.75 if not dark else 0.5)
        painter.setBrush(knob)
        painter.drawEllipse(QRectF(x, track.top() + KNOB_MARGIN, knob_size, knob_size))
        if self.hasFocus():
            ring = QColor(c.accent)
            ring.setAlphaF(0.55)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.setPen(QPen(ring, 2))
            painter.drawRoundedRect(track.adjusted(-2, -2, 2, 2), radius + 2, radius + 2)
        if self.text():
            painter.setPen(c.text if enabled else c.muted)
            painter.setFont(self.font())
            if self.layoutDirection() is Qt.LayoutDirection.RightToLeft:
                area = QRectF(0, 0, track.left() - SPACING, self.height())
                align = Qt.AlignmentFlag.AlignRight
            else:
                area = QRectF(track.right() + SPACING, 0, self.width(), self.height())
                align = Qt.AlignmentFlag.AlignLeft
            painter.drawText(area, int(align | Qt.AlignmentFlag.AlignVCenter), self.text())
        painter.end()
