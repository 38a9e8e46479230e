"""The strip over a conversation that cannot go on (ui/views/restart_bar.py).

With the fake client: hidden while the conversation works; once its group
is stuck, one sentence and a "Start again" button, the composer read-only
with a reason; the button starts the conversation again (once, while the
request runs), the strip goes and the composer comes back. A refusal is a
toast sentence and the button can be pressed again. Screenshots in light
and dark themes for looking at.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from messenger.client import NotAllowedError, NoteKind
from tests.ui.conftest import wait_until
from tests.ui.test_main_window import Harness, open_chat
from ui import theme
from ui.preferences import Theme
from ui.views.restart_bar import TEXT

pytestmark = [
    pytest.mark.usefixtures("loop"),
    pytest.mark.qt_log_ignore(
        "does not support raise", "does not support grabbing", "propagateSizeHints"
    ),
]

SHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


@pytest.fixture
def harness(tmp_path: Path, qapp: QApplication) -> Iterator[Harness]:
    theme.apply_theme(qapp, Theme.LIGHT)
    h = Harness(tmp_path)
    yield h
    h.close()


def test_a_stuck_conversation_offers_to_start_again(harness: Harness, run: Any) -> None:
    async def body() -> None:
        window, cid = await open_chat(harness)
        bar, composer = window.pane.restart_bar, window.pane.composer
        assert not bar.isVisible()
        assert not composer.field.isReadOnly()

        harness.client.mark_stuck_now(cid)
        await wait_until(lambda: bar.isVisible())
        assert bar.label.text() == TEXT
        assert bar.accessibleName() == "This conversation can't go on"
        assert bar.button.accessibleName() == "Start this conversation again"
        assert composer.field.isReadOnly()
        assert composer.field.placeholderText() == (
            "Start the conversation again to send messages here."
        )
        window.resize(1366, 768)
        SHOTS.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(SHOTS / "restart-bar-light.png"))
        theme.apply_theme(QApplication.instance(), Theme.DARK)  # type: ignore[arg-type]
        window.grab().save(str(SHOTS / "restart-bar-dark.png"))
        theme.apply_theme(QApplication.instance(), Theme.LIGHT)  # type: ignore[arg-type]

        bar.button.setFocus()
        QTest.keyClick(bar.button, Qt.Key.Key_Space)  # keyboard only
        await wait_until(lambda: harness.client.restarted == [(cid, ())])
        await wait_until(lambda: not bar.isVisible())
        assert bar.button.isEnabled()
        assert not composer.field.isReadOnly()
        notes = [
            m.note.kind
            for m in harness.client.messages_.values()
            if m.conversation_id == cid and m.note is not None
        ]
        assert notes[-2:] == [NoteKind.STUCK, NoteKind.RESTARTED]

    run(body())


def test_a_refused_restart_is_a_sentence_and_the_button_comes_back(
    harness: Harness, run: Any
) -> None:
    async def body() -> None:
        window, cid = await open_chat(harness)
        bar = window.pane.restart_bar
        harness.client.mark_stuck_now(cid)
        await wait_until(lambda: bar.isVisible())
        harness.client.fail(
            "restart_conversation",
            NotAllowedError("no", user_message="Nobody could be added to the new group."),
            times=1,
        )
        bar.button.click()
        await wait_until(lambda: window.toast.isVisible())
        assert window.toast.text() == "Nobody could be added to the new group."
        await wait_until(lambda: bar.button.isEnabled())
        assert bar.isVisible()
        assert harness.client.restarted == []

    run(body())
