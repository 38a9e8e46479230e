"""The image viewer: one image over a dark backdrop, fit to the window, zoomable.

docs/attachments.md §6. Clicking an inline image (or Enter on it) opens
the viewer over the whole window, as in Signal Desktop: the thumbnail at
once, then the full image decoded off the UI thread with the same limits
as the timeline (:func:`ui.widgets.image_cache.decode_image`). It works
from the keyboard: Esc closes, + and - zoom, 0 fits, Ctrl+S saves, the
arrow keys pan a zoomed image; the mouse wheel zooms and a drag pans.
The top bar's buttons (zoom out, zoom in, save, close) are reachable with
Tab and have accessible names.
"""

from __future__ import annotations

import asyncio

from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPixmap,
    QWheelEvent,
)
from PySide6.QtWidgets import QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget

from messenger.client import ClientError, MessageView, format_size

from .. import tasks
from ..models.message_list import display_name
from ..widgets.icons import themed_icon
from ..widgets.image_cache import Loader, decode_image

#: The largest the viewer decodes an image to (each side, px).
VIEWER_MAX = 4096
ZOOM_STEP = 1.25
MIN_ZOOM = 1.0
MAX_ZOOM = 8.0
PAN_STEP = 60.0
UNREADABLE = "This image cannot be shown"


class ImageCanvas(QWidget):
    """Paints the image fitted, times :attr:`zoom`, shifted by :attr:`pan`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pixmap: QPixmap | None = None
        self.zoom = 1.0
        self.pan = QPointF(0, 0)
        self.message = ""
        self._drag: QPointF | None = None
        self.setMouseTracking(False)

    def fitted(self) -> QRectF:
        """Where the image is drawn now."""
        if self.pixmap is None or self.pixmap.isNull():
            return QRectF()
        area = QRectF(self.rect()).adjusted(24, 8, -24, -24)
        w, h = self.pixmap.width(), self.pixmap.height()
        scale = min(area.width() / w, area.height() / h, 1.0) * self.zoom
        size = QSize(round(w * scale), round(h * scale))
        center = area.center() + self.pan
        width, height = size.width(), size.height()
        return QRectF(center.x() - width / 2, center.y() - height / 2, width, height)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        if self.pixmap is not None and not self.pixmap.isNull():
            painter.drawPixmap(self.fitted(), self.pixmap, QRectF(self.pixmap.rect()))
        elif self.message:
            painter.setPen(QColor("#E8EAED"))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.message)
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.zoom > 1.0:
            self._drag = event.position()
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._drag is not None:
            self.pan += event.position() - self._drag
            self._drag = event.position()
            self.update()
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._drag = None
        super().mouseReleaseEvent(event)


class ImageViewer(QWidget):
    """A full-window overlay showing one image message; :attr:`closed` when it goes."""

    closed = Signal()
    #: "Save" was chosen: the message view (the pane asks where).
    save_requested = Signal(object)

    def __init__(
        self,
        host: QWidget,
        view: MessageView,
        loader: Loader,
        thumbnail: QPixmap | None = None,
    ) -> None:
        super().__init__(host)
        self.setObjectName("ImageViewer")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(
            "#ImageViewer { background: rgba(8, 9, 11, 235); }"
            "#ImageViewer QLabel { color: #E8EAED; }"
            "#ImageViewer QToolButton { border-radius: 18px; }"
            "#ImageViewer QToolButton:hover { background: rgba(255, 255, 255, 28); }"
            "#ImageViewer QToolButton:focus { border: 2px solid rgba(138, 180, 248, 200); }"
        )
        self.view = view
        attachment = view.attachment
        name = display_name(attachment.name) if attachment is not None else "Image"
        self.setAccessibleName(f"Image viewer: {name}")
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self._host = host
        self._loader = loader
        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 10, 16, 0)
        layout.setSpacing(4)
        bar = QHBoxLayout()
        bar.setSpacing(6)
        texts = QVBoxLayout()
        texts.setSpacing(0)
        self.title = QLabel(name, self)
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        self.title.setStyleSheet("font-weight: 600;")
        texts.addWidget(self.title)
        detail = view.sender_name
        if attachment is not None:
            detail = f"{view.sender_name} · {format_size(attachment.size)}"
        self.detail = QLabel(detail, self)
        self.detail.setTextFormat(Qt.TextFormat.PlainText)
        self.detail.setStyleSheet("font-size: 12px; color: #9AA0A6;")
        texts.addWidget(self.detail)
        bar.addLayout(texts, 1)
        ink = "#E8EAED"
        self.zoom_out_button = self._button("zoom-out", "Zoom out (-)", ink)
        self.zoom_out_button.clicked.connect(self.zoom_out)
        self.zoom_in_button = self._button("zoom-in", "Zoom in (+)", ink)
        self.zoom_in_button.clicked.connect(self.zoom_in)
        self.save_button = self._button("save", "Save (Ctrl+S)", ink)
        self.save_button.clicked.connect(self.save)
        self.close_button = self._button("close", "Close (Esc)", ink)
        self.close_button.clicked.connect(self.close_viewer)
        for button in (
            self.zoom_out_button,
            self.zoom_in_button,
            self.save_button,
            self.close_button,
        ):
            bar.addWidget(button)
        layout.addLayout(bar)
        self.canvas = ImageCanvas(self)
        self.canvas.pixmap = thumbnail
        layout.addWidget(self.canvas, 1)
        self.save_button.setAccessibleName("Save image")
        self.zoom_in_button.setAccessibleName("Zoom in")
        self.zoom_out_button.setAccessibleName("Zoom out")
        self.close_button.setAccessibleName("Close image viewer")
        self.full_loaded = False
        host.installEventFilter(self)
        self.setGeometry(host.rect())
        self._task: asyncio.Task[None] | None = tasks.spawn(
            self._load(), on_error=lambda _sentence: None
        )

    def _button(self, icon: str, tip: str, ink: str) -> QToolButton:
        button = QToolButton(self)
        button.setIcon(themed_icon(icon, ink))
        button.setIconSize(QSize(20, 20))
        button.setFixedSize(36, 36)
        button.setToolTip(tip)
        button.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        button.installEventFilter(self)
        return button

    async def _load(self) -> None:
        try:
            data = await self._loader(self.view.id)
        except ClientError as error:
            if self.canvas.pixmap is None:
                self.canvas.message = error.user_message
                self.canvas.update()
            return
        image = await asyncio.to_thread(decode_image, data, QSize(VIEWER_MAX, VIEWER_MAX))
        del data
        if image is None:
            self.canvas.pixmap = None
            self.canvas.message = UNREADABLE
        else:
            self.canvas.pixmap = QPixmap.fromImage(image)
            self.full_loaded = True
        self.canvas.update()

    # -- zoom, pan, keys --------------------------------------------------------------------

    def set_zoom(self, zoom: float) -> None:
        self.canvas.zoom = max(MIN_ZOOM, min(MAX_ZOOM, zoom))
        if self.canvas.zoom == MIN_ZOOM:
            self.canvas.pan = QPointF(0, 0)
        self.canvas.update()

    def zoom_in(self) -> None:
        self.set_zoom(self.canvas.zoom * ZOOM_STEP)

    def zoom_out(self) -> None:
        self.set_zoom(self.canvas.zoom / ZOOM_STEP)

    def save(self) -> None:
        self.save_requested.emit(self.view)

    def close_viewer(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None
        self._host.removeEventFilter(self)
        self.hide()
        self.closed.emit()
        self.deleteLater()

    def event(self, event: QEvent) -> bool:
        # The window's own shortcuts (Esc, Ctrl+S...) must not take the viewer's keys.
        if event.type() == QEvent.Type.ShortcutOverride and isinstance(event, QKeyEvent):
            if event.key() == Qt.Key.Key_Escape or event.text() in ("+", "=", "-", "0"):
                event.accept()
                return True
            if event.matches(QKeySequence.StandardKey.Save):
                event.accept()
                return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        text = event.text()
        if key == Qt.Key.Key_Escape:
            self.close_viewer()
        elif text in ("+", "="):
            self.zoom_in()
        elif text == "-":
            self.zoom_out()
        elif text == "0":
            self.set_zoom(1.0)
        elif event.matches(QKeySequence.StandardKey.Save):
            self.save()
        elif key in (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Up, Qt.Key.Key_Down):
            if self.canvas.zoom > 1.0:
                shift = {
                    Qt.Key.Key_Left: QPointF(PAN_STEP, 0),
                    Qt.Key.Key_Right: QPointF(-PAN_STEP, 0),
                    Qt.Key.Key_Up: QPointF(0, PAN_STEP),
                    Qt.Key.Key_Down: QPointF(0, -PAN_STEP),
                }
                self.canvas.pan += shift[Qt.Key(key)]
                self.canvas.update()
        else:
            super().keyPressEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120
        if steps:
            self.set_zoom(self.canvas.zoom * ZOOM_STEP**steps)
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        # a click on the backdrop (outside the image) closes, as in Signal
        pos = self.canvas.mapFrom(self, event.position().toPoint())
        inside_canvas = self.canvas.rect().contains(pos)
        outside_image = inside_canvas and not self.canvas.fitted().contains(QPointF(pos))
        left = event.button() == Qt.MouseButton.LeftButton
        if outside_image and self.canvas.zoom == 1.0 and left:
            self.close_viewer()
            return
        super().mouseReleaseEvent(event)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._host and event.type() == QEvent.Type.Resize:
            self.setGeometry(self._host.rect())
        elif (
            watched is not self._host
            and event.type() == QEvent.Type.ShortcutOverride
            and isinstance(event, QKeyEvent)
            and event.key() == Qt.Key.Key_Escape
        ):
            # Esc on a focused button closes the viewer, not what the window binds it to
            event.accept()
            return True
        return False
