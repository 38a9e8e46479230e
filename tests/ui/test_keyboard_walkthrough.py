"""The main window from the keyboard alone, against the fake client.

One walk through the everyday actions with nothing but ``QTest.keyClick``
and the focus (no mouse, no direct calls of slots): Ctrl+N starts a
conversation with a contact picked by typing, Enter sends, Alt+Up/Down move
between conversations, Shift+Tab reaches the timeline, ``+`` reacts,
Shift+F10 opens the message menu and its Reply starts a reply, Ctrl+F
searches and Enter jumps to the hit, Esc goes back. After each step the
focus must be on a sensible widget with an accessible name, so that a screen
reader user hears where they are.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget

from tests.ui import test_main_window
from tests.ui.conftest import wait_until
from tests.ui.fake_client import populate
from tests.ui.test_main_window import Harness

# Offscreen, raise() and the popup menu's keyboard grab only warn.
pytestmark = pytest.mark.qt_log_ignore("does not support raise", "does not support grabbing")

#: The main window tests' fixture: a window over the fake client, closed afterwards.
harness = test_main_window.harness

CTRL = Qt.KeyboardModifier.ControlModifier
ALT = Qt.KeyboardModifier.AltModifier
SHIFT = Qt.KeyboardModifier.ShiftModifier


def focused() -> QWidget:
    widget = QApplication.focusWidget()
    assert widget is not None, "nothing has the keyboard focus"
    return widget


def focus_name() -> str:
    """The accessible name of the focused widget (never empty: a reader says it)."""
    widget = focused()
    name = widget.accessibleName()
    assert name, f"the focused {type(widget).__name__} has no accessible name"
    return name


def key(k: Qt.Key, modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    """A key press sent where a user's would go: to the focused widget."""
    QTest.keyClick(focused(), k, modifiers)


async def reactivate(window: QWidget) -> None:
    """What a window manager does when a dialog closes: its parent is active again.

    Offscreen there is no window manager, so nothing would have the focus.
    """
    window.activateWindow()
    await wait_until(lambda: QApplication.activeWindow() is window, timeout=5)


def type_text(text: str) -> None:
    QTest.keyClicks(focused(), text)


def test_the_main_window_from_the_keyboard_alone(harness: Harness, run: Any) -> None:
    client = harness.client
    populate(client, int(time.time() * 1000))

    async def body() -> None:
        window = await harness.open()
        window.activateWindow()
        pane = window.pane
        composer = pane.composer
        timeline = pane.timeline
        window.sidebar.list.setFocus()
        await wait_until(lambda: window.sidebar.list.hasFocus(), timeout=5)
        assert focus_name()

        # Ctrl+N: the new conversation dialog, its contact filter focused
        key(Qt.Key.Key_N, CTRL)
        dialog = window.dialogs["new"]
        await wait_until(lambda: dialog.isVisible() and dialog.direct_picker.filter.hasFocus())
        assert focus_name() == "Search contacts"
        type_text("Erin")
        await wait_until(lambda: dialog.direct_picker.current() is not None)
        key(Qt.Key.Key_Return)
        await wait_until(lambda: not dialog.isVisible(), timeout=5)
        await reactivate(window)
        await wait_until(lambda: pane.view is not None and "Erin" in pane.view.name, timeout=5)
        erin = pane.view.id
        await wait_until(lambda: composer.field.hasFocus(), timeout=5)
        assert focus_name() == composer.field.accessibleName()

        # type and send with Enter
        type_text("Hello from the keyboard")
        key(Qt.Key.Key_Return)
        await wait_until(
            lambda: any(
                m.body == "Hello from the keyboard" and m.conversation_id == erin
                for m in client.messages_.values()
            ),
            timeout=5,
        )
        assert composer.field.toPlainText() == "" and composer.field.hasFocus()

        # Alt+Up / Alt+Down: the neighbouring conversation in the list and back
        ids = window.list_model.ids()
        position = ids.index(erin)
        away, back = (
            (Qt.Key.Key_Up, Qt.Key.Key_Down) if position > 0 else (Qt.Key.Key_Down, Qt.Key.Key_Up)
        )
        neighbour = ids[position - 1] if position > 0 else ids[position + 1]
        key(away, ALT)
        await wait_until(lambda: pane.view is not None and pane.view.id == neighbour, timeout=5)
        await wait_until(lambda: composer.field.hasFocus(), timeout=5)
        assert focus_name() == composer.field.accessibleName()
        key(back, ALT)
        await wait_until(lambda: pane.view is not None and pane.view.id == erin, timeout=5)
        assert focus_name() == composer.field.accessibleName()

        # into the timeline (Shift+Tab from the composer), onto the last message
        composer.field.setFocus()
        await wait_until(lambda: composer.field.hasFocus(), timeout=5)
        for _ in range(6):
            if timeline.hasFocus():
                break
            key(Qt.Key.Key_Tab, SHIFT)
        assert timeline.hasFocus(), f"Shift+Tab went to {focus_name()!r}"
        assert focus_name() == timeline.accessibleName()
        key(Qt.Key.Key_End, CTRL)
        await wait_until(lambda: timeline.current_view() is not None, timeout=5)
        mine = timeline.current_view()
        assert mine is not None and mine.message.body == "Hello from the keyboard"

        # react: "+" opens the quick reactions, Enter picks the first
        key(Qt.Key.Key_Plus)
        assert timeline.reactions.buttons[0].hasFocus()
        assert focus_name() == "React with thumbs up"
        key(Qt.Key.Key_Return)
        await wait_until(lambda: timeline.hasFocus(), timeout=5)
        await wait_until(
            lambda: any(
                r.emoji == "👍" and r.mine
                for v in pane.model.views()
                if v.message.id == mine.message.id
                for r in v.reactions
            ),
            timeout=5,
        )

        # the message menu from the keyboard (Shift+F10), then Reply
        key(Qt.Key.Key_F10, SHIFT)
        await wait_until(lambda: pane.open_menu is not None and pane.open_menu.isVisible())
        menu = pane.open_menu
        assert menu is not None
        QTest.keyClick(menu, Qt.Key.Key_Down)
        assert menu.activeAction() is not None and menu.activeAction().text() == "Reply"
        QTest.keyClick(menu, Qt.Key.Key_Return)
        await wait_until(lambda: composer.reply_to is not None, timeout=5)
        await wait_until(lambda: composer.field.hasFocus(), timeout=5)
        type_text("and a reply")
        key(Qt.Key.Key_Return)
        await wait_until(
            lambda: any(
                m.body == "and a reply" and m.reply_to_uid == mine.message.uid
                for m in client.messages_.values()
            ),
            timeout=5,
        )

        await reactivate(window)  # offscreen, a closed popup menu may leave none active
        assert focus_name() == composer.field.accessibleName()
        # Ctrl+F: search everywhere, Down to the hit, Enter jumps to it
        key(Qt.Key.Key_F, CTRL)
        search = window.search_panel
        await wait_until(lambda: search.field.hasFocus(), timeout=5)
        assert focus_name() == "Search messages"
        type_text("trail")
        await wait_until(lambda: bool(search.model.results), timeout=5)
        hit = search.model.results[0]
        key(Qt.Key.Key_Down)
        key(Qt.Key.Key_Return)
        await wait_until(
            lambda: pane.view is not None and pane.view.id == hit.conversation_id, timeout=5
        )
        assert focus_name()

        # Esc: back from the search to the conversation list, focused
        # the results stay, with the focus in the query, for the next hit
        assert focus_name() == "Search messages"
        key(Qt.Key.Key_Escape)
        await wait_until(lambda: window.left.currentWidget() is window.sidebar, timeout=5)
        assert focus_name() == window.sidebar.list.accessibleName() == "Conversations"

    run(body())
