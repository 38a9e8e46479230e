"""The strip over a conversation that cannot go on, with "Start again".

A member's change that nobody else can read, or a wrong send token, leaves
a group where the others cannot follow (``messenger.client`` marks it:
``ConversationView.stuck``). Nothing sent there gets through; the strip
says so in one sentence and offers the one way out: start the
conversation again with the same people (``restart_conversation``), which
keeps its history. It shows only while the view is stuck.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from messenger.client import ConversationView

TEXT = (
    "This conversation can't go on: a change sent to it can't be read here. "
    "Start it again to keep talking; its messages stay."
)


class RestartBar(QFrame):
    """Says that the open conversation cannot go on; its button starts it again."""

    restart_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("RestartBar")
        self.setAccessibleName("This conversation can't go on")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(16, 8, 12, 8)
        layout.setSpacing(12)
        self.label = QLabel(TEXT, self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.label, 1)
        self.button = QPushButton("Start again", self)
        self.button.setProperty("class", "primary")
        self.button.setAccessibleName("Start this conversation again")
        self.button.setToolTip("Make a new group with the same people; the history stays")
        self.button.setCursor(Qt.CursorShape.PointingHandCursor)
        self.button.clicked.connect(self._clicked)
        layout.addWidget(self.button)
        self._conversation_id: int | None = None
        self.hide()

    def set_view(self, view: ConversationView) -> None:
        """Shown for a stuck conversation this client is still in; hidden otherwise."""
        showing = view.stuck and view.active
        if view.id != self._conversation_id or not showing:
            self.button.setEnabled(True)
        self._conversation_id = view.id
        self.setVisible(showing)

    def done(self) -> None:
        """The request ended (started again, or refused with a sentence): the button is back."""
        self.button.setEnabled(True)

    def _clicked(self) -> None:
        if self._conversation_id is not None:
            self.button.setEnabled(False)  # one request at a time
            self.restart_requested.emit(self._conversation_id)
