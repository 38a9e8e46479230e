"""A contact's safety number: 60 digits, a QR code, "Mark as verified".

Both people see the same 60 digits (12 groups of 5, in a monospace grid)
when no one is in the middle; they compare them in person or over a
channel they trust, or scan each other's QR code, and then mark the
contact verified. When the contact's keys change after that, the widget
says so plainly and offers to verify again.
"""

from __future__ import annotations

import asyncio
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QLayout, QVBoxLayout, QWidget

from messenger.client import MessengerClient, SafetyNumberView
from ui.bridge import Bridge
from ui.qr import qr_pixmap
from ui.tasks import spawn
from ui.theme import colors, is_dark, notifier
from ui.views.onboarding import button, error_label, label, show_error

QR_SIZE = 168
GROUPS_PER_ROW = 4

EXPLAIN = (
    "Compare these numbers with the ones on your contact's screen, in person or on a "
    "call you trust, or scan their code. If they match, nobody is in the middle."
)
CHANGED = (
    "Their safety number changed since you verified it: they may have reinstalled the "
    "app, or someone may be in the middle. Compare it again."
)
VERIFIED = "✓ Verified"


def mono_style() -> str:
    """The digits' style: the system's monospace font (the app stylesheet sets Inter)."""
    family = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont).family()
    return f'font-family: "{family}", monospace; font-size: 18px; letter-spacing: 1px;'


class SafetyNumberWidget(QWidget):
    """The number, its QR code and the verify button; :attr:`verified` on success."""

    verified = Signal(str)  # account id
    loaded = Signal()

    def __init__(
        self,
        client: MessengerClient,
        account_id: str,
        parent: QWidget | None = None,
        *,
        bridge: Bridge | None = None,
    ) -> None:
        """With ``bridge``, a change of the contact's keys shows at once."""
        super().__init__(parent)
        self.setAccessibleName("Safety number")
        self._client = client
        self._account_id = account_id
        self._task: asyncio.Task[Any] | None = None
        self.view: SafetyNumberView | None = None

        layout = QVBoxLayout(self)
        layout.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(12)
        layout.addWidget(label("Safety number", "subtitle"))
        layout.addWidget(label(EXPLAIN, "caption"))
        row = QHBoxLayout()
        row.setSpacing(20)
        self.grid = QGridLayout()
        self.grid.setHorizontalSpacing(20)
        self.grid.setVerticalSpacing(10)
        self.digits: list[QLabel] = []
        style = mono_style()
        for index in range(12):
            cell = QLabel("·····")
            cell.setStyleSheet(style)
            cell.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.grid.addWidget(cell, index // GROUPS_PER_ROW, index % GROUPS_PER_ROW)
            self.digits.append(cell)
        numbers = QVBoxLayout()
        numbers.addStretch(1)
        numbers.addLayout(self.grid)
        numbers.addStretch(1)
        row.addLayout(numbers)
        row.addStretch(1)
        self.qr = QLabel()
        self.qr.setFixedSize(QR_SIZE, QR_SIZE)
        self.qr.setAccessibleName("Safety number as a QR code")
        row.addWidget(self.qr)
        layout.addLayout(row)
        self.state = label("", "muted")
        self.state.setAccessibleName("Verification state")
        layout.addWidget(self.state)
        self.error = error_label()
        layout.addWidget(self.error)
        actions = QHBoxLayout()
        self.verify_button = button("Mark as verified", "primary")
        self.verify_button.setEnabled(False)
        self.verify_button.clicked.connect(self.mark_verified)
        actions.addWidget(self.verify_button)
        actions.addStretch(1)
        layout.addLayout(actions)
        if bridge is not None:
            bridge.contacts_changed.connect(self._contacts_changed)
        notifier().changed.connect(self._theme_changed)
        self.refresh()

    def _theme_changed(self, _dark: bool) -> None:
        if self.view is not None:
            self._show(self.view)

    def _contacts_changed(self, account_ids: list[str]) -> None:
        if self._account_id in account_ids and (self._task is None or self._task.done()):
            self.refresh()

    def refresh(self) -> None:
        self._task = spawn(
            self._client.safety_number(self._account_id),
            on_done=self._show,
            on_error=self._failed,
        )

    def mark_verified(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self.verify_button.setEnabled(False)
        self._task = spawn(
            self._client.mark_verified(self._account_id),
            on_done=self._marked,
            on_error=self._failed,
        )

    def _marked(self, view: SafetyNumberView) -> None:
        self._show(view)
        self.verified.emit(self._account_id)

    def _show(self, view: SafetyNumberView) -> None:
        self.view = view
        show_error(self.error, None)
        groups = view.number.groups
        for cell, group in zip(self.digits, groups, strict=True):
            cell.setText(group)
        spoken = ", ".join(groups)
        self.setAccessibleDescription(f"Safety number: {spoken}")
        self.qr.setPixmap(
            qr_pixmap(view.number.digits, QR_SIZE, is_dark(), ratio=self.devicePixelRatioF())
        )
        if view.verified:
            self.state.setText(VERIFIED)
            self.state.setStyleSheet(f"color: {colors().accent.name()}; font-weight: 600;")
            self.verify_button.hide()
        else:
            self.state.setText(CHANGED if view.changed else "Not verified yet.")
            self.state.setStyleSheet(f"color: {colors().danger.name()};" if view.changed else "")
            self.verify_button.show()
            self.verify_button.setEnabled(True)
        self.loaded.emit()

    def _failed(self, sentence: str) -> None:
        self._task = None  # its traceback refers to this widget: no cycle
        show_error(self.error, sentence)
        self.verify_button.setEnabled(self.view is not None and not self.view.verified)
        self.loaded.emit()

    def digits_text(self) -> str:
        return "".join(cell.text() for cell in self.digits)

    def error_text(self) -> str:
        return self.error.text() if self.error.isVisibleTo(self) else ""
