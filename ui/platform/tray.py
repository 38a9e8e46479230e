"""The system tray icon with an unread badge, and a fake for tests.

The app works without a tray: :meth:`Tray.available` is False offscreen,
on bare Xvfb and on desktops without a status area, and then nothing is
shown and "close to tray" must not hide the only window. The badge (a red
pill with the count, "99+" above 99) is painted onto the app icon, because
tray icons have no badge of their own on Linux and Windows.
"""

from __future__ import annotations

from typing import Final

from PySide6.QtCore import QObject, QRectF, Qt, Signal
from PySide6.QtGui import QAction, QColor, QFont, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from ui import resources

__all__ = ["BADGE_COLOUR", "FakeTray", "QtTray", "Tray", "badge_icon", "badge_text"]

#: The badge's colour (white text on it has a contrast ratio above 4.5:1).
BADGE_COLOUR: Final = "#D92D20"
_ICON_SIZES: Final = (16, 22, 24, 32, 48, 64)


def badge_text(count: int) -> str:
    """What the badge says for ``count`` unread messages ("" for none)."""
    if count <= 0:
        return ""
    return "99+" if count > 99 else str(count)


def _badged_pixmap(base: QIcon, size: int, text: str) -> QPixmap:
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
    base.paint(painter, 0, 0, size, size)
    if text:
        height = max(8.0, size * 0.55)
        width = max(height, height * (0.42 + 0.3 * len(text)))
        rect = QRectF(size - width, 0, width, height)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(BADGE_COLOUR))
        painter.drawRoundedRect(rect, height / 2, height / 2)
        font = QFont()
        font.setBold(True)
        font.setPixelSize(max(6, round(height * 0.72)))
        painter.setFont(font)
        painter.setPen(QColor("#FFFFFF"))
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
    painter.end()
    return pixmap


def badge_icon(base: QIcon, count: int) -> QIcon:
    """``base`` with an unread badge for ``count`` in its top right corner."""
    text = badge_text(count)
    if not text:
        return base
    icon = QIcon()
    for size in _ICON_SIZES:
        icon.addPixmap(_badged_pixmap(base, size, text))
    return icon


class Tray(QObject):
    """A tray icon: :attr:`activated` to show the window, :attr:`quit_requested`."""

    activated = Signal()
    quit_requested = Signal()

    def available(self) -> bool:
        """Whether a tray icon is shown (else the app must keep a window)."""
        raise NotImplementedError

    def set_unread(self, count: int) -> None:
        """Show ``count`` unread messages on the icon (0 removes the badge)."""
        raise NotImplementedError

    def close(self) -> None:
        """Remove the icon (at exit)."""
        raise NotImplementedError


class QtTray(Tray):
    """:class:`QSystemTrayIcon` with an Open/Quit menu and an unread badge."""

    def __init__(self, parent: QObject | None = None, *, base: QIcon | None = None) -> None:
        super().__init__(parent)
        self._base = base if base is not None else resources.app_icon()
        self._unread = 0
        self._icon: QSystemTrayIcon | None = None
        self._menu: QMenu | None = None
        if QSystemTrayIcon.isSystemTrayAvailable():
            self._icon = QSystemTrayIcon(self._base, self)
            self._icon.setToolTip("Messenger")
            menu = QMenu()
            self._menu = menu
            open_action = QAction("Open Messenger", menu)
            open_action.triggered.connect(self.activated)
            quit_action = QAction("Quit", menu)
            quit_action.triggered.connect(self.quit_requested)
            menu.addAction(open_action)
            menu.addSeparator()
            menu.addAction(quit_action)
            self._icon.setContextMenu(menu)
            self._icon.activated.connect(self._on_activated)
            self._icon.show()

    def available(self) -> bool:
        return self._icon is not None

    @property
    def unread(self) -> int:
        return self._unread

    def set_unread(self, count: int) -> None:
        count = max(0, count)
        if count == self._unread:
            return
        self._unread = count
        if self._icon is not None:
            self._icon.setIcon(badge_icon(self._base, count))
            self._icon.setToolTip(
                f"Messenger: {count} unread" if count else "Messenger",
            )

    def _on_activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (
            QSystemTrayIcon.ActivationReason.Trigger,
            QSystemTrayIcon.ActivationReason.DoubleClick,
        ):
            self.activated.emit()

    def close(self) -> None:
        if self._icon is not None:
            self._icon.hide()
            self._icon.deleteLater()
            self._icon = None
        if self._menu is not None:
            self._menu.deleteLater()
            self._menu = None


class FakeTray(Tray):
    """Records the unread count; :meth:`click` and :meth:`quit` play the user."""

    def __init__(self, parent: QObject | None = None, *, available: bool = True) -> None:
        super().__init__(parent)
        self._available = available
        self.unread = 0
        self.closed = False

    def available(self) -> bool:
        return self._available and not self.closed

    def set_unread(self, count: int) -> None:
        self.unread = max(0, count)

    def close(self) -> None:
        self.closed = True

    def click(self) -> None:
        self.activated.emit()

    def quit(self) -> None:
        self.quit_requested.emit()
