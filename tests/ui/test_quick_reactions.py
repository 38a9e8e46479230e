"""The quick reactions bar (``ui/views/quick_reactions.py``) by every path.

Hovering a bubble shows the bar and leaving hides it after a short delay;
"More reactions" opens the emoji picker, whose pick reaches the message;
from the keyboard, ``+`` on the selected message focuses the bar, Left and
Right move, Enter picks and Esc hands the focus back to the timeline.

Every wait is bounded (``wait_until`` with a deadline). Two things made an
earlier, fuller version hang. The message menu was shown with
``QMenu.exec()``, a nested event loop that blocked the test coroutine until
something closed the menu, which nothing did: the menu now pops up
(``popup()``) without one. And ``QTest.mouseMove`` (it moves the offscreen
platform's cursor) left the loop fixture's teardown waiting forever after
the test had passed: the pointer is now simulated by sending the move, enter
and leave events to the widgets.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QEnterEvent, QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget

from tests.ui import test_main_window
from tests.ui.conftest import wait_until
from tests.ui.fake_client import populate
from tests.ui.test_main_window import Harness
from ui.views.emoji_picker import EmojiPicker
from ui.views.quick_reactions import HIDE_DELAY_MS

# Offscreen, raise() of the bar and the picker only warns.
pytestmark = pytest.mark.qt_log_ignore("does not support raise")

#: The main window tests' fixture: a window over the fake client, closed afterwards.
harness = test_main_window.harness


async def _open_alice(harness: Harness) -> Any:
    ids = populate(harness.client, int(time.time() * 1000))
    window = await harness.open()
    await window.show_conversation(ids["alice"])
    return window


def _bubble_centre(timeline: Any, row: int) -> QPoint:
    index = timeline.model().index(row, 0)
    layout = timeline.bubbles.layout_for(index)
    assert layout is not None and layout.bubble is not None
    centre = layout.bubble.center() + QPointF(timeline.visualRect(index).topLeft())
    return centre.toPoint()


def _last_theirs(pane: Any) -> int:
    views = pane.model.views()
    return max(i for i, v in enumerate(views) if not v.message.outgoing and not v.message.deleted)


def _hover(widget: QWidget, pos: QPoint) -> None:
    """A pointer move with no button pressed, delivered to ``widget``.

    Sent as an event rather than ``QTest.mouseMove`` (see the module docstring).
    """
    event = QMouseEvent(
        QEvent.Type.MouseMove,
        QPointF(pos),
        QPointF(widget.mapToGlobal(pos)),
        Qt.MouseButton.NoButton,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(widget, event)


def test_hover_shows_the_bar_and_leaving_hides_it(harness: Harness, run: Any) -> None:
    async def body() -> None:
        window = await _open_alice(harness)
        timeline = window.pane.timeline
        bar = timeline.reactions
        row = _last_theirs(window.pane)
        timeline.scrollTo(timeline.model().index(row, 0))
        await wait_until(lambda: timeline.visualRect(timeline.model().index(row, 0)).isValid())
        _hover(timeline.viewport(), _bubble_centre(timeline, row))
        await wait_until(lambda: bar.isVisible(), timeout=5)
        assert bar.index.row() == row
        # beside the bubble, inside the viewport
        assert timeline.viewport().rect().contains(bar.geometry())
        # the pointer entering the bar keeps it open past the delay
        bar.hide_soon()
        QApplication.sendEvent(bar, QEnterEvent(QPointF(2, 2), QPointF(2, 2), QPointF(2, 2)))
        deadline = time.monotonic() + 2 * HIDE_DELAY_MS / 1000
        while time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            assert bar.isVisible()
        # leaving the bar (and the timeline) hides it after the delay
        started = time.monotonic()
        QApplication.sendEvent(bar, QEvent(QEvent.Type.Leave))
        QApplication.sendEvent(timeline.viewport(), QEvent(QEvent.Type.Leave))
        await wait_until(lambda: not bar.isVisible(), timeout=5)
        assert time.monotonic() - started >= HIDE_DELAY_MS / 1000 * 0.9

    run(body())


def test_more_reactions_opens_the_picker_and_its_pick_reacts(harness: Harness, run: Any) -> None:
    async def body() -> None:
        window = await _open_alice(harness)
        pane = window.pane
        timeline = pane.timeline
        bar = timeline.reactions
        row = _last_theirs(pane)
        assert timeline.show_reactions(pane.model.index(row))
        bar.more.click()
        await wait_until(lambda: isinstance(window.dialogs.get("react"), EmojiPicker))
        picker = window.dialogs["react"]
        await wait_until(lambda: picker.isVisible() and picker.filter.hasFocus(), timeout=5)
        assert not bar.isVisible()
        QTest.keyClicks(picker.filter, "rocket")
        await wait_until(lambda: picker.shown()[:1] == ["🚀"], timeout=5)
        QTest.keyClick(picker.filter, Qt.Key.Key_Down)  # into the grid
        assert picker.grid.hasFocus()
        picker.grid.setCurrentRow(0)
        QTest.keyClick(picker.grid, Qt.Key.Key_Return)
        await wait_until(lambda: not picker.isVisible(), timeout=5)
        await wait_until(
            lambda: any(r.emoji == "🚀" and r.mine for r in pane.model.views()[row].reactions),
            timeout=5,
        )

    run(body())


def test_the_keyboard_path(harness: Harness, run: Any) -> None:
    async def body() -> None:
        window = await _open_alice(harness)
        pane = window.pane
        timeline = pane.timeline
        bar = timeline.reactions
        row = _last_theirs(pane)
        timeline.setFocus()
        timeline.setCurrentIndex(pane.model.index(row))
        await wait_until(lambda: timeline.hasFocus(), timeout=5)
        before = {r.emoji for r in pane.model.views()[row].reactions if r.mine}
        QTest.keyClick(timeline, Qt.Key.Key_Plus)
        assert bar.isVisible() and bar.buttons[0].hasFocus()
        QTest.keyClick(bar.buttons[0], Qt.Key.Key_Left)  # wraps to "More reactions"
        assert bar.more.hasFocus()
        QTest.keyClick(bar.more, Qt.Key.Key_Home)
        QTest.keyClick(bar.buttons[0], Qt.Key.Key_Right)
        assert (
            bar.buttons[1].hasFocus() and bar.buttons[1].accessibleName() == "React with red heart"
        )
        QTest.keyClick(bar.buttons[1], Qt.Key.Key_Return)
        assert not bar.isVisible()
        await wait_until(lambda: timeline.hasFocus(), timeout=5)
        expected = before ^ {"❤️"}
        await wait_until(
            lambda: {r.emoji for r in pane.model.views()[row].reactions if r.mine} == expected,
            timeout=5,
        )
        # Esc closes the bar and gives the focus back to the message
        QTest.keyClick(timeline, Qt.Key.Key_Plus)
        assert bar.buttons[0].hasFocus()
        QTest.keyClick(bar.buttons[0], Qt.Key.Key_Escape)
        assert not bar.isVisible()
        await wait_until(lambda: timeline.hasFocus(), timeout=5)
        assert timeline.currentIndex().row() == row

    run(body())
