"""Contacts: add one, share your own invite, see one's details.

* :class:`AddContactDialog` -- by ``handle@server`` (or a bare handle on
  this server) or an invite link; the client checks that the account exists.
* :class:`InviteDialog` -- this account's address and invite link, with a
  copy button and a QR code (segno) to scan from another screen.
* :class:`ContactDetailsDialog` -- name (rename), address, the safety number
  with "Mark as verified", block/unblock, and "Message".

Each action awaits one client coroutine through :func:`ui.tasks.spawn`;
errors appear inline as the client's sentence.
"""

from __future__ import annotations

import asyncio
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QLayout,
    QVBoxLayout,
    QWidget,
)

from messenger.client import AccountInfo, Contact, Conversation, MessengerClient
from ui.bridge import Bridge
from ui.qr import qr_pixmap
from ui.tasks import spawn
from ui.theme import is_dark, notifier
from ui.views.onboarding import (
    busy_bar,
    button,
    error_label,
    label,
    line_edit,
    show_error,
)
from ui.views.safety_number import VERIFIED, SafetyNumberWidget
from ui.widgets.avatar import Avatar

QR_SIZE = 200


def find_bridge(parent: QWidget | None, bridge: Bridge | None = None) -> Bridge | None:
    """``bridge``, or the one the parent's window holds (the main window's ``bridge``)."""
    if bridge is not None or parent is None:
        return bridge
    found = getattr(parent.window(), "bridge", None)
    return found if isinstance(found, Bridge) else None


def contact_name(contact: Contact) -> str:
    """How a contact is called: their chosen name, their handle, or a short id."""
    return contact.display_name or contact.handle or contact.account_id[:8]


class Dialog(QDialog):
    """A dialog with a title, a body, an inline error and a button row.

    The layout never changes the window's size limits (a growing error line
    must not resize a shown window), so the minimum width is fixed here.
    """

    def __init__(self, title: str, parent: QWidget | None = None, *, width: int = 440) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setAccessibleName(title)
        self.setMinimumWidth(width)
        self.outer = QVBoxLayout(self)
        self.outer.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        self.outer.setContentsMargins(24, 20, 24, 20)
        self.outer.setSpacing(12)
        self.heading = label(title, "title")
        self.outer.addWidget(self.heading)
        self.body = QVBoxLayout()
        self.body.setSpacing(10)
        self.outer.addLayout(self.body)
        self.error = error_label()
        self.busy = busy_bar(f"{title}: working")
        self.busy.hide()
        self.outer.addStretch(1)
        self.outer.addWidget(self.error)
        self.outer.addWidget(self.busy)
        self.button_row = QHBoxLayout()
        self.button_row.setSpacing(8)
        self.button_row.addStretch(1)
        self.outer.addLayout(self.button_row)
        self._task: asyncio.Task[Any] | None = None

    def add_buttons(self, *buttons: QWidget) -> None:
        for widget in buttons:
            self.button_row.addWidget(widget)

    def working(self) -> bool:
        return self._task is not None and not self._task.done()

    def run(self, coro: Any, on_done: Any) -> None:
        """Await ``coro`` with the busy bar shown; errors go to the inline line."""
        show_error(self.error, None)
        self.busy.show()

        def done(result: Any) -> None:
            self.busy.hide()
            on_done(result)

        def failed(sentence: str) -> None:
            self._task = None  # its traceback refers to this dialog: no cycle
            self.busy.hide()
            show_error(self.error, sentence)

        self._task = spawn(coro, on_done=done, on_error=failed)

    def error_text(self) -> str:
        return self.error.text() if self.error.isVisibleTo(self) else ""

    def reject(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        super().reject()


class AddContactDialog(Dialog):
    """Add a contact by address or invite link; :attr:`added` has the account id."""

    added = Signal(str)

    def __init__(self, client: MessengerClient, parent: QWidget | None = None) -> None:
        super().__init__("Add a contact", parent)
        self._client = client
        self.body.addWidget(
            label(
                "Paste their address (like alice@chat.example.org) or the invite link "
                "they sent you.",
                "muted",
            )
        )
        self.address = line_edit("Address or invite link", "handle@server or invite link")
        self.address.returnPressed.connect(self.submit)
        self.body.addWidget(self.address)
        self.name = line_edit("Name (optional)", "Name (optional)")
        self.name.returnPressed.connect(self.submit)
        self.body.addWidget(self.name)
        self.cancel_button = button("Cancel")
        self.cancel_button.clicked.connect(self.reject)
        self.add_button = button("Add contact", "primary")
        self.add_button.setDefault(True)
        self.add_button.clicked.connect(self.submit)
        self.add_buttons(self.cancel_button, self.add_button)
        self.address.setFocus()

    def submit(self) -> None:
        if self.working():
            return
        address = self.address.text().strip()
        if not address:
            show_error(self.error, "Enter an address or paste an invite link.")
            return
        self.add_button.setEnabled(False)
        self.run(self._add(address, self.name.text().strip()), self._added)
        assert self._task is not None
        self._task.add_done_callback(lambda _: self.add_button.setEnabled(True))

    async def _add(self, address: str, name: str) -> Contact:
        contact = await self._client.add_contact(address, check=True)
        if name:
            contact = await self._client.rename_contact(contact.account_id, name)
        return contact

    def _added(self, contact: Contact) -> None:
        self.added.emit(contact.account_id)
        self.accept()


class InviteDialog(Dialog):
    """This account's address, invite link (copy) and QR code."""

    def __init__(self, client: MessengerClient, parent: QWidget | None = None) -> None:
        super().__init__("Invite someone", parent, width=460)
        self._client = client
        self.body.addWidget(
            label(
                "Send this link to someone, or let them scan the code: their app adds "
                "you as a contact, and they can start chats with you. Share it with "
                "people you want to hear from.",
                "muted",
            )
        )
        self.address = label("", "subtitle")
        self.address.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.address.setAccessibleName("Your address")
        self.address.hide()
        self.body.addWidget(self.address)
        self.qr = QLabel()
        self.qr.setFixedSize(QR_SIZE, QR_SIZE)
        self.qr.setAccessibleName("Your invite link as a QR code")
        qr_row = QHBoxLayout()
        qr_row.addStretch(1)
        qr_row.addWidget(self.qr)
        qr_row.addStretch(1)
        self.body.addLayout(qr_row)
        link_row = QHBoxLayout()
        self.link = line_edit("Your invite link")
        self.link.setReadOnly(True)
        self.copy_button = button("Copy", accessible="Copy the invite link")
        self.copy_button.clicked.connect(self.copy)
        link_row.addWidget(self.link, 1)
        link_row.addWidget(self.copy_button)
        self.body.addLayout(link_row)
        close = button("Done", "primary")
        close.setDefault(True)
        close.clicked.connect(self.accept)
        self.add_buttons(close)
        self._info: AccountInfo | None = None
        notifier().changed.connect(self._theme_changed)
        self.run(client.account(), self._show)

    def _show(self, info: AccountInfo | None) -> None:
        if info is None:
            show_error(self.error, "This profile has no account yet.")
            return
        self._info = info
        self.link.setText(info.invite_link)
        self.link.setCursorPosition(0)
        if info.address:
            self.address.setText(info.address)
            self.address.show()
        self.qr.setPixmap(
            qr_pixmap(info.invite_link, QR_SIZE, is_dark(), ratio=self.devicePixelRatioF())
        )

    def _theme_changed(self, _dark: bool) -> None:
        if self._info is not None:
            self._show(self._info)

    def copy(self) -> None:
        if not self.link.text():
            return
        QGuiApplication.clipboard().setText(self.link.text())
        self.copy_button.setText("Copied")
        QTimer.singleShot(1500, self.copy_button, lambda: self.copy_button.setText("Copy"))


class ContactDetailsDialog(Dialog):
    """One contact: name, address, safety number, block, message."""

    open_conversation = Signal(int)
    changed = Signal(str)  # account id

    def __init__(
        self,
        client: MessengerClient,
        account_id: str,
        parent: QWidget | None = None,
        *,
        bridge: Bridge | None = None,
    ) -> None:
        """With a ``bridge`` (or a parent window that has one), changes made elsewhere show."""
        super().__init__("Contact", parent, width=560)
        bridge = find_bridge(parent, bridge)
        self._client = client
        self._account_id = account_id
        self.contact: Contact | None = None
        self.heading.hide()
        header = QHBoxLayout()
        header.setSpacing(16)
        self.avatar = Avatar("", account_id, 64)
        header.addWidget(self.avatar)
        names = QVBoxLayout()
        names.setSpacing(2)
        self.title = label("", "title")
        self.subtitle = label("", "caption")
        self.subtitle.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.verified_mark = label(VERIFIED, "caption")
        self.verified_mark.hide()
        names.addWidget(self.title)
        names.addWidget(self.subtitle)
        names.addWidget(self.verified_mark)
        header.addLayout(names, 1)
        self.message_button = button("Message", "primary")
        self.message_button.clicked.connect(self.message)
        header.addWidget(self.message_button, 0, Qt.AlignmentFlag.AlignTop)
        self.body.addLayout(header)

        rename_row = QHBoxLayout()
        self.name_field = line_edit("Name", "Name")
        self.name_field.returnPressed.connect(self.rename)
        self.rename_button = button("Save name")
        self.rename_button.clicked.connect(self.rename)
        rename_row.addWidget(self.name_field, 1)
        rename_row.addWidget(self.rename_button)
        self.body.addWidget(label("Name", "subtitle"))
        self.body.addWidget(label("Only you see the name you give a contact.", "caption"))
        self.body.addLayout(rename_row)

        self.safety = SafetyNumberWidget(client, account_id, bridge=bridge)
        self.safety.verified.connect(self._verified)
        self.body.addSpacing(4)
        self.body.addWidget(self.safety)

        self.block_button = button("Block", "danger")
        self.block_button.clicked.connect(self.toggle_block)
        close = button("Close")
        close.clicked.connect(self.reject)
        self.button_row.insertWidget(0, self.block_button)
        self.add_buttons(close)
        if bridge is not None:
            bridge.contacts_changed.connect(self._contacts_changed)
        self.run(client.contact(account_id), self._show)

    def _contacts_changed(self, account_ids: list[str]) -> None:
        if self._account_id in account_ids and not self.working():
            spawn(self._client.contact(self._account_id), on_done=self._show)

    def _show(self, contact: Contact) -> None:
        self.contact = contact
        name = contact_name(contact)
        self.setWindowTitle(name)
        self.title.setText(name)
        self.avatar.set_identity(name, contact.account_id)
        parts = []
        if contact.handle:
            parts.append(f"@{contact.handle}")
        parts.append(f"Account {contact.account_id[:16]}…")
        self.subtitle.setText(" · ".join(parts))
        self.verified_mark.setVisible(contact.verified)
        self.name_field.setText(contact.display_name or "")
        self.block_button.setText("Unblock" if contact.blocked else "Block")
        self.block_button.setProperty("class", "secondary" if contact.blocked else "danger")
        self.block_button.setAccessibleName("Unblock" if contact.blocked else "Block")
        self.block_button.style().unpolish(self.block_button)
        self.block_button.style().polish(self.block_button)
        self.message_button.setEnabled(not contact.blocked)

    def rename(self) -> None:
        if self.working():
            return
        name = self.name_field.text().strip() or None
        self.run(self._client.rename_contact(self._account_id, name), self._changed)

    def toggle_block(self) -> None:
        if self.working() or self.contact is None:
            return
        if self.contact.blocked:
            self.run(self._client.unblock(self._account_id), self._changed)
        else:
            self.run(self._client.block(self._account_id), self._changed)

    def _changed(self, contact: Contact) -> None:
        self._show(contact)
        self.changed.emit(contact.account_id)

    def _verified(self, account_id: str) -> None:
        self.verified_mark.show()
        self.changed.emit(account_id)

    def message(self) -> None:
        if self.working():
            return
        self.run(self._client.create_conversation(self._account_id), self._opened)

    def _opened(self, conversation: Conversation) -> None:
        self.open_conversation.emit(conversation.id)
        self.accept()
