"""Every screen of the screens helper: accessible names, Enter and Esc, the keyboard.

Each control a user can reach (buttons, fields, lists, toggles, choices)
has an accessible name for screen readers; Enter in a field does that
field's action and nothing else (no stray default button); Esc closes a
dialog; the new-conversation picker works from the keyboard alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QComboBox,
    QLineEdit,
    QMainWindow,
    QWidget,
)

from messenger.client import KeyringProblem, NotAllowedError
from tests.ui.conftest import wait_until
from tests.ui.fake_client import FakeClient
from tests.ui.test_onboarding import LocalStarter, stay_open  # noqa: F401 (a fixture)
from ui.bridge import Bridge
from ui.preferences import PreferencesStore
from ui.views.contacts import AddContactDialog, ContactDetailsDialog, InviteDialog
from ui.views.emoji_picker import EmojiPicker
from ui.views.group import GroupDetailsDialog
from ui.views.lock_screen import LockScreen
from ui.views.new_conversation import NewConversationDialog
from ui.views.onboarding import OnboardingView
from ui.views.quick_switcher import QuickSwitcher
from ui.views.search import SearchPanel
from ui.views.settings import SettingsDialog
from ui.views.unlock import UnlockView


def fake() -> FakeClient:
    client = FakeClient()
    client.add_contact_now("acct-a", "Alice", handle="alice", verified=True)
    client.add_contact_now("acct-b", "Bob", handle="bob")
    client.add_conversation_now("Club", ["acct-a", "acct-b"])
    return client


def screens(tmp_path: Path) -> dict[str, QWidget]:
    client: Any = fake()
    return {
        "onboarding": OnboardingView(tmp_path, "me", LocalStarter(tmp_path)),
        "unlock": UnlockView(client.profile, tmp_path, reason=KeyringProblem.MISSING),
        "lock": LockScreen(client),
        "settings": SettingsDialog(client, PreferencesStore(tmp_path)),
        "add contact": AddContactDialog(client),
        "invite": InviteDialog(client),
        "contact": ContactDetailsDialog(client, "acct-a"),
        "new conversation": NewConversationDialog(client),
        "group": GroupDetailsDialog(client, 1),
        "search": SearchPanel(client),
        "switcher": QuickSwitcher(client),
        "emoji": EmojiPicker(),
    }


def inside_combo_box(widget: QWidget) -> bool:
    parent = widget.parentWidget()
    while parent is not None:
        if isinstance(parent, QComboBox):
            return True
        parent = parent.parentWidget()
    return False


INTERACTIVE = (QAbstractButton, QLineEdit, QComboBox, QAbstractItemView)


def test_every_control_has_an_accessible_name(run: Any, tmp_path: Path, qtbot: Any) -> None:
    built = screens(tmp_path)
    for widget in built.values():
        qtbot.addWidget(widget)
        widget.show()

    async def body() -> None:
        await wait_until(lambda: built["contact"].findChildren(QAbstractButton) != [])
        for name, screen in built.items():
            assert screen.accessibleName(), name
            for control in screen.findChildren(QWidget):
                if not isinstance(control, INTERACTIVE):
                    continue
                if type(control).__name__ in ("QScrollBar", "QLineEditIconButton"):
                    continue
                if inside_combo_box(control):
                    continue  # the combo box's own popup list
                if isinstance(control, QAbstractButton) and control.objectName().startswith("qt_"):
                    continue  # Qt's own parts (a line edit's clear button)
                assert control.accessibleName(), f"{name}: {type(control).__name__}"

    run(body())


@pytest.mark.parametrize("field", ["name_field"])
def test_enter_in_a_field_does_not_close_the_dialog(run: Any, qtbot: Any, field: str) -> None:
    client = fake()
    client.fail("rename", NotAllowedError("no"))
    dialog = GroupDetailsDialog(client, 1)  # type: ignore[arg-type]
    qtbot.addWidget(dialog)
    dialog.show()

    async def body() -> None:
        await wait_until(lambda: dialog.view is not None)
        edit = getattr(dialog, field)
        edit.setFocus()
        edit.setText("Renamed")
        QTest.keyClick(edit, Qt.Key.Key_Return)
        await wait_until(lambda: client.calls["rename"] == 1 and not dialog.working())
        assert dialog.isVisible()  # Enter renamed; it did not press Close
        QTest.keyClick(dialog, Qt.Key.Key_Escape)
        assert not dialog.isVisible()

    run(body())


def test_new_conversation_from_the_keyboard(run: Any, qtbot: Any) -> None:
    client = fake()
    dialog = NewConversationDialog(client)  # type: ignore[arg-type]
    qtbot.addWidget(dialog)
    dialog.show()
    created: list[int] = []
    dialog.created.connect(created.append)

    async def body() -> None:
        await wait_until(lambda: dialog.direct_picker.list.count() == 2)
        picker = dialog.direct_picker
        QTest.keyClicks(picker.filter, "b")
        assert picker.current() == "acct-b"
        QTest.keyClick(picker.filter, Qt.Key.Key_Up)
        QTest.keyClick(picker.filter, Qt.Key.Key_Down)
        assert picker.current() == "acct-b"
        QTest.keyClick(picker.filter, Qt.Key.Key_Return)  # the dialog's default: Start
        await wait_until(lambda: bool(created))
        assert client.conversations_[created[0]].peer_account_id == "acct-b"

    run(body())


def test_group_details_follow_the_bridge_of_the_parent_window(run: Any, qtbot: Any) -> None:
    client = fake()
    window = QMainWindow()
    window.bridge = Bridge(client)  # type: ignore[attr-defined]
    window.bridge.start()  # type: ignore[attr-defined]
    qtbot.addWidget(window)
    dialog = GroupDetailsDialog(client, 1, window)  # type: ignore[arg-type]
    dialog.show()

    async def body() -> None:
        await wait_until(lambda: dialog.view is not None)
        assert len(dialog.member_names()) == 3
        await client.add_members(1, ["acct-new"])  # as if another device did it
        await wait_until(lambda: len(dialog.member_names()) == 4)
        await window.bridge.stop()  # type: ignore[attr-defined]

    run(body())
