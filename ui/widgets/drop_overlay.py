"""The highlight shown while files are dragged over a conversation: "Drop to send".

docs/attachments.md §6. It covers its parent (the conversation pane),
lets every mouse event through, and paints a dashed, accent-tinted frame
with one line in the middle, as Signal Desktop and Element do.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

from .. import theme

DROP_TEXT = "Drop to send"
DROP_HINT = "Files are end-to-end encrypted before they leave this computer"


class DropOverlay(QWidget):
    """A translucent frame over ``parent`` while a drag with files is over it."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("DropOverlay")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents, True)
        self.setAccessibleName(DROP_TEXT)
        self._host = parent
        parent.installEventFilter(self)
        self.setGeometry(parent.rect())
        self.hide()

    def show_over(self) -> None:
        self.setGeometry(self._host.rect())
        self.raise_()
        self.show()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._host and event.type() == QEvent.Type.Resize:
            self.setGeometry(self._host.rect())
        return False

    def paintEvent(self, event: QPaintEvent) -> None:
        c = theme.colors()
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        wash = QColor(c.window)
        wash.setAlphaF(0.86)
        painter.fillRect(self.rect(), wash)
        frame = QRectF(self.rect()).adjusted(16, 16, -16, -16)
        tint = QColor(c.accent)
        tint.setAlphaF(0.08)
        pen = QPen(c.accent, 2, Qt.PenStyle.DashLine)
        pen.setDashPattern([6, 4])
        painter.setPen(pen)
        painter.setBrush(tint)
        painter.drawRoundedRect(frame, 18, 18)
        title = theme.font(20, QFont.Weight.DemiBold)
        painter.setFont(title)
        painter.setPen(c.accent if not theme.is_dark() else c.link)
        middle = frame.center().y()
        painter.drawText(
            QRectF(frame.left(), middle - 30, frame.width(), 30),
            Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom,
            DROP_TEXT,
        )
        painter.setFont(theme.font(theme.PREVIEW_PX))
        painter.setPen(c.muted)
        painter.drawText(
            QRectF(frame.left(), middle + 6, frame.width(), 22),
            Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
            DROP_HINT,
        )
        painter.end()
