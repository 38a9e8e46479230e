"""The app lock: covers the window after the idle time set in Settings.

The messages stay out of sight until the recovery passphrase is typed
again; :meth:`MessengerClient.check_passphrase` checks it in a worker thread
(scrypt), so the window never freezes. Syncing goes on underneath.
"""

from __future__ import annotations

import asyncio
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QLayout, QVBoxLayout, QWidget

from messenger.client import MessengerClient
from ui.tasks import spawn
from ui.views.onboarding import (
    Card,
    busy_bar,
    button,
    centred_scroll,
    error_label,
    line_edit,
    show_error,
)

WRONG = "That is not the recovery passphrase. Try again."


class LockScreen(QWidget):
    """An opaque cover over its parent; :attr:`unlocked` once the passphrase is right."""

    unlocked = Signal()

    def __init__(self, client: MessengerClient, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Messenger is locked")
        self.setAutoFillBackground(True)
        self._client = client
        self._task: asyncio.Task[Any] | None = None
        card = self.card = Card(
            "Messenger is locked", "Enter your recovery passphrase to see your messages."
        )
        self.passphrase = line_edit("Recovery passphrase", "Recovery passphrase", secret=True)
        self.passphrase.returnPressed.connect(self.submit)
        card.body.addWidget(self.passphrase)
        self.error = error_label()
        card.body.addWidget(self.error)
        self.busy = busy_bar("Checking the passphrase")
        self.busy.hide()
        card.body.addWidget(self.busy)
        self.unlock_button = button("Unlock", "primary")
        self.unlock_button.clicked.connect(self.submit)
        card.buttons(self.unlock_button)
        column = QVBoxLayout()
        column.addWidget(card)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        outer.addWidget(centred_scroll(column, self))
        if parent is not None:
            parent.installEventFilter(self)
            self.setGeometry(parent.rect())

    def lock(self) -> None:
        """Cover the parent and take the keyboard focus."""
        parent = self.parentWidget()
        if parent is not None:
            self.setGeometry(parent.rect())
        self.passphrase.clear()
        show_error(self.error, None)
        self.show()
        if parent is not None:
            self.raise_()
        self.passphrase.setFocus(Qt.FocusReason.OtherFocusReason)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        parent = self.parentWidget()
        if parent is not None and watched is parent and event.type() == QEvent.Type.Resize:
            self.setGeometry(parent.rect())
        return False

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), self.palette().color(QPalette.ColorRole.Window))
        painter.end()

    def submit(self) -> None:
        if self._task is not None and not self._task.done():
            return
        if not self.passphrase.text():
            show_error(self.error, "Enter your recovery passphrase.")
            return
        show_error(self.error, None)
        self._busy(True)
        self._task = spawn(
            self._client.check_passphrase(self.passphrase.text()),
            on_done=self._checked,
            on_error=self._failed,
        )

    def _checked(self, right: bool) -> None:
        self._busy(False)
        if right:
            self.passphrase.clear()
            self.hide()
            self.unlocked.emit()
        else:
            self._failed(WRONG)

    def _failed(self, sentence: str) -> None:
        self._task = None  # its traceback refers to this widget: no cycle
        self._busy(False)
        show_error(self.error, sentence)
        self.passphrase.selectAll()
        self.passphrase.setFocus()

    def _busy(self, busy: bool) -> None:
        self.busy.setVisible(busy)
        self.unlock_button.setEnabled(not busy)
        self.passphrase.setEnabled(not busy)

    def error_text(self) -> str:
        return self.error.text() if self.error.isVisibleTo(self) else ""
