"""A conversation's details: name, members, mute, archive, leave.

For a group: rename it, see its members with their verified marks, add
members from the contacts, remove one, leave (after an inline "are you
sure", never a modal box). For any conversation: mute and archive toggles,
and the disappearing-messages timer (docs/attachments.md §7).
Every membership change also shows in the timeline, as a note the client
writes; this dialog only dispatches and re-reads.
"""

from __future__ import annotations

import asyncio
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from messenger.client import (
    ClientError,
    Contact,
    ConversationKind,
    ConversationView,
    MemberView,
    MessengerClient,
)
from ui.bridge import Bridge
from ui.tasks import spawn
from ui.views.contacts import ContactDetailsDialog, Dialog, find_bridge
from ui.views.new_conversation import ACCOUNT_ROLE, AVATAR_SIZE, ContactPicker, avatar_icon
from ui.views.onboarding import button, label, line_edit, show_error
from ui.views.timer_menu import TimerButton
from ui.widgets.avatar import Avatar
from ui.widgets.toggle import ToggleSwitch


def conversation_avatar_key(view: ConversationView) -> str:
    """The avatar colour key: the peer's account id, or the group's id."""
    peer = view.conversation.peer_account_id
    if view.conversation.kind is ConversationKind.DIRECT and peer:
        return peer
    return view.conversation.group_id.hex()


class AddMembersDialog(Dialog):
    """Pick contacts to add to a group; :attr:`chosen` has their account ids."""

    chosen = Signal(list)

    def __init__(
        self, client: MessengerClient, present: list[str], parent: QWidget | None = None
    ) -> None:
        super().__init__("Add members", parent, width=420)
        self.picker = ContactPicker(multiple=True)
        self.body.addWidget(self.picker, 1)
        cancel = button("Cancel")
        cancel.clicked.connect(self.reject)
        self.add_button = button("Add", "primary")
        self.add_button.setDefault(True)
        self.add_button.clicked.connect(self.submit)
        self.add_buttons(cancel, self.add_button)
        self.run(client.contacts(), lambda found: self.picker.set_contacts(found, exclude=present))
        self.picker.filter.setFocus()

    def submit(self) -> None:
        ids = self.picker.checked()
        if not ids:
            show_error(self.error, "Tick the contacts to add.")
            return
        self.chosen.emit(ids)
        self.accept()


class GroupDetailsDialog(Dialog):
    """Details of one conversation; :attr:`left` when the user left the group."""

    left = Signal(int)
    changed = Signal(int)

    def __init__(
        self,
        client: MessengerClient,
        conversation_id: int,
        parent: QWidget | None = None,
        *,
        bridge: Bridge | None = None,
    ) -> None:
        """With ``bridge``, the dialog follows changes made elsewhere (members, name)."""
        super().__init__("Conversation details", parent, width=480)
        bridge = find_bridge(parent, bridge)
        self._refreshing: asyncio.Task[Any] | None = None
        self._stale = False
        self._suite: str | None = None
        self._client = client
        self._conversation_id = conversation_id
        self.view: ConversationView | None = None
        self._verified: set[str] = set()
        self.heading.hide()

        header = QHBoxLayout()
        header.setSpacing(16)
        self.avatar = Avatar("", str(conversation_id), 64)
        header.addWidget(self.avatar)
        names = QVBoxLayout()
        names.setSpacing(2)
        self.title = label("", "title")
        self.subtitle = label("", "caption")
        names.addWidget(self.title)
        names.addWidget(self.subtitle)
        header.addLayout(names, 1)
        self.body.addLayout(header)

        self.rename_box = QWidget()
        rename_layout = QHBoxLayout(self.rename_box)
        rename_layout.setContentsMargins(0, 0, 0, 0)
        self.name_field = line_edit("Group name", "Group name")
        self.name_field.returnPressed.connect(self.rename)
        self.rename_button = button("Rename")
        self.rename_button.clicked.connect(self.rename)
        rename_layout.addWidget(self.name_field, 1)
        rename_layout.addWidget(self.rename_button)
        self.body.addWidget(self.rename_box)

        toggles = QHBoxLayout()
        self.mute_toggle = ToggleSwitch("Mute notifications")
        self.archive_toggle = ToggleSwitch("Archived")
        for toggle in (self.mute_toggle, self.archive_toggle):
            toggles.addWidget(toggle)
        toggles.addStretch(1)
        self.mute_toggle.clicked.connect(self.set_muted)
        self.archive_toggle.clicked.connect(self.set_archived)
        self.body.addLayout(toggles)

        self.timer_box = QWidget()
        timer_row = QHBoxLayout(self.timer_box)
        timer_row.setContentsMargins(0, 0, 0, 0)
        timer_texts = QVBoxLayout()
        timer_texts.setSpacing(0)
        timer_texts.addWidget(label("Disappearing messages"))
        timer_texts.addWidget(
            label("New messages are deleted for everyone after this time.", "caption")
        )
        timer_row.addLayout(timer_texts, 1)
        self.timer = TimerButton(self.timer_box, wide=True)
        self.timer.timer_chosen.connect(self.set_timer)
        timer_row.addWidget(self.timer)
        self.body.addWidget(self.timer_box)

        members_head = QHBoxLayout()
        self.members_label = label("Members", "subtitle")
        members_head.addWidget(self.members_label, 1)
        self.add_button = button("Add members…")
        self.add_button.clicked.connect(self.add_members)
        self.remove_button = button("Remove", accessible="Remove the selected member")
        self.remove_button.setEnabled(False)
        self.remove_button.clicked.connect(self.remove_selected)
        members_head.addWidget(self.add_button)
        members_head.addWidget(self.remove_button)
        self.body.addLayout(members_head)
        self.members = QListWidget()
        self.members.setAccessibleName("Members")
        self.members.setIconSize(QSize(AVATAR_SIZE, AVATAR_SIZE))
        self.members.setMinimumHeight(180)
        self.members.currentItemChanged.connect(self._member_selected)
        self.members.itemActivated.connect(self._open_member)
        self.body.addWidget(self.members, 1)

        self.encryption = label("", "caption")
        self.encryption.setWordWrap(True)
        self.encryption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.encryption.hide()
        self.body.addWidget(self.encryption)

        self.confirm = QFrame()
        self.confirm.setProperty("class", "card")
        confirm_layout = QVBoxLayout(self.confirm)
        confirm_layout.setContentsMargins(16, 12, 16, 12)
        self.confirm_text = label("", "muted")
        confirm_layout.addWidget(self.confirm_text)
        confirm_row = QHBoxLayout()
        confirm_row.addStretch(1)
        self.confirm_cancel = button("Stay")
        self.confirm_cancel.clicked.connect(self._cancel_leave)
        self.confirm_leave = button("Leave", "danger", accessible="Leave the group")
        self.confirm_leave.clicked.connect(self._leave)
        confirm_row.addWidget(self.confirm_cancel)
        confirm_row.addWidget(self.confirm_leave)
        confirm_layout.addLayout(confirm_row)
        self.confirm.hide()
        self.body.addWidget(self.confirm)

        self.leave_button = button("Leave group", "danger")
        self.leave_button.clicked.connect(self.ask_leave)
        self.button_row.insertWidget(0, self.leave_button)
        close = button("Close")
        close.clicked.connect(self.reject)
        self.add_buttons(close)
        if bridge is not None:
            bridge.conversations_changed.connect(self._conversations_changed)
            bridge.messages_received.connect(self._messages_received)
        self.refresh()

    # -- reading ----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the conversation again (once more if asked while reading)."""
        if self._refreshing is not None and not self._refreshing.done():
            self._stale = True
            return
        self._stale = False
        self._refreshing = spawn(self._load(), on_done=self._loaded, on_error=self._load_failed)

    def _load_failed(self, sentence: str) -> None:
        self._refreshing = None  # its traceback refers to this dialog: no cycle
        show_error(self.error, sentence)

    def _loaded(self, loaded: tuple[ConversationView, list[MemberView], list[Contact]]) -> None:
        self._show(loaded)
        if self._stale:
            self.refresh()

    def _conversations_changed(self, views: list[ConversationView]) -> None:
        if any(v.id == self._conversation_id for v in views):
            self.refresh()

    def _messages_received(self, conversation_id: int, _messages: object) -> None:
        if conversation_id == self._conversation_id:
            self.refresh()

    async def _load(self) -> tuple[ConversationView, list[MemberView], list[Contact]]:
        view = await self._client.conversation(self._conversation_id)
        members = await self._client.members(self._conversation_id)
        contacts = await self._client.contacts(include_blocked=True)
        try:
            self._suite = await self._client.cipher_suite(self._conversation_id)
        except ClientError:
            self._suite = None  # not known here (no account yet): the line stays hidden
        return view, members, contacts

    def _show(self, loaded: tuple[ConversationView, list[MemberView], list[Contact]]) -> None:
        view, members, contacts = loaded
        self.view = view
        self._verified = {c.account_id for c in contacts if c.verified}
        group = view.conversation.kind is ConversationKind.GROUP
        active = view.active
        self.setWindowTitle(view.name)
        self.title.setText(view.name)
        self.avatar.set_identity(view.name, conversation_avatar_key(view))
        count = len(members)
        if not active:
            self.subtitle.setText("You are no longer a member")
        elif group:
            self.subtitle.setText(f"Group · {count} member{'s' if count != 1 else ''}")
        else:
            self.subtitle.setText("Direct conversation")
        if not self.name_field.hasFocus():
            self.name_field.setText(view.conversation.title or "")
        self.rename_box.setVisible(group and active)
        self.add_button.setVisible(group and active)
        self.remove_button.setVisible(group and active)
        self.leave_button.setVisible(group and active)
        self.mute_toggle.setChecked(view.muted)
        self.archive_toggle.setChecked(view.archived)
        self.timer.set_seconds(view.conversation.disappearing_seconds)
        self.timer_box.setVisible(active)
        if self._suite is not None:
            self.encryption.setText(f"End-to-end encrypted with MLS, cipher suite {self._suite}")
            self.encryption.setAccessibleName(f"Encryption: MLS cipher suite {self._suite}")
        self.encryption.setVisible(self._suite is not None)
        self.members_label.setText(f"Members ({count})")
        selected = self.selected_member()
        self.members.clear()
        for member in sorted(members, key=lambda m: (not m.is_me, m.name.casefold())):
            name = "You" if member.is_me else member.name
            item = QListWidgetItem(avatar_icon(member.name, member.account_id), name)
            item.setData(ACCOUNT_ROLE, member.account_id)
            item.setData(Qt.ItemDataRole.UserRole + 1, member.is_me)
            item.setSizeHint(QSize(0, AVATAR_SIZE + 16))
            spoken = name
            if member.account_id in self._verified:
                item.setText(f"{name}  ✓")
                item.setToolTip("Verified: you compared safety numbers")
                spoken = f"{name}, verified"
            item.setData(Qt.ItemDataRole.AccessibleTextRole, spoken)
            self.members.addItem(item)
            if member.account_id == selected:
                self.members.setCurrentItem(item)
        self._member_selected()

    def selected_member(self) -> str | None:
        item = self.members.currentItem()
        return None if item is None else str(item.data(ACCOUNT_ROLE))

    def member_names(self) -> list[str]:
        return [self.members.item(row).text() for row in range(self.members.count())]

    def _member_selected(self, *_: object) -> None:
        item = self.members.currentItem()
        removable = item is not None and not item.data(Qt.ItemDataRole.UserRole + 1)
        self.remove_button.setEnabled(removable)

    def _open_member(self, item: QListWidgetItem) -> None:
        if item.data(Qt.ItemDataRole.UserRole + 1):
            return
        dialog = ContactDetailsDialog(self._client, str(item.data(ACCOUNT_ROLE)), self)
        dialog.changed.connect(lambda _: self.refresh())
        dialog.open()

    # -- changing ---------------------------------------------------------------------------

    def _done(self, _: object = None) -> None:
        self.changed.emit(self._conversation_id)
        self.refresh()

    def rename(self) -> None:
        name = self.name_field.text().strip()
        if not name:
            show_error(self.error, "Give the group a name.")
            return
        if self.working():
            return
        self.run(self._client.rename(self._conversation_id, name), self._done)

    def set_muted(self, muted: bool) -> None:
        if self.working():
            self.mute_toggle.setChecked(not muted)
            return
        call = self._client.mute if muted else self._client.unmute
        self.run(call(self._conversation_id), self._done)

    def set_timer(self, seconds: int) -> None:
        """Every member's timer changes once the group's commit is accepted."""
        if self.working():
            return
        self.run(self._client.set_disappearing_timer(self._conversation_id, seconds), self._done)

    def set_archived(self, archived: bool) -> None:
        if self.working():
            self.archive_toggle.setChecked(not archived)
            return
        call = self._client.archive if archived else self._client.unarchive
        self.run(call(self._conversation_id), self._done)

    def add_members(self) -> None:
        present = [
            str(self.members.item(row).data(ACCOUNT_ROLE)) for row in range(self.members.count())
        ]
        dialog = AddMembersDialog(self._client, present, self)
        dialog.chosen.connect(self._add)
        dialog.open()

    def _add(self, account_ids: list[str]) -> None:
        self.run(self._client.add_members(self._conversation_id, account_ids), self._done)

    def remove_selected(self) -> None:
        account_id = self.selected_member()
        if account_id is None or self.working():
            return
        self.run(self._client.remove_member(self._conversation_id, account_id), self._done)

    def ask_leave(self) -> None:
        name = self.view.name if self.view is not None else "this group"
        self.confirm_text.setText(
            f"Leave “{name}”? You will stop receiving its messages, and the others "
            "will see that you left."
        )
        self.confirm.show()
        self.leave_button.setEnabled(False)
        self.confirm_cancel.setFocus()

    def _cancel_leave(self) -> None:
        self.confirm.hide()
        self.leave_button.setEnabled(True)
        self.leave_button.setFocus()

    def _leave(self) -> None:
        if self.working():
            return
        self.run(self._client.leave(self._conversation_id), self._has_left)

    def _has_left(self, _: object) -> None:
        self.confirm.hide()
        self.left.emit(self._conversation_id)
        self.accept()
