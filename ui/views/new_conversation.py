"""Start a conversation: one-to-one with a contact, or a group with several.

:class:`ContactPicker` is the filterable contact list both modes use (and
the group details' "Add members"): avatars, names, verified marks, single
choice or checkboxes. :class:`NewConversationDialog` switches between
"Direct message" and "New group", offers "Add a contact" when the person is
not there yet, and emits :attr:`NewConversationDialog.created` with the
conversation's id.
"""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import QEvent, QObject, QRect, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QKeyEvent, QPainter, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QHBoxLayout,
    QLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from messenger.client import Contact, Conversation, MessengerClient
from ui.views.contacts import AddContactDialog, Dialog, contact_name
from ui.views.onboarding import button, label, line_edit, show_error
from ui.widgets.avatar import paint_avatar

AVATAR_SIZE = 32
ACCOUNT_ROLE = Qt.ItemDataRole.UserRole
#: Round-cornered tick boxes drawn from the theme's palette (accent when ticked).
INDICATOR_STYLE = (
    "QListWidget::indicator { width: 16px; height: 16px; border-radius: 5px;"
    " border: 2px solid palette(mid); background: palette(base); margin-right: 6px; }"
    " QListWidget::indicator:checked { background: palette(highlight);"
    " border-color: palette(highlight); }"
)
EMPTY = "No contacts yet. Add a contact by their address or invite link."


def avatar_icon(name: str, key: str, size: int = AVATAR_SIZE) -> QIcon:
    """A round avatar as an icon (for list items), sharp on HiDPI screens."""
    ratio = 2.0
    pixmap = QPixmap(QSize(round(size * ratio), round(size * ratio)))
    pixmap.setDevicePixelRatio(ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    paint_avatar(painter, QRect(0, 0, size, size), name, key)
    painter.end()
    return QIcon(pixmap)


class ContactPicker(QWidget):
    """A filter field over a contact list; single choice, or checkboxes (``multiple``)."""

    activated = Signal(str)  # account id (single-choice mode: Enter or double-click)
    selection_changed = Signal()

    def __init__(self, *, multiple: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._multiple = multiple
        layout = QVBoxLayout(self)
        layout.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        self.filter = line_edit("Search contacts", "Search contacts")
        self.filter.textChanged.connect(self._apply_filter)
        self.filter.installEventFilter(self)
        layout.addWidget(self.filter)
        self.list = QListWidget()
        self.list.setAccessibleName("Contacts")
        self.list.setIconSize(QSize(AVATAR_SIZE, AVATAR_SIZE))
        self.list.setMinimumHeight(220)
        self.list.setUniformItemSizes(True)
        self.list.setStyleSheet(INDICATOR_STYLE)
        self.list.itemActivated.connect(self._activated)
        self.list.itemChanged.connect(lambda _item: self.selection_changed.emit())
        self.list.currentItemChanged.connect(lambda *_: self.selection_changed.emit())
        layout.addWidget(self.list, 1)
        self.empty = label(EMPTY, "muted")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setMinimumHeight(220)
        self.empty.hide()
        layout.addWidget(self.empty)

    def set_contacts(self, contacts: Iterable[Contact], *, exclude: Iterable[str] = ()) -> None:
        excluded = set(exclude)
        checked = set(self.checked())
        current = self.current()
        self.list.clear()
        for contact in contacts:
            if contact.account_id in excluded or contact.blocked:
                continue
            name = contact_name(contact)
            text = f"{name}   @{contact.handle}" if contact.handle else name
            item = QListWidgetItem(avatar_icon(name, contact.account_id), text)
            item.setData(ACCOUNT_ROLE, contact.account_id)
            spoken = f"{name}, verified" if contact.verified else name
            item.setData(Qt.ItemDataRole.AccessibleTextRole, spoken)
            if contact.verified:
                item.setText(f"{text}  ✓")
                item.setToolTip("Verified: you compared safety numbers")
            item.setSizeHint(QSize(0, AVATAR_SIZE + 16))
            if self._multiple:
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                state = contact.account_id in checked
                item.setCheckState(Qt.CheckState.Checked if state else Qt.CheckState.Unchecked)
            self.list.addItem(item)
            if contact.account_id == current:
                self.list.setCurrentItem(item)
        has_any = self.list.count() > 0
        self.list.setVisible(has_any)
        self.empty.setVisible(not has_any)
        self._apply_filter(self.filter.text())
        if self.list.currentItem() is None and has_any and not self._multiple:
            self.list.setCurrentRow(0)

    def _apply_filter(self, text: str) -> None:
        needle = text.strip().casefold()
        first: QListWidgetItem | None = None
        for row in range(self.list.count()):
            item = self.list.item(row)
            hidden = bool(needle) and needle not in item.text().casefold()
            item.setHidden(hidden)
            if not hidden and first is None:
                first = item
        current = self.list.currentItem()
        if first is not None and (current is None or current.isHidden()):
            self.list.setCurrentItem(first)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Up/Down in the filter move the selection; Space ticks (group mode)."""
        if watched is self.filter and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            if event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down):
                self._step(-1 if event.key() == Qt.Key.Key_Up else 1)
                return True
            if event.key() == Qt.Key.Key_Space and self._multiple and not self.filter.text():
                self.toggle_current()
                return True
        return False

    def _step(self, delta: int) -> None:
        row = self.list.currentRow()
        count = self.list.count()
        while 0 <= row + delta < count:
            row += delta
            if not self.list.item(row).isHidden():
                self.list.setCurrentRow(row)
                return

    def toggle_current(self) -> None:
        item = self.list.currentItem()
        if item is not None and self._multiple:
            checked = item.checkState() == Qt.CheckState.Checked
            item.setCheckState(Qt.CheckState.Unchecked if checked else Qt.CheckState.Checked)

    def _activated(self, item: QListWidgetItem) -> None:
        if self._multiple:
            self.toggle_current()
        else:
            self.activated.emit(str(item.data(ACCOUNT_ROLE)))

    def current(self) -> str | None:
        item = self.list.currentItem()
        return None if item is None or item.isHidden() else str(item.data(ACCOUNT_ROLE))

    def checked(self) -> list[str]:
        return [
            str(self.list.item(row).data(ACCOUNT_ROLE))
            for row in range(self.list.count())
            if self.list.item(row).checkState() == Qt.CheckState.Checked
        ]

    def set_checked(self, account_id: str, checked: bool = True) -> None:
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(ACCOUNT_ROLE) == account_id:
                item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
                self.list.setCurrentItem(item)

    def select(self, account_id: str) -> None:
        for row in range(self.list.count()):
            if self.list.item(row).data(ACCOUNT_ROLE) == account_id:
                self.list.setCurrentRow(row)

    def account_ids(self) -> list[str]:
        return [str(self.list.item(row).data(ACCOUNT_ROLE)) for row in range(self.list.count())]


class NewConversationDialog(Dialog):
    """Direct message or new group; :attr:`created` has the conversation id."""

    created = Signal(int)

    def __init__(self, client: MessengerClient, parent: QWidget | None = None) -> None:
        super().__init__("New conversation", parent, width=460)
        self._client = client
        modes = QHBoxLayout()
        modes.setSpacing(0)
        self.direct_mode = QPushButton("Direct message")
        self.group_mode = QPushButton("New group")
        self._modes = QButtonGroup(self)
        for index, mode in enumerate((self.direct_mode, self.group_mode)):
            mode.setCheckable(True)
            mode.setAutoDefault(False)
            mode.setProperty("class", "secondary")
            mode.setAccessibleName(mode.text())
            self._modes.addButton(mode, index)
            modes.addWidget(mode, 1)
        self.direct_mode.setChecked(True)
        self._modes.idToggled.connect(self._mode_changed)
        self._style_modes()
        self.body.addLayout(modes)

        self.group_name = line_edit("Group name", "Group name")
        self.group_name.hide()
        self.body.addWidget(self.group_name)
        self.direct_picker = ContactPicker()
        self.direct_picker.activated.connect(self._start_direct)
        self.group_picker = ContactPicker(multiple=True)
        self.group_picker.hide()
        self.group_picker.selection_changed.connect(self._update_button)
        self.group_name.textChanged.connect(self._update_button)
        self.body.addWidget(self.direct_picker, 1)
        self.body.addWidget(self.group_picker, 1)

        self.add_contact_button = button("Add a contact…")
        self.add_contact_button.clicked.connect(self.add_contact)
        self.button_row.insertWidget(0, self.add_contact_button)
        cancel = button("Cancel")
        cancel.clicked.connect(self.reject)
        self.start_button = button("Start", "primary")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.submit)
        self.add_buttons(cancel, self.start_button)
        self.group_name.returnPressed.connect(self.group_picker.filter.setFocus)
        self.reload()
        self.direct_picker.filter.setFocus()

    def is_group(self) -> bool:
        return self.group_mode.isChecked()

    def _mode_changed(self, index: int, checked: bool) -> None:
        if not checked:
            return
        group = index == 1
        self.group_name.setVisible(group)
        self.group_picker.setVisible(group)
        self.direct_picker.setVisible(not group)
        self.start_button.setText("Create group" if group else "Start")
        self._style_modes()
        show_error(self.error, None)
        (self.group_name if group else self.direct_picker.filter).setFocus()
        self._update_button()

    def _style_modes(self) -> None:
        """The chosen mode looks pressed (primary), the other one secondary."""
        for mode in (self.direct_mode, self.group_mode):
            mode.setProperty("class", "primary" if mode.isChecked() else "secondary")
            mode.style().unpolish(mode)
            mode.style().polish(mode)

    def _update_button(self) -> None:
        if self.is_group():
            self.start_button.setEnabled(bool(self.group_name.text().strip()))
        else:
            self.start_button.setEnabled(True)

    def reload(self, select: str | None = None) -> None:
        def show(contacts: list[Contact]) -> None:
            self.direct_picker.set_contacts(contacts)
            self.group_picker.set_contacts(contacts)
            if select is not None:
                self.direct_picker.select(select)
                self.group_picker.set_checked(select)

        self.run(self._client.contacts(), show)

    def add_contact(self) -> None:
        dialog = AddContactDialog(self._client, self)
        dialog.added.connect(lambda account_id: self.reload(select=account_id))
        dialog.open()

    def submit(self) -> None:
        if self.working():
            return
        if self.is_group():
            name = self.group_name.text().strip()
            if not name:
                show_error(self.error, "Give the group a name.")
                return
            self.run(self._client.create_group(name, self.group_picker.checked()), self._created)
        else:
            account_id = self.direct_picker.current()
            if account_id is None:
                show_error(self.error, "Choose a contact, or add one first.")
                return
            self._start_direct(account_id)

    def _start_direct(self, account_id: str) -> None:
        if self.working():
            return
        self.run(self._client.create_conversation(account_id), self._created)

    def _created(self, conversation: Conversation) -> None:
        self.created.emit(conversation.id)
        self.accept()
