"""Toasts: short non-modal messages at the bottom of the window.

ui-design.md, "Motion and feedback": errors and confirmations appear at
the bottom of the timeline, dismiss themselves, and carry an action where
one fits ("Retry"). The app's error sink (:func:`ui.tasks.set_error_sink`)
points here, so every :class:`~messenger.client.ClientError` reaches the
user as its ``user_message``.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from messenger.client import ClientError

from .. import tasks

#: How long a toast stays (ms); longer sentences stay longer.
BASE_MS = 4000
PER_CHAR_MS = 40
MAX_MS = 12000


class Toast(QFrame):
    """One toast over ``parent``'s bottom edge; :meth:`show_message` replaces the last."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("Toast")
        self.setAccessibleName("Notification")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(16, 10, 10, 10)
        layout.setSpacing(12)
        self._label = QLabel(self)
        self._label.setWordWrap(True)
        self._label.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self._label, 1)
        self._action = QPushButton(self)
        self._action.hide()
        self._action.clicked.connect(self._on_action)
        layout.addWidget(self._action)
        self._close = QPushButton("✕", self)
        self._close.setAccessibleName("Dismiss")
        self._close.setFixedWidth(32)
        self._close.clicked.connect(self.dismiss)
        layout.addWidget(self._close)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.dismiss)
        self._callback: Callable[[], None] | None = None
        self.history: list[str] = []
        parent.installEventFilter(self)
        self.hide()

    def text(self) -> str:
        return self._label.text()

    def show_message(
        self,
        text: str,
        *,
        action: str | None = None,
        on_action: Callable[[], None] | None = None,
    ) -> None:
        """Show ``text`` (plain), with an optional action button."""
        self.history.append(text)
        self._label.setText(text)
        self.setAccessibleDescription(text)
        self._callback = on_action
        if action and on_action is not None:
            self._action.setText(action)
            self._action.setAccessibleName(action)
            self._action.show()
        else:
            self._action.hide()
        self._place()
        self.show()
        self.raise_()
        self._timer.start(min(MAX_MS, BASE_MS + PER_CHAR_MS * len(text)))

    def dismiss(self) -> None:
        self._timer.stop()
        self.hide()

    def _on_action(self) -> None:
        callback = self._callback
        self.dismiss()
        if callback is not None:
            callback()

    def _place(self) -> None:
        parent = self.parentWidget()
        if parent is None:
            return
        width = min(520, max(240, parent.width() - 48))
        self.setFixedWidth(width)
        self.adjustSize()
        x = (parent.width() - width) // 2
        y = parent.height() - self.height() - 88
        self.move(max(8, x), max(8, y))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        resized = event.type() == QEvent.Type.Resize
        if resized and watched is self.parentWidget() and self.isVisible():
            self._place()
        return False


def report_to(widget: QWidget) -> Callable[[str], None]:
    """An error sink for actions started from ``widget``: its own window's toast.

    Several windows may run in one process (the demo opens two profiles);
    each action's sentence belongs in the window it came from. A widget
    outside a main window falls back to the app-wide sink.
    """

    def sink(sentence: str) -> None:
        show = getattr(widget.window(), "show_error", None)
        if callable(show):
            show(sentence)
        else:
            tasks.report(ClientError("reported", user_message=sentence))

    return sink
