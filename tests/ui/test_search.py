"""Search across conversations: a real client finds and opens; the fake covers edges."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from messenger.client import StoreIOError
from tests.ui.conftest import wait_until
from tests.ui.fake_client import FakeClient
from tests.ui.test_contacts import account_id, address, eventually, people
from tests.ui.test_onboarding import RUN_SLOW, SLOW, no_keyring, stay_open  # noqa: F401 (fixtures)
from ui.views.search import SearchPanel, snippet_html


def test_snippet_marks_become_escaped_highlights() -> None:
    out = snippet_html("a <b> \x02café\x03 & more", "#123456")
    assert out == 'a &lt;b&gt; <b style="color:#123456">café</b> &amp; more'


@pytest.mark.usefixtures("no_keyring")
def test_finds_across_conversations_and_opens(run: Any, tmp_path: Path, qtbot: Any) -> None:
    async def body() -> None:
        async with people(tmp_path, "alice", "bob") as (alice, bob):
            await alice.add_contact(await address(bob))
            direct = await alice.create_conversation(await account_id(bob))
            group = await alice.create_group("Hikers", [])
            await alice.send_text(direct.id, "see you at the trailhead at nine")
            target = await alice.send_text(group.id, "the trailhead parking is full")
            await alice.send_text(group.id, "unrelated words")
            await alice.flush(SLOW)

            async def indexed() -> bool:
                return len(await alice.search("trailhead")) == 2

            await eventually(indexed)
            panel = SearchPanel(alice)
            qtbot.addWidget(panel)
            panel.resize(400, 500)
            panel.show()
            opened: list[tuple[int, int]] = []
            panel.open_message.connect(lambda c, m: opened.append((c, m)))
            panel.focus_search("trailhead")
            assert panel.field.hasFocus() or not panel.isActiveWindow()
            await wait_until(lambda: panel.result_count() == 2, timeout=SLOW)
            results = panel.model.results
            # The direct chat is named after bob (his handle, or the name he announced).
            assert {r.conversation.casefold() for r in results} == {"hikers", "bob"}
            assert all(r.sender == "You" for r in results)
            assert all("\x02" in r.hit.snippet for r in results)
            spoken = panel.model.index(0).data(Qt.ItemDataRole.AccessibleTextRole)
            assert "trailhead" in spoken and "You in" in spoken
            row = next(i for i, r in enumerate(results) if r.message_id == target.id)
            panel.results.setCurrentIndex(panel.model.index(row))
            panel.field.returnPressed.emit()
            assert opened == [(group.id, target.id)]
            panel.field.setText("nothingmatchesthis")
            await wait_until(lambda: "No messages match" in panel.status.text())
            assert panel.result_count() == 0 and panel.status.isVisible()

    run(body(), timeout=RUN_SLOW)


def test_rtl_emoji_long_text_and_errors_with_the_fake(run: Any, qtbot: Any) -> None:
    client = FakeClient()
    client.add_contact_now("acct-s", "سارا")
    chat = client.add_conversation_now(None, peer="acct-s")
    client.add_message_now(chat.id, "acct-s", "مرحبا 👋 " + "كلمة " * 300 + "شاي")
    panel = SearchPanel(client)  # type: ignore[arg-type]
    qtbot.addWidget(panel)
    panel.resize(360, 400)
    panel.show()

    async def body() -> None:
        panel.focus_search("شاي")
        await wait_until(lambda: panel.result_count() == 1)
        result = panel.model.results[0]
        assert result.sender == "سارا" and result.conversation == "سارا"
        panel.results.viewport().grab()  # the delegate paints long RTL text without error
        closed: list[bool] = []
        panel.closed.connect(lambda: closed.append(True))
        client.fail("search", StoreIOError("io"))
        panel.field.setText("other")
        await wait_until(lambda: panel.error.isVisibleTo(panel))
        assert panel.error.text() == StoreIOError.default_user_message
        panel.field.clear()
        panel.search_now()
        panel.field.setFocus()
        from PySide6.QtTest import QTest

        QTest.keyClick(panel.field, Qt.Key.Key_Escape)
        assert closed == [True]

    run(body())
