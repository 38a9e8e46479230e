"""The Ctrl+K switcher: fuzzy matching, keyboard only, empty state."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from tests.ui.conftest import wait_until
from tests.ui.fake_client import FakeClient
from tests.ui.test_onboarding import stay_open  # noqa: F401 (a fixture)
from ui.views.quick_switcher import QuickSwitcher, fuzzy_score


def test_fuzzy_score_orders_sensibly() -> None:
    assert fuzzy_score("clc", "Climbing club") is not None
    assert fuzzy_score("xyz", "Climbing club") is None
    prefix = fuzzy_score("cli", "Climbing club")
    scattered = fuzzy_score("cli", "Cecilia")
    assert prefix is not None and scattered is not None and prefix > scattered
    assert fuzzy_score("", "anything") == 0


def test_keyboard_only(run: Any, qtbot: Any) -> None:
    client = FakeClient()
    client.add_contact_now("acct-a", "Alice")
    client.add_contact_now("acct-r", "رامي")
    alice = client.add_conversation_now(None, peer="acct-a", at=client.now_ms + 3)
    club = client.add_conversation_now("Climbing club", ["acct-a"], at=client.now_ms + 2)
    rtl = client.add_conversation_now(None, peer="acct-r", at=client.now_ms + 1)
    old = client.add_conversation_now("Old project 🗂️", [], archived=True)
    switcher = QuickSwitcher(client)  # type: ignore[arg-type]
    qtbot.addWidget(switcher)
    switcher.show()
    chosen: list[int] = []
    switcher.chosen.connect(chosen.append)

    async def body() -> None:
        await wait_until(lambda: switcher.loaded)
        assert switcher.names() == ["Alice", "Climbing club", "رامي", "Old project 🗂️  · archived"]
        QTest.keyClicks(switcher.field, "clc")
        assert switcher.names() == ["Climbing club"]
        switcher.field.clear()
        QTest.keyClick(switcher.field, Qt.Key.Key_Down)
        QTest.keyClick(switcher.field, Qt.Key.Key_Down)
        QTest.keyClick(switcher.field, Qt.Key.Key_Up)
        QTest.keyClick(switcher.field, Qt.Key.Key_Return)
        assert chosen == [club.id]
        assert not switcher.isVisible()
        switcher.show()
        switcher.field.setText("رام")
        switcher.choose_current()
        assert chosen[-1] == rtl.id
        switcher.field.setText("zzzz")
        assert switcher.empty.isVisibleTo(switcher) and "zzzz" in switcher.empty.text()
        switcher.field.setText("old")
        switcher.choose_current()
        assert chosen[-1] == old.id and alice.id not in chosen

    run(body())


def test_no_conversations(run: Any, qtbot: Any) -> None:
    switcher = QuickSwitcher(FakeClient())  # type: ignore[arg-type]
    qtbot.addWidget(switcher)
    switcher.show()

    async def body() -> None:
        await wait_until(lambda: switcher.loaded)
        assert switcher.empty.text() == "No conversations yet."
        switcher.choose_current()  # nothing to choose: nothing happens

    run(body())
