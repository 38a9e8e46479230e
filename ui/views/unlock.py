"""Unlock a profile with its recovery passphrase.

Shown when :meth:`MessengerClient.open` raised
:class:`~messenger.client.PassphraseRequiredError`: the OS keyring is
unavailable, holds no key for this profile, or holds a stale one. A wrong
passphrase gets the client's sentence and another try, never a crash
(issue 10, "Unlock"). "Keep me unlocked on this computer" puts the key into
the keyring afterwards (:meth:`MessengerClient.remember_key`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLayout, QVBoxLayout, QWidget

from messenger.client import (
    KeyringProblem,
    MessengerClient,
    Profile,
    WrongPassphraseError,
)
from ui.tasks import spawn
from ui.views.onboarding import (
    Card,
    busy_bar,
    button,
    centred_scroll,
    error_label,
    label,
    line_edit,
    show_error,
)
from ui.widgets.avatar import Avatar
from ui.widgets.toggle import ToggleSwitch

REASONS = {
    KeyringProblem.UNAVAILABLE: "There is no system keyring on this computer, so Messenger "
    "needs your recovery passphrase to open your messages.",
    KeyringProblem.MISSING: "The system keyring does not hold this profile's key, so "
    "Messenger needs your recovery passphrase to open your messages.",
    KeyringProblem.STALE: "The key in the system keyring no longer opens this profile, so "
    "Messenger needs your recovery passphrase to open your messages.",
}
DEFAULT_REASON = "Enter your recovery passphrase to open your messages."


class UnlockView(QWidget):
    """A centred card asking for the recovery passphrase; :attr:`unlocked` has the client."""

    unlocked = Signal(object)  # MessengerClient

    def __init__(
        self,
        profile: Profile,
        data_dir: Path | None,
        parent: QWidget | None = None,
        *,
        reason: KeyringProblem | None = None,
    ) -> None:
        super().__init__(parent)
        self.setAccessibleName("Unlock Messenger")
        self._profile = profile
        self._data_dir = data_dir
        self._task: asyncio.Task[Any] | None = None
        self.attempts = 0

        card = self.card = Card("Unlock Messenger")
        top = QHBoxLayout()
        top.setSpacing(12)
        top.addWidget(Avatar(profile.name, profile.id, 44))
        who = QVBoxLayout()
        who.setSpacing(0)
        who.addWidget(label(profile.name, "subtitle"))
        who.addWidget(label("Profile on this computer", "caption"))
        top.addLayout(who, 1)
        card.body.insertLayout(1, top)
        card.body.addWidget(
            label(REASONS.get(reason, DEFAULT_REASON) if reason else DEFAULT_REASON, "muted")
        )
        self.passphrase = line_edit("Recovery passphrase", "Recovery passphrase", secret=True)
        self.passphrase.returnPressed.connect(self.submit)
        card.body.addWidget(self.passphrase)
        self.remember = ToggleSwitch("Keep me unlocked on this computer")
        self.remember.setAccessibleName("Keep me unlocked on this computer")
        self.remember.setToolTip(
            "Puts the key into the system keyring, so the app opens without the passphrase."
        )
        self.remember.setVisible(reason is not KeyringProblem.UNAVAILABLE)
        card.body.addWidget(self.remember)
        self.error = error_label()
        card.body.addWidget(self.error)
        card.body.addWidget(
            label(
                "Forgot it? Nobody can reset it. The messages on this computer stay locked; "
                "you can still restore a backup into a new profile.",
                "caption",
            )
        )
        self.busy = busy_bar("Unlocking")
        self.busy.hide()
        card.body.addWidget(self.busy)
        self.unlock_button = button("Unlock", "primary")
        self.unlock_button.setDefault(True)
        self.unlock_button.clicked.connect(self.submit)
        card.buttons(self.unlock_button)

        column = QVBoxLayout()
        column.addWidget(card)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        outer.addWidget(centred_scroll(column, self))
        self.passphrase.setFocus(Qt.FocusReason.OtherFocusReason)

    def submit(self) -> None:
        if self._task is not None and not self._task.done():
            return
        passphrase = self.passphrase.text()
        if not passphrase:
            show_error(self.error, "Enter your recovery passphrase.")
            return
        show_error(self.error, None)
        self._busy(True)
        self._task = spawn(
            self._open(passphrase, self.remember.isChecked() and self.remember.isVisible()),
            on_done=self._opened,
            on_error=self._failed,
        )

    async def _open(self, passphrase: str, remember: bool) -> MessengerClient:
        client = await MessengerClient.open(self._profile, passphrase, data_dir=self._data_dir)
        if remember:
            try:
                await client.remember_key()
            except BaseException:
                await client.close()
                raise
        return client

    def _opened(self, client: MessengerClient) -> None:
        self._busy(False)
        self.passphrase.clear()
        self.unlocked.emit(client)

    def _failed(self, sentence: str) -> None:
        self._busy(False)
        self.attempts += 1
        error = self._take_error()
        if isinstance(error, WrongPassphraseError):
            sentence = f"{sentence} Try again."
        show_error(self.error, sentence)
        self.passphrase.selectAll()
        self.passphrase.setFocus()

    def _take_error(self) -> BaseException | None:
        """The failed task's error; the task is dropped (its traceback refers to self)."""
        task, self._task = self._task, None
        return None if task is None or task.cancelled() else task.exception()

    def _busy(self, busy: bool) -> None:
        self.busy.setVisible(busy)
        self.unlock_button.setEnabled(not busy)
        self.passphrase.setEnabled(not busy)
        self.remember.setEnabled(not busy)

    def error_text(self) -> str:
        return self.error.text() if self.error.isVisibleTo(self) else ""
