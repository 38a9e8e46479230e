"""The main window with a fake client: list, timeline, composer, actions, edge states.

Each test builds a :class:`~tests.ui.fake_client.FakeClient`, a real
:class:`~ui.bridge.Bridge` and a real :class:`~ui.views.main_window.MainWindow`
offscreen, and drives them through Qt (keys, context-menu actions) on the
qasync loop (``run``), waiting on conditions (``wait_until``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QGuiApplication, QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

from messenger.client import (
    ConnectionState,
    EventsDropped,
    MessageStatus,
    ServerUnavailableError,
)
from tests.ui.conftest import wait_until
from tests.ui.fake_client import ALICE, BOB, FakeClient, populate
from ui import tasks, theme
from ui.bridge import Bridge
from ui.models.message_list import MAX_WINDOW, PAGE, spoken_text
from ui.platform import fake_services
from ui.preferences import PreferencesStore, Theme
from ui.views.banner import OFFLINE, REPLACED
from ui.views.main_window import FOLLOW_WINDOW, MainWindow

pytestmark = pytest.mark.usefixtures("loop")


class Harness:
    def __init__(self, tmp_path: Path, client: FakeClient | None = None) -> None:
        self.client = client or FakeClient(display_name="Sam Rivera")
        self.bridge = Bridge(self.client)
        self.prefs = PreferencesStore(tmp_path / "prefs")
        self.services = fake_services()
        self.window: MainWindow | None = None

    async def open(self, width: int = 1200, height: int = 760) -> MainWindow:
        self.bridge.start()
        await self.client.start()
        window = MainWindow(self.client, self.bridge, self.prefs, self.services)  # type: ignore[arg-type]
        window.resize(width, height)
        window.show()
        self.window = window
        await wait_until(lambda: window.loaded)
        return window

    def close(self) -> None:
        if self.window is not None:
            self.window.quit()
            self.window.deleteLater()
        tasks.set_error_sink(None)


@pytest.fixture
def harness(tmp_path: Path, qapp: QApplication) -> Iterator[Harness]:
    theme.apply_theme(qapp, Theme.LIGHT)
    h = Harness(tmp_path)
    yield h
    h.close()


def _now() -> int:
    return int(time.time() * 1000)


async def open_chat(harness: Harness) -> tuple[MainWindow, int]:
    """The main window on the demo data, showing the conversation with Alice."""
    ids = populate(harness.client, _now())
    window = await harness.open()
    await window.show_conversation(ids["alice"])
    return window, ids["alice"]


def test_list_sorted_by_activity_with_unread_and_previews(harness: Harness, run) -> None:
    ids = populate(harness.client, _now())

    async def body() -> None:
        window = await harness.open()
        model = window.list_model
        assert model.ids()[0] == ids["group"]
        assert model.ids().index(ids["alice"]) < model.ids().index(ids["bob"])
        bob = model.view(ids["bob"])
        assert bob is not None and bob.unread == 3
        # previews are read lazily for the rows a view paints
        window.sidebar.list.viewport().repaint()
        await wait_until(lambda: ids["alice"] in model.previews)
        row = model.index(model.row_of(ids["alice"]))
        assert row.data(Qt.ItemDataRole.UserRole + 2) == "You: Yes, two for Friday 🎟️"
        spoken = row.data(Qt.ItemDataRole.AccessibleTextRole)
        assert spoken.startswith("Alice Martin")
        # the filter keeps matching names
        window.sidebar.search.setText("book")
        assert model.ids() == [ids["books"]]
        window.sidebar.search.clear()
        assert len(model.ids()) == 6
        # the tray shows the unread count of unmuted conversations
        assert harness.services.tray.unread == model.total_unread() == 4

    run(body())


def test_empty_states(harness: Harness, run) -> None:
    async def body() -> None:
        window = await harness.open()
        assert window.sidebar.empty.isVisibleTo(window)
        assert "No conversations yet" in window.sidebar.empty_label.text()
        assert window.right.currentWidget() is window.placeholder
        # an empty conversation says so instead of a blank timeline
        conversation = harness.client.add_conversation_now(None, peer=ALICE)
        harness.client.add_contact_now(ALICE, "Alice")
        await window.list_model.reload()
        assert not window.sidebar.empty.isVisibleTo(window)
        await window.show_conversation(conversation.id)
        assert window.pane.empty.isVisibleTo(window)

    run(body())


def test_enter_sends_shift_enter_adds_a_line(harness: Harness, run) -> None:
    ids = populate(harness.client, _now())

    async def body() -> None:
        window = await harness.open()
        await window.show_conversation(ids["alice"])
        field = window.pane.composer.field
        field.setFocus()
        QTest.keyClicks(field, "first line")
        QTest.keyClick(field, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
        QTest.keyClicks(field, "second line")
        assert field.toPlainText() == "first line\nsecond line"
        before = window.pane.model.rowCount()
        QTest.keyClick(field, Qt.Key.Key_Return)
        await wait_until(lambda: window.pane.model.rowCount() == before + 1)
        last = window.pane.model.views()[-1]
        assert last.message.body == "first line\nsecond line"
        assert last.message.status is MessageStatus.PENDING
        assert field.toPlainText() == ""
        assert harness.client.calls["send_text"] == 1
        # the typing notice started with the first key and stopped on send
        assert (ids["alice"], True) in harness.client.typing_sent
        await wait_until(lambda: harness.client.typing_sent[-1] == (ids["alice"], False))
        # the preview in the list follows
        await wait_until(lambda: window.list_model.previews[ids["alice"]].id == last.id)

    run(body())


def test_client_error_reaches_a_toast_as_its_sentence(harness: Harness, run) -> None:
    ids = populate(harness.client, _now())
    error = ServerUnavailableError(
        "connect failed", user_message="The server cannot be reached right now."
    )
    harness.client.fail("send_text", error, times=1)

    async def body() -> None:
        window = await harness.open()
        await window.show_conversation(ids["alice"])
        field = window.pane.composer.field
        QTest.keyClicks(field, "hello?")
        QTest.keyClick(field, Qt.Key.Key_Return)
        await wait_until(lambda: window.toast.isVisible())
        assert window.toast.text() == "The server cannot be reached right now."
        assert "Traceback" not in window.toast.text()
        # an unexpected error is a plain sentence, never a traceback
        tasks.report(RuntimeError("secret text must not be shown"))
        assert window.toast.text() == tasks.UNEXPECTED

    run(body())


# The confirmation is a dialog window; the offscreen platform warns about its size hints.
@pytest.mark.qt_log_ignore("propagateSizeHints")
def test_reply_edit_react_delete_from_the_menu(harness: Harness, run) -> None:
    ids = populate(harness.client, _now())

    async def body() -> None:
        window = await harness.open()
        await window.show_conversation(ids["alice"])
        pane = window.pane
        theirs = pane.model.views()[0]
        mine = pane.model.views()[-1]
        assert not theirs.message.outgoing and mine.message.outgoing

        def action(view, text: str):
            menu = pane.menu_for(view)
            for a in menu.actions():
                if a.text() == text:
                    return a
                if a.menu() is not None:
                    for sub in a.menu().actions():
                        if sub.text() == text:
                            return sub
            raise AssertionError(f"no {text!r} in {[a.text() for a in menu.actions()]}")

        # others' messages cannot be edited or deleted
        texts = [a.text() for a in pane.menu_for(theirs).actions()]
        assert "Edit" not in texts and "Delete for everyone" not in texts
        # reply
        action(theirs, "Reply").trigger()
        assert pane.composer.preview.isVisibleTo(window)
        assert "Alice Martin" in pane.composer.preview_title.text()
        QTest.keyClicks(pane.composer.field, "Yes!")
        QTest.keyClick(pane.composer.field, Qt.Key.Key_Return)
        await wait_until(lambda: pane.model.views()[-1].reply_to is not None)
        assert pane.model.views()[-1].reply_to.id == theirs.id
        # react: the chip appears on the message
        action(theirs, "👍").trigger()
        await wait_until(lambda: pane.model.views()[0].reactions != ())
        assert pane.model.views()[0].reactions[0].mine
        # edit own
        action(mine, "Edit").trigger()
        assert pane.composer.field.toPlainText() == mine.message.body
        pane.composer.field.selectAll()
        QTest.keyClicks(pane.composer.field, "Yes, three for Friday")
        QTest.keyClick(pane.composer.field, Qt.Key.Key_Return)
        row = pane.model.row_of(mine.id)
        await wait_until(lambda: pane.model.views()[row].message.edited_at is not None)
        assert pane.model.views()[row].message.body == "Yes, three for Friday"
        # delete own, after the confirmation
        action(pane.model.views()[row], "Delete for everyone").trigger()
        box = pane.delete_box
        box.done(QMessageBox.StandardButton.Yes)
        await wait_until(lambda: pane.model.views()[row].message.deleted)
        assert "This message was deleted" in spoken_text(pane.model.views()[row])
        # copy puts the text on the clipboard
        action(theirs, "Copy text").trigger()
        assert QGuiApplication.clipboard().text() == theirs.message.body

    run(body())


def test_keyboard_actions_on_the_current_message(harness: Harness, run) -> None:
    ids = populate(harness.client, _now())

    async def body() -> None:
        window = await harness.open()
        await window.show_conversation(ids["alice"])
        timeline = window.pane.timeline
        timeline.setFocus()
        last = window.pane.model.rowCount() - 1
        timeline.setCurrentIndex(window.pane.model.index(last))
        QTest.keyClick(timeline, Qt.Key.Key_E)
        assert window.pane.composer.editing is not None
        QTest.keyClick(window.pane.composer.field, Qt.Key.Key_Escape)
        window.escape()
        assert window.pane.composer.editing is None
        timeline.setFocus()
        timeline.setCurrentIndex(window.pane.model.index(0))
        QTest.keyClick(timeline, Qt.Key.Key_R)
        assert window.pane.composer.reply_to is not None
        QTest.keySequence(timeline, QKeySequence.StandardKey.Copy)
        assert QGuiApplication.clipboard().text() == "Did you get the tickets?"

    run(body())


def test_drafts_are_kept_per_conversation(harness: Harness, run) -> None:
    ids = populate(harness.client, _now())

    async def body() -> None:
        window = await harness.open()
        await window.show_conversation(ids["alice"])
        QTest.keyClicks(window.pane.composer.field, "half a thought")
        await window.show_conversation(ids["bob"])
        assert window.pane.composer.text() == ""
        await wait_until(lambda: harness.client.conversations_[ids["alice"]].draft is not None)
        assert harness.client.conversations_[ids["alice"]].draft == "half a thought"
        await window.list_model.reload()
        await window.show_conversation(ids["alice"])
        assert window.pane.composer.text() == "half a thought"

    run(body())


def test_typing_and_connection_banner(harness: Harness, run) -> None:
    ids = populate(harness.client, _now())

    async def body() -> None:
        window = await harness.open()
        await window.show_conversation(ids["group"])
        harness.client.set_typing(ids["group"], BOB, True)
        await wait_until(lambda: "typing" in window.pane.header.subtitle_text())
        assert window.pane.header.subtitle_text() == "Bob Okafor is typing…"
        assert window.list_model.typing(ids["group"])
        harness.client.set_typing(ids["group"], BOB, False)
        await wait_until(lambda: window.pane.header.subtitle_text() == "4 members")
        # connection banner
        harness.client.set_connection(ConnectionState.OFFLINE)
        await wait_until(lambda: window.banner.isVisible())
        assert window.banner.text() == OFFLINE
        harness.client.set_connection(ConnectionState.OFFLINE, "The server refused this account.")
        await wait_until(lambda: window.banner.text() == "The server refused this account.")
        harness.client.set_connection(ConnectionState.ONLINE)
        await wait_until(lambda: not window.banner.isVisible())

    run(body())


def test_an_account_replaced_elsewhere_stays_on_the_banner(harness: Harness, run) -> None:
    populate(harness.client, _now())
    sentence = (
        "This account was restored on another computer. This copy no longer receives messages."
    )

    async def body() -> None:
        window = await harness.open()
        harness.client.set_connection(ConnectionState.REPLACED, sentence)
        await wait_until(lambda: window.banner.isVisible())
        assert window.banner.text() == sentence
        assert window.banner.property("state") == "error"
        # no "reconnecting", no hiding: later states cannot cover it
        harness.client.set_connection(ConnectionState.CONNECTING)
        harness.client.set_connection(ConnectionState.ONLINE)
        harness.client.set_connection(ConnectionState.OFFLINE)
        await wait_until(lambda: harness.bridge.connection is ConnectionState.OFFLINE)
        assert window.banner.isVisible() and window.banner.text() == sentence
        # without a sentence from the client, the banner still says why
        window.banner.state = None
        window.banner.set_state(ConnectionState.REPLACED)
        assert window.banner.text() == REPLACED == sentence

    run(body())


def test_long_rtl_cjk_and_emoji_messages_lay_out_and_paint(harness: Harness, run) -> None:
    ids = populate(harness.client, _now())
    texts = [
        "word " * 4000,
        "x" * 5000,
        "مرحبا، كيف حالك اليوم؟ هذه رسالة طويلة نسبيا لاختبار الالتفاف",
        "今日はいい天気ですね。散歩に行きましょう！" * 5,  # noqa: RUF001
        "👍🏽",
        "🇩🇪🇫🇷❤️",
        "👨‍👩‍👧 family",
        "see https://example.org/a?b=c and www.example.com.",
    ]

    async def body() -> None:
        window = await harness.open()
        await window.show_conversation(ids["alice"])
        for text in texts:
            harness.client.receive(ids["alice"], ALICE, text)
        model = window.pane.model
        await wait_until(lambda: model.views()[-1].message.body == texts[-1])
        delegate = window.pane.timeline.bubbles
        width = window.pane.timeline.viewport().width()
        heights = {}
        for row in range(model.rowCount()):
            index = model.index(row)
            layout = delegate.layout_for(index)
            assert layout is not None
            if layout.bubble is not None:
                # never wider than the design's maximum, never outside the view
                assert layout.bubble.width() <= 560 + 1
                assert layout.bubble.left() >= 0 and layout.bubble.right() <= width
            heights[model.views()[row].message.body] = layout.height
        assert heights[texts[0]] > 1000  # wrapped, not cut
        assert heights[texts[1]] > 500  # no spaces: wrapped anywhere
        big = delegate.layout_for(model.index(model.row_of(model.views()[-4].id)))
        assert big is not None and big.big_emoji  # 👍🏽 alone is large
        assert not delegate.layout_for(model.index(model.rowCount() - 2)).big_emoji
        link_row = model.index(model.rowCount() - 1)
        link_layout = delegate.layout_for(link_row)
        assert link_layout.doc is not None and "href" in link_layout.doc.toHtml()
        # painting every row works (RTL, CJK, emoji)
        window.pane.timeline.scrollToTop()
        image = window.grab()
        assert not image.isNull()
        # a screen reader hears who, when and what
        spoken = model.index(model.rowCount() - 6).data(Qt.ItemDataRole.AccessibleTextRole)
        assert spoken.startswith("Alice Martin, ") and spoken.endswith(texts[2])

    run(body())


def test_ten_thousand_messages_are_windowed(harness: Harness, run) -> None:
    client = harness.client
    client.add_contact_now(ALICE, "Alice")
    conversation = client.add_conversation_now(None, peer=ALICE)
    start = _now() - 10_000 * 60_000
    for i in range(10_000):
        client.add_message_now(conversation.id, ALICE, f"message {i}", at=start + i * 60_000)

    async def body() -> None:
        window = await harness.open()
        await window.show_conversation(conversation.id)
        model = window.pane.model
        assert model.rowCount() == PAGE
        assert model.views()[-1].message.body == "message 9999"
        timeline = window.pane.timeline
        # scrolling to the top pages older messages in, keeping the window bounded
        for _ in range(12):
            reads = model.reads
            timeline.verticalScrollBar().setValue(0)
            await wait_until(lambda r=reads: model.reads > r and not model.loading)
        assert model.rowCount() <= MAX_WINDOW
        assert model.has_newer  # trimmed at the bottom
        first = model.views()[0].message.body
        assert first is not None and int(first.split()[1]) < 10_000 - MAX_WINDOW
        # the delegate cached one layout per row, not one per paint
        computed = timeline.bubbles.layouts_computed
        timeline.viewport().repaint()
        assert timeline.bubbles.layouts_computed == computed

    run(body())


def test_a_burst_is_one_model_update(harness: Harness, run) -> None:
    ids = populate(harness.client, _now())

    async def body() -> None:
        window = await harness.open()
        await window.show_conversation(ids["alice"])
        model = window.pane.model
        # the list's previews are read lazily once; let that happen first
        window.sidebar.list.viewport().repaint()
        await wait_until(lambda: len(window.list_model.previews) == 6)
        inserts: list[tuple[int, int]] = []
        model.rowsInserted.connect(lambda _p, first, last: inserts.append((first, last)))
        reads_before = harness.client.calls["messages"]
        batches_before = harness.bridge.batches
        harness.client.receive_many(ids["alice"], ALICE, (f"burst {i}" for i in range(1000)))
        await wait_until(lambda: model.views()[-1].message.body == "burst 999")
        assert harness.bridge.batches - batches_before == 1
        assert len(inserts) == 1
        # no read per message: the events carried their views
        assert harness.client.calls["messages"] - reads_before <= 1
        # following the newest message, the window shrank; the rest pages back in
        assert model.rowCount() <= FOLLOW_WINDOW and model.has_older
        bodies = [v.message.body for v in model.views()]
        assert bodies == [f"burst {i}" for i in range(1000 - len(bodies), 1000)]
        assert window.list_model.previews[ids["alice"]].message.body == "burst 999"

    run(body())


def test_events_dropped_reloads(harness: Harness, run) -> None:
    ids = populate(harness.client, _now())

    async def body() -> None:
        window = await harness.open()
        await window.show_conversation(ids["alice"])
        reads = harness.client.calls["conversations"]
        harness.client.bus.publish(EventsDropped(5))
        await wait_until(lambda: harness.client.calls["conversations"] > reads)

    run(body())


def test_reply_quote_jumps_to_the_original(harness: Harness, run) -> None:
    client = harness.client
    client.add_contact_now(ALICE, "Alice")
    conversation = client.add_conversation_now(None, peer=ALICE)
    start = _now() - 2000 * 60_000
    original = client.add_message_now(conversation.id, ALICE, "the original", at=start)
    for i in range(1, 400):
        client.add_message_now(conversation.id, ALICE, f"filler {i}", at=start + i * 60_000)
    reply = client.add_message_now(
        conversation.id, client.me, "answering", reply_to=original.id, at=_now()
    )

    async def body() -> None:
        window = await harness.open()
        await window.show_conversation(conversation.id)
        pane = window.pane
        assert pane.model.row_of(original.id) == -1  # not in the window yet
        row = pane.model.row_of(reply.id)
        layout = pane.timeline.bubbles.layout_for(pane.model.index(row))
        assert layout is not None and layout.quote is not None
        pane.timeline.scrollTo(pane.model.index(row))
        await wait_until(lambda: pane.timeline.visualRect(pane.model.index(row)).isValid())
        rect = pane.timeline.visualRect(pane.model.index(row))
        click = (layout.quote.center() + QPointF(rect.topLeft())).toPoint()
        QTest.mouseClick(pane.timeline.viewport(), Qt.MouseButton.LeftButton, pos=click)
        await wait_until(lambda: pane.model.row_of(original.id) >= 0)
        assert pane.model.highlighted == original.id
        index = pane.model.index(pane.model.row_of(original.id))
        assert index.data(Qt.ItemDataRole.UserRole + 4) is True
        await wait_until(lambda: pane.model.highlighted is None, timeout=5)

    run(body())


def test_mark_read_when_visible(harness: Harness, run) -> None:
    ids = populate(harness.client, _now())

    async def body() -> None:
        window = await harness.open()
        assert window.list_model.view(ids["bob"]).unread == 3
        await window.show_conversation(ids["bob"])
        await wait_until(lambda: window.list_model.view(ids["bob"]).unread == 0)
        assert harness.client.calls["mark_read"] >= 1

    run(body())


def test_narrow_window_shows_one_pane(harness: Harness, run) -> None:
    ids = populate(harness.client, _now())

    async def body() -> None:
        window = await harness.open(width=600, height=700)
        assert window.narrow
        assert window.left.isVisible() and not window.right.isVisible()
        await window.show_conversation(ids["alice"])
        assert window.right.isVisible() and not window.left.isVisible()
        assert window.pane.header.back.isVisible()
        window.pane.header.back.click()
        assert window.left.isVisible() and not window.right.isVisible()
        window.resize(1366, 768)
        await wait_until(lambda: not window.narrow)
        assert window.left.isVisible() and window.right.isVisible()

    run(body())


def test_shortcuts_move_between_conversations(harness: Harness, run) -> None:
    ids = populate(harness.client, _now())

    async def body() -> None:
        window = await harness.open()
        order = window.list_model.ids()
        await window.show_conversation(order[0])
        window.shortcuts["next"].activated.emit()
        await wait_until(lambda: window.current_conversation() == order[1])
        window.shortcuts["previous"].activated.emit()
        await wait_until(lambda: window.current_conversation() == order[0])
        assert {s.key().toString() for s in window.shortcuts.values()} >= {
            "Ctrl+K",
            "Ctrl+F",
            "Ctrl+N",
            "Alt+Up",
            "Alt+Down",
            "Esc",
            "Ctrl+,",
        }
        assert ids["group"] == order[0]

    run(body())


def test_list_context_menu_mutes_and_archives(harness: Harness, run) -> None:
    ids = populate(harness.client, _now())

    async def body() -> None:
        window = await harness.open()
        view = window.list_model.view(ids["alice"])
        menu = window.sidebar.menu_for(view)
        next(a for a in menu.actions() if a.text() == "Mute").trigger()
        await wait_until(lambda: window.list_model.view(ids["alice"]).muted)
        view = window.list_model.view(ids["alice"])
        menu = window.sidebar.menu_for(view)
        next(a for a in menu.actions() if a.text() == "Archive").trigger()
        await wait_until(lambda: window.list_model.view(ids["alice"]) is None)
        window.sidebar.archived_button.click()
        await wait_until(lambda: window.list_model.ids() == [ids["alice"]])

    run(body())


def test_every_control_has_an_accessible_name(harness: Harness, run) -> None:
    ids = populate(harness.client, _now())

    async def body() -> None:
        from PySide6.QtWidgets import QAbstractButton, QLineEdit, QPlainTextEdit

        window = await harness.open()
        await window.show_conversation(ids["group"])
        controls = [
            w
            for w in window.findChildren(QAbstractButton)
            + window.findChildren(QLineEdit)
            + window.findChildren(QPlainTextEdit)
            if w.isVisibleTo(window)
        ]
        assert controls
        unnamed = [
            w
            for w in controls
            if not w.accessibleName() and not (isinstance(w, QAbstractButton) and w.text().strip())
        ]
        assert unnamed == []
        assert window.pane.timeline.accessibleName() == "Messages"
        assert window.sidebar.list.accessibleName() == "Conversations"

    run(body())


@pytest.mark.qt_log_ignore("propagateSizeHints", "does not support raise")
def test_hosts_the_screens_by_their_shortcuts(harness: Harness, run) -> None:
    ids = populate(harness.client, _now())

    async def body() -> None:
        window = await harness.open()
        window.shortcuts["settings"].activated.emit()
        assert type(window.dialogs["settings"]).__name__ == "SettingsDialog"
        window.dialogs["settings"].close()
        window.shortcuts["new"].activated.emit()
        assert type(window.dialogs["new"]).__name__ == "NewConversationDialog"
        window.dialogs["new"].created.emit(ids["bob"])
        await wait_until(lambda: window.current_conversation() == ids["bob"])
        window.dialogs["new"].close()
        window.shortcuts["switcher"].activated.emit()
        switcher = window.dialogs["switcher"]
        assert type(switcher).__name__ == "QuickSwitcher"
        switcher.chosen.emit(ids["alice"])
        await wait_until(lambda: window.current_conversation() == ids["alice"])
        switcher.close()
        window.pane.header.details.click()
        assert type(window.dialogs["contact"]).__name__ == "ContactDetailsDialog"
        window.dialogs["contact"].close()
        await window.show_conversation(ids["group"])
        window.pane.header.details.click()
        assert type(window.dialogs["group"]).__name__ == "GroupDetailsDialog"
        window.dialogs["group"].close()
        window.shortcuts["search"].activated.emit()
        assert window.left.currentWidget() is window.search_panel
        window.shortcuts["escape"].activated.emit()
        assert window.left.currentWidget() is window.sidebar
        # the emoji button opens the picker; a pick lands in the composer
        window.pane.composer.emoji_button.click()
        picker = window.pane.composer._picker
        assert picker is not None
        picker.picked.emit("🎉")
        assert window.pane.composer.text().endswith("🎉")

    run(body())


def test_errors_go_to_the_window_the_action_came_from(tmp_path: Path, run, qapp) -> None:
    """Two windows in one process (the demo): each action's error stays in its own."""
    theme.apply_theme(qapp, Theme.LIGHT)
    first, second = Harness(tmp_path / "a"), Harness(tmp_path / "b")
    ids = populate(first.client, _now())
    populate(second.client, _now())
    first.client.fail(
        "mute", ServerUnavailableError("down", user_message="The server is away."), times=1
    )

    async def body() -> None:
        one = await first.open()
        two = await second.open()  # the last window made owns the app-wide sink
        menu = one.sidebar.menu_for(one.list_model.view(ids["alice"]))
        next(a for a in menu.actions() if a.text() == "Mute").trigger()
        await wait_until(lambda: one.toast.isVisible())
        assert one.toast.text() == "The server is away."
        assert not two.toast.isVisible()

    try:
        run(body())
    finally:
        first.close()
        second.close()


# Offscreen, a popup menu cannot raise itself or grab the keyboard: Qt only warns.
@pytest.mark.qt_log_ignore("does not support raise", "does not support grabbing")
def test_the_app_menu_reaches_every_window_wide_action(harness: Harness, run) -> None:
    populate(harness.client, _now())

    async def body() -> None:
        from ui.views.contacts import AddContactDialog, InviteDialog
        from ui.views.link_device import LinkDeviceDialog
        from ui.views.new_conversation import NewConversationDialog
        from ui.views.settings import SettingsDialog

        window = await harness.open()
        button = window.sidebar.more_button
        assert button.accessibleName() == "Menu" and button.menu() is window.menu
        assert button.focusPolicy() & Qt.FocusPolicy.TabFocus
        texts = [a.text() for a in window.menu.actions() if not a.isSeparator()]
        assert texts == [
            "New conversation",
            "New group",
            "Add contact",
            "Your invite link and QR code",
            "Link a device",
            "Settings",
            "Lock now",
            "Quit",
        ]
        shown = {a.text(): a.shortcut().toString() for a in window.menu.actions()}
        assert shown["New conversation"] == "Ctrl+N"
        assert shown["Settings"] == "Ctrl+,"
        assert shown["Quit"] == "Ctrl+Q"
        # Alt+M opens it from the keyboard; "Lock now" only when the app can lock
        QTest.keyClick(window, Qt.Key.Key_M, Qt.KeyboardModifier.AltModifier)
        await wait_until(lambda: window.menu.isVisible())
        assert not window.menu_actions["lock"].isVisible()
        window.menu.close()
        window.lock_available = True
        window.show_menu()
        await wait_until(lambda: window.menu.isVisible())
        assert window.menu_actions["lock"].isVisible()
        window.menu.close()

        expected = {
            "group": NewConversationDialog,
            "contact": AddContactDialog,
            "invite": InviteDialog,
            "link_device": LinkDeviceDialog,
            "settings": SettingsDialog,
        }
        names = {"group": "new", "contact": "add_contact", "invite": "invite"}
        for key, cls in expected.items():
            window.menu_actions[key].trigger()
            dialog = window.dialogs[names.get(key, key)]
            assert isinstance(dialog, cls) and dialog.isVisible()
            if key == "group":
                assert dialog.group_mode.isChecked()
            dialog.reject()
        locks: list[bool] = []
        quits: list[bool] = []
        window.lock_requested.connect(lambda: locks.append(True))
        window.quit_requested.connect(lambda: quits.append(True))
        window.menu_actions["lock"].trigger()
        QTest.keyClick(window, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)
        assert locks == [True] and quits == [True]

    run(body())


def test_quick_reactions_toggle_the_own_reaction(harness: Harness, run) -> None:
    ids = populate(harness.client, _now())

    async def body() -> None:
        window = await harness.open()
        await window.show_conversation(ids["alice"])
        pane = window.pane
        timeline = pane.timeline
        bar = timeline.reactions
        assert not pane.model.views()[0].message.outgoing
        # the bar over the first message: six reactions and "more"
        assert timeline.show_reactions(pane.model.index(0))
        assert bar.isVisible() and bar.index.row() == 0
        assert [b.text() for b in bar.buttons[:6]] == ["👍", "❤️", "😂", "😮", "😢", "🙏"]
        assert bar.buttons[0].accessibleName() == "React with thumbs up"
        assert bar.more.accessibleName() == "More reactions"
        # a click adds the own reaction, a second click takes it back
        bar.buttons[1].click()
        await wait_until(lambda: bool(pane.model.views()[0].reactions))
        assert pane.model.views()[0].reactions[0].emoji == "❤️"
        assert pane.model.views()[0].reactions[0].mine and not bar.isVisible()
        assert timeline.show_reactions(pane.model.index(0))
        bar.buttons[1].click()
        await wait_until(lambda: not pane.model.views()[0].reactions)

    run(body())
