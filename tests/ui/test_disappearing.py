"""Disappearing messages in the GUI with the fake client (docs/attachments.md §7).

The header's timer button and its menu (presets and a custom value), the
same in the conversation details, the countdown in the bubbles (one timer
per timeline, painted from the clock), and expired rows leaving the
timeline, the list's preview, the layout cache and the viewer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from messenger.client import InvalidTimerError, MessageKind, TransferState
from tests.ui.conftest import wait_until
from tests.ui.fake_client import ALICE, HOUR, MINUTE, populate, scenic_image
from tests.ui.test_main_window import Harness, _now, open_chat
from ui import theme
from ui.models.message_list import remaining_text, short_duration, spoken_text
from ui.preferences import Theme
from ui.views.conversation import COUNTDOWN_MS
from ui.views.group import GroupDetailsDialog
from ui.views.timer_menu import CustomTimerDialog, TimerButton

pytestmark = [
    pytest.mark.usefixtures("loop"),
    pytest.mark.qt_log_ignore(
        "does not support raise", "does not support grabbing", "propagateSizeHints"
    ),
]


@pytest.fixture
def harness(tmp_path: Path, qapp: QApplication) -> Iterator[Harness]:
    theme.apply_theme(qapp, Theme.LIGHT)
    h = Harness(tmp_path)
    yield h
    h.close()


def choose(button: TimerButton, label: str) -> None:
    button.click()
    menu = button.menu_open
    assert menu is not None and menu.isVisible()
    (action,) = [a for a in menu.actions() if a.text() == label]
    action.trigger()
    menu.close()


def test_the_header_menu_sets_the_timer_and_the_header_follows(harness: Harness, run: Any) -> None:
    async def body() -> None:
        window, cid = await open_chat(harness)
        timer = window.pane.header.timer
        assert timer.isVisible()
        assert timer.accessibleName() == "Disappearing messages: off"
        assert timer.text() == ""
        timer.click()
        menu = timer.menu_open
        assert menu is not None
        labels = [a.text() for a in menu.actions() if not a.isSeparator()]
        assert labels == [
            "Disappearing messages",
            "Off",
            "5 minutes",
            "1 hour",
            "1 day",
            "1 week",
            "Custom…",
        ]
        assert [a.text() for a in menu.actions() if a.isChecked()] == ["Off"]
        menu.close()
        choose(timer, "1 hour")
        await wait_until(lambda: harness.client.timers_set == [(cid, 3600)])
        await wait_until(lambda: timer.text() == "1h")
        assert timer.accessibleName() == "Disappearing messages: 1 hour"
        # the note in the timeline says who set it
        await wait_until(
            lambda: (
                window.pane.model.views()[-1].message.body
                == "You set disappearing messages to 1 hour"
            )
        )
        # the current value is checked; choosing it again changes nothing
        choose(timer, "1 hour")
        assert harness.client.calls["set_disappearing_timer"] == 1
        choose(timer, "Off")
        await wait_until(lambda: timer.text() == "")
        assert harness.client.timers_set[-1] == (cid, 0)

    run(body())


def test_a_custom_timer_from_10_seconds_to_a_year(harness: Harness, run: Any) -> None:
    async def body() -> None:
        window, cid = await open_chat(harness)
        timer = window.pane.header.timer
        choose(timer, "Custom…")
        dialog = timer.dialog
        assert isinstance(dialog, CustomTimerDialog) and dialog.isVisible()
        dialog.number.setValue(5)
        dialog.unit.setCurrentIndex(0)  # 5 seconds: too short
        assert not dialog.ok.isEnabled() and dialog.error.isVisible()
        dialog.number.setValue(60)
        dialog.unit.setCurrentIndex(4)  # 60 weeks: too long
        assert not dialog.ok.isEnabled()
        dialog.number.setValue(90)
        dialog.unit.setCurrentIndex(0)
        assert dialog.ok.isEnabled() and not dialog.error.isVisible()
        dialog.ok.click()
        await wait_until(lambda: harness.client.timers_set == [(cid, 90)])
        await wait_until(lambda: timer.accessibleName() == "Disappearing messages: 90 seconds")
        assert timer.text() == "2m"
        # reopened, the dialog shows the value
        choose(timer, "Custom (90 seconds)…")
        again = timer.dialog
        assert again is not None
        assert (again.number.value(), again.unit.currentText()) == (90, "seconds")
        again.reject()

    run(body())


def test_a_refused_timer_says_why(harness: Harness, run: Any) -> None:
    async def body() -> None:
        window, _cid = await open_chat(harness)
        harness.client.fail("set_disappearing_timer", InvalidTimerError("x"))
        choose(window.pane.header.timer, "1 day")
        await wait_until(lambda: window.toast.isVisible())
        assert window.toast.text() == InvalidTimerError.default_user_message
        assert window.pane.header.timer.text() == ""

    run(body())


def test_the_details_dialog_sets_the_timer(harness: Harness, run: Any) -> None:
    async def body() -> None:
        ids = populate(harness.client, _now())
        window = await harness.open()
        dialog = GroupDetailsDialog(harness.client, ids["group"], window, bridge=harness.bridge)  # type: ignore[arg-type]
        dialog.show()
        await wait_until(lambda: dialog.view is not None)
        assert dialog.timer_box.isVisible()
        assert dialog.timer.text() == "Off"
        assert dialog.timer.accessibleName() == "Disappearing messages: off"
        choose(dialog.timer, "1 week")
        await wait_until(lambda: harness.client.timers_set == [(ids["group"], 604800)])
        await wait_until(lambda: dialog.timer.text() == "1 week")
        dialog.close()

    run(body())


def test_the_countdown_in_the_bubble(harness: Harness, run: Any) -> None:
    async def body() -> None:
        now = _now()
        ids = populate(harness.client, now)
        cid = ids["alice"]
        client = harness.client
        timed = client.add_message_now(
            cid, ALICE, "the code is 4471", expires_after=3600, expires_at=now + 59 * MINUTE + 1
        )
        waiting = client.add_message_now(cid, ALICE, "not read yet", expires_after=86400)
        plain = client.add_message_now(cid, ALICE, "no timer")
        window = await harness.open()
        await window.show_conversation(cid)
        pane = window.pane
        bubbles = pane.timeline.bubbles
        clock = [now]
        bubbles.clock = lambda: clock[0]
        views = {v.id: v for v in pane.model.views()}
        assert remaining_text(views[timed.id], now) == "1h"
        assert remaining_text(views[timed.id], now + 2 * MINUTE) == "58m"
        assert remaining_text(views[waiting.id], now) == "1d"  # not counting yet
        assert remaining_text(views[plain.id], now) is None
        assert "Disappears in" in spoken_text(views[timed.id])
        # one timer for the whole timeline, every few seconds
        assert pane.timeline.countdown.isActive()
        assert pane.timeline.countdown.interval() == COUNTDOWN_MS <= 10_000
        assert pane.model.has_timers()
        # the painted countdown changes with the clock, without a relayout
        index = pane.model.index(pane.model.row_of(timed.id))
        rect = pane.timeline.visualRect(index)
        height = rect.height()
        pane.timeline.viewport().repaint()
        before = pane.timeline.viewport().grab(rect).toImage()
        computed = bubbles.layouts_computed
        clock[0] = now + 30 * MINUTE
        pane.timeline.tick_countdowns()
        pane.timeline.viewport().repaint()
        after = pane.timeline.viewport().grab(rect).toImage()
        assert before != after
        assert bubbles.layouts_computed == computed
        assert pane.timeline.visualRect(index).height() == height

    run(body())


def test_short_durations() -> None:
    assert short_duration(0) == "0s"
    assert short_duration(45) == "45s"
    assert short_duration(60) == "1m"
    assert short_duration(61) == "2m"
    assert short_duration(3599) == "1h"
    assert short_duration(3600) == "1h"
    assert short_duration(59 * 60) == "59m"
    assert short_duration(86400 * 6 + 1) == "1w"
    assert short_duration(86400 * 3) == "3d"
    assert short_duration(604800 * 2) == "2w"
    assert short_duration(-5) == "0s"


def test_expired_messages_leave_the_timeline_the_list_and_the_viewer(
    harness: Harness, run: Any
) -> None:
    async def body() -> None:
        now = _now()
        ids = populate(harness.client, now)
        cid = ids["alice"]
        client = harness.client
        keep = client.add_message_now(cid, ALICE, "stays", at=now - 3 * HOUR)
        image = client.add_file_now(
            cid,
            ALICE,
            "secret.png",
            scenic_image(300, 200),
            media_type="image/png",
            width=300,
            height=200,
            state=TransferState.DOWNLOADED,
        )
        secret = client.add_message_now(
            cid, ALICE, "secret words", expires_after=60, expires_at=now + 60_000
        )
        window = await harness.open()
        await window.show_conversation(cid)
        pane = window.pane
        await wait_until(lambda: pane.model.row_of(secret.id) >= 0)
        await wait_until(lambda: window.list_model.previews.get(cid) is not None)
        assert window.list_model.previews[cid].id == secret.id
        pane.open_viewer(pane.model.view_at(pane.model.row_of(image.id)))
        assert pane.viewer is not None
        images = pane.timeline.bubbles.images
        await wait_until(lambda: images._full.get(image.id) is not None)
        rows = pane.model.rowCount()
        client.expire(cid, [secret.id, image.id])
        await wait_until(lambda: pane.model.rowCount() == rows - 2)
        assert pane.model.row_of(secret.id) < 0 and pane.model.row_of(image.id) < 0
        assert pane.model.row_of(keep.id) >= 0
        # nothing of them is kept: the viewer closed, the pictures and layouts dropped
        assert pane.viewer is None
        assert image.id not in images._full and image.id not in images._thumbs
        assert secret.id not in pane.timeline.bubbles._cache
        # the list's preview is read again (it showed the expired text)
        await wait_until(
            lambda: (
                window.list_model.previews.get(cid) is not None
                and window.list_model.previews[cid].id not in (secret.id, image.id)
            )
        )
        texts = [v.message.body for v in pane.model.views()]
        assert "secret words" not in texts
        assert all(v.message.kind is not MessageKind.FILE for v in pane.model.views())

    run(body())


def test_the_timer_button_is_hidden_where_one_cannot_send(harness: Harness, run: Any) -> None:
    async def body() -> None:
        window, cid = await open_chat(harness)
        harness.client.conversations_[cid] = dataclasses.replace(
            harness.client.conversations_[cid], left_at=_now()
        )
        await window.show_conversation(cid)
        view = harness.client.conversation_view(cid)
        window.pane.set_view(view)
        assert not window.pane.header.timer.isVisible()
        assert window.pane.header.timer.focusPolicy() & Qt.FocusPolicy.TabFocus

    run(body())


def test_an_expired_message_leaves_the_quotes_and_the_composer(harness: Harness, run: Any) -> None:
    async def body() -> None:
        now = _now()
        ids = populate(harness.client, now)
        cid = ids["alice"]
        client = harness.client
        secret = client.add_message_now(
            cid, ALICE, "the secret plan", expires_after=60, expires_at=now + 60_000
        )
        reply = client.add_message_now(cid, client.me, "ok!", reply_to=secret.id)
        window = await harness.open()
        await window.show_conversation(cid)
        pane = window.pane
        await wait_until(lambda: pane.model.row_of(reply.id) >= 0)
        quoting = pane.model.view_at(pane.model.row_of(reply.id))
        assert quoting is not None and quoting.reply_to is not None
        pane.composer.start_reply(pane.model.view_at(pane.model.row_of(secret.id)))
        assert pane.composer.preview.isVisible()
        client.expire(cid, [secret.id])
        await wait_until(lambda: pane.model.row_of(secret.id) < 0)
        quoting = pane.model.view_at(pane.model.row_of(reply.id))
        assert quoting is not None and quoting.reply_to is None
        assert "in reply to" not in spoken_text(quoting)
        assert pane.composer.reply_to is None and not pane.composer.preview.isVisible()

    run(body())
