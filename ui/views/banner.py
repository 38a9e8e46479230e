"""The connection banner: a thin strip at the top of the window.

ui-design.md: offline or reconnecting shows a thin banner, never a modal;
a server that refuses us shows its sentence in the danger tint. Online
hides it. An account taken over by a restored copy elsewhere
(``ConnectionState.REPLACED``) shows that for good: the client stops and
later states cannot hide it. So does a device removed from its account on
another device (``ConnectionState.REMOVED``, docs/devices.md §5): no retry,
nothing hides it. The sentence comes from the client
(:class:`~messenger.client.ConnectionStateChanged` ``error``).
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QWidget

from messenger.client import ConnectionState

OFFLINE = "You're offline. Messages will be sent when the connection is back."
CONNECTING = "Connecting…"
REPLACED = "This account was restored on another computer. This copy no longer receives messages."
REMOVED = (
    "This device was removed from your account on another device. It no longer receives "
    "messages; the messages already here stay readable."
)
#: States the client never leaves: the banner stays for good.
FINAL_STATES = (ConnectionState.REPLACED, ConnectionState.REMOVED)


class ConnectionBanner(QFrame):
    """Says why messages may not go out right now; hidden when online."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Banner")
        self.setAccessibleName("Connection status")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(16, 6, 16, 6)
        self._label = QLabel(self)
        self._label.setWordWrap(True)
        self._label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self._label, 1)
        self.state: ConnectionState | None = None
        self.hide()

    def text(self) -> str:
        return self._label.text()

    def set_state(self, state: ConnectionState, error: str | None = None) -> None:
        if self.state in FINAL_STATES:
            return  # final: this copy stopped for good
        self.state = state
        if state is ConnectionState.ONLINE:
            self.hide()
            return
        if state is ConnectionState.REPLACED:
            text, kind = error or REPLACED, "error"
        elif state is ConnectionState.REMOVED:
            text, kind = error or REMOVED, "error"
        elif state is ConnectionState.CONNECTING:
            text, kind = CONNECTING, "warning"
        elif error:
            text, kind = error, "error"
        else:
            text, kind = OFFLINE, "warning"
        self._label.setText(text)
        self.setAccessibleDescription(text)
        self.setProperty("state", kind)
        self.style().unpolish(self)
        self.style().polish(self)
        self.show()
