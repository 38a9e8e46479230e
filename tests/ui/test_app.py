"""The App controller with a fake client: notifications, tray, app lock, errors, theme.

``App.open_main`` takes an open client, so these tests hand it a
:class:`~tests.ui.fake_client.FakeClient` and the recording platform fakes.
"""

from __future__ import annotations

import logging
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QCloseEvent, QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QWidget

from tests.ui.conftest import wait_until
from tests.ui.fake_client import ALICE, BOB, FakeClient, populate
from ui import tasks, theme
from ui.app import App, handle_unexpected, notification_text
from ui.platform import fake_services
from ui.preferences import NotificationContent, Theme
from ui.views.onboarding import OnboardingView
from ui.widgets.avatar import AVATAR_PALETTE, avatar_color, initials

pytestmark = pytest.mark.usefixtures("loop")


class Opened:
    def __init__(self, tmp_path: Path) -> None:
        self.client = FakeClient(display_name="Sam")
        self.client._profile = type(self.client.profile)(
            name="sam", id="1" * 32, path=tmp_path / "profile", created_at=1
        )
        self.ids = populate(self.client, int(time.time() * 1000))
        self.services = fake_services()
        self.app = App(tmp_path, "sam", self.services, tmp_path / "prefs")

    async def open(self) -> Any:
        window = await self.app.open_main(self.client)  # type: ignore[arg-type]
        await wait_until(lambda: window.loaded)
        return window


@pytest.fixture
def opened(tmp_path: Path, qapp: QApplication) -> Iterator[Opened]:
    qapp.setQuitOnLastWindowClosed(False)
    theme.apply_theme(qapp, Theme.LIGHT)
    o = Opened(tmp_path)
    yield o
    qapp.setQuitOnLastWindowClosed(True)
    tasks.set_error_sink(None)


# Offscreen, QWidget.raise_() (showing the window on a click) only warns.
@pytest.mark.qt_log_ignore("does not support raise")
def test_notifications_for_other_conversations_only(opened: Opened, run: Any) -> None:
    async def body() -> None:
        window = await opened.open()
        await window.show_conversation(opened.ids["alice"])
        notifier = opened.services.notifier
        # a message in another conversation notifies, with sender and text
        opened.client.receive(opened.ids["bob"], BOB, "Are you coming?")
        await wait_until(lambda: len(notifier.sent) == 1)
        sent = notifier.sent[0]
        assert (sent.title, sent.body, sent.conversation_id) == (
            "Bob Okafor",
            "Are you coming?",
            opened.ids["bob"],
        )
        # a muted conversation does not
        opened.client.receive(opened.ids["books"], ALICE, "quiet please")
        # hidden content: only "New message"
        opened.app.prefs.update(notification_content=NotificationContent.NONE)
        opened.client.receive(opened.ids["group"], ALICE, "secret plans")
        await wait_until(lambda: len(notifier.sent) == 2)
        assert (notifier.sent[1].title, notifier.sent[1].body) == ("Messenger", "New message")
        assert all("secret" not in n.body and "quiet" not in n.body for n in notifier.sent)
        # a click opens the conversation
        notifier.click(0)
        await wait_until(lambda: window.current_conversation() == opened.ids["bob"])
        # the tray shows the unread count
        assert opened.services.tray.unread == window.list_model.total_unread()
        await opened.app.shutdown()

    run(body())


def test_notification_text_levels() -> None:
    client = FakeClient()
    client.add_contact_now(ALICE, "Alice")
    c = client.add_conversation_now("Trip", [ALICE])
    view = client.message_view(client.add_message_now(c.id, ALICE, "hello").id)
    assert notification_text(NotificationContent.FULL, view, "Trip") == (
        "Alice in Trip",
        "hello",
    )
    assert notification_text(NotificationContent.SENDER, view, "Trip") == (
        "Alice in Trip",
        "New message",
    )
    assert notification_text(NotificationContent.NONE, view, "Trip", 3) == (
        "Messenger",
        "3 new messages",
    )


@pytest.mark.qt_log_ignore("does not support raise")
def test_close_to_tray_then_quit_from_the_tray(opened: Opened, run: Any) -> None:
    async def body() -> None:
        opened.app.prefs.update(close_to_tray=True)
        window = await opened.open()
        window.close()
        assert not window.isVisible()
        assert not opened.app._quit.is_set()
        opened.services.tray.click()
        assert window.isVisible()
        opened.services.tray.quit()
        assert opened.app._quit.is_set()
        await opened.app.shutdown()
        assert opened.client.closed

    run(body())


def test_app_lock_needs_the_passphrase(opened: Opened, run: Any) -> None:
    async def body() -> None:
        window = await opened.open()
        opened.app.lock()
        screen = opened.app.lock_screen
        assert opened.app.locked and screen.isVisible()
        assert screen.parentWidget() is window
        screen.passphrase.setText("wrong")
        screen.submit()
        await wait_until(lambda: bool(screen.error_text()))
        assert opened.app.locked
        screen.passphrase.setText(opened.client.passphrase)
        screen.submit()
        await wait_until(lambda: not opened.app.locked)
        await opened.app.shutdown()

    run(body())


def test_unexpected_errors_are_logged_without_their_message(
    opened: Opened, run: Any, tmp_path: Path
) -> None:
    async def body() -> None:
        window = await opened.open()
        secret = " ".join(["the user's", "secret", "message text"])
        try:
            raise ValueError(secret)
        except ValueError as error:
            handle_unexpected(type(error), error, error.__traceback__)
        assert window.toast.text() == tasks.UNEXPECTED
        log = tmp_path / "profile" / "logs" / "ui.log"
        for handler in logging.getLogger().handlers:
            handler.flush()
        text = log.read_text(encoding="utf-8")
        assert "unexpected ValueError" in text
        assert "secret message" not in text
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
        await opened.app.shutdown()

    run(body())


def test_theme_follows_the_setting_and_the_system(
    qapp: QApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    theme.apply_theme(qapp, Theme.DARK)
    assert theme.is_dark()
    assert qapp.palette().color(QPalette.ColorRole.Window) == QColor("#17181B")
    theme.apply_theme(qapp, Theme.LIGHT)
    assert not theme.is_dark()
    # offscreen the OS scheme is Unknown and cannot change: play the OS
    hints = QGuiApplication.styleHints()
    seen: list[bool] = []
    theme.notifier().changed.connect(seen.append)
    theme.apply_theme(qapp, Theme.SYSTEM)
    monkeypatch.setattr(theme, "_system_is_dark", lambda: True)
    hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert theme.is_dark() and seen[-1] is True
    # an explicit choice stops following the OS
    theme.apply_theme(qapp, Theme.LIGHT)
    hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)
    assert not theme.is_dark()
    theme.notifier().changed.disconnect(seen.append)


def _contrast(a: QColor, b: QColor) -> float:
    def lum(c: QColor) -> float:
        parts = [c.redF(), c.greenF(), c.blueF()]
        lin = [x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4 for x in parts]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    high, low = sorted((lum(a), lum(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("dark", [False, True])
def test_palettes_pass_wcag_aa(dark: bool) -> None:
    c = theme.palette_colors(dark)
    for background in (c.window, c.sidebar, c.bubble_other):
        assert _contrast(c.text, background) >= 4.5
    for background in (c.window, c.sidebar):
        assert _contrast(c.muted, background) >= 4.5
    assert _contrast(c.text_on_accent, c.bubble_own) >= 4.5
    for color in AVATAR_PALETTE:
        assert _contrast(QColor("#FFFFFF"), QColor(color)) >= 4.5


def test_avatar_colour_is_stable_and_initials_are_short() -> None:
    assert avatar_color("a11ce").name() == avatar_color("a11ce").name()
    assert len({avatar_color(f"acct-{i}").name() for i in range(200)}) == len(AVATAR_PALETTE)
    assert initials("Alice Martin") == "AM"
    assert initials("alice") == "A"
    assert initials("Jean-Luc de la Tour") == "JT"
    assert initials("🥾 Weekend hike") == "WH"
    assert initials("🎉") == "?"
    assert initials("李小龙 Bruce") == "李B"


def test_an_invite_link_from_the_command_line_adds_the_contact(
    tmp_path: Path, run: Any, qapp: QApplication
) -> None:
    qapp.setQuitOnLastWindowClosed(False)
    client = FakeClient()
    services = fake_services()
    app = App(tmp_path, "sam", services, tmp_path / "prefs", link="dana@chat.example.org")

    async def body() -> None:
        window = await app.open_main(client)  # type: ignore[arg-type]
        await wait_until(lambda: "acct-dana" in client.contacts_)
        await wait_until(lambda: window.toast.isVisible())
        assert window.toast.text() == "dana was added."
        await app.shutdown()

    try:
        run(body())
    finally:
        qapp.setQuitOnLastWindowClosed(True)
        tasks.set_error_sink(None)


class _Screen(QWidget):
    """A previous screen that records whether the main window was up when it closed."""

    def __init__(self, app: App) -> None:
        super().__init__()
        self.app = app
        self.window_visible_at_close: bool | None = None

    def closeEvent(self, event: QCloseEvent) -> None:
        window = self.app.window
        self.window_visible_at_close = window is not None and window.isVisible()
        super().closeEvent(event)


def test_unlocking_a_profile_without_an_account_resumes_the_first_run(
    tmp_path: Path, run: Any, qapp: QApplication
) -> None:
    qapp.setQuitOnLastWindowClosed(False)
    client = FakeClient(has_account=False)
    app = App(tmp_path, "sam", fake_services(), tmp_path / "prefs", server_url="https://x.test")
    reported: list[str] = []
    tasks.set_error_sink(reported.append)

    async def body() -> None:
        app._opened(client)  # type: ignore[arg-type]  # what UnlockView.unlocked does
        await wait_until(lambda: isinstance(app.screen, OnboardingView))
        assert isinstance(app.screen, OnboardingView)
        assert app.screen._client is client
        assert app.screen.server_field.text() == "https://x.test"
        assert app.window is None and client.calls["start"] == 0 and reported == []
        await app.shutdown()
        assert client.closed  # the half-done first run's store is closed on quit

    try:
        run(body())
    finally:
        qapp.setQuitOnLastWindowClosed(True)
        tasks.set_error_sink(None)


def test_a_new_profile_starts_onboarding_with_the_command_line_server(
    tmp_path: Path, run: Any, qapp: QApplication
) -> None:
    qapp.setQuitOnLastWindowClosed(False)
    app = App(tmp_path, "new", fake_services(), tmp_path / "prefs", server_url="http://127.0.0.1:9")

    async def body() -> None:
        await app.start()
        assert isinstance(app.screen, OnboardingView)
        assert app.screen.server_field.text() == "http://127.0.0.1:9"
        await app.shutdown()

    try:
        run(body())
    finally:
        qapp.setQuitOnLastWindowClosed(True)
        tasks.set_error_sink(None)


def test_the_main_window_shows_before_the_previous_screen_closes(
    tmp_path: Path, run: Any, qapp: QApplication
) -> None:
    qapp.setQuitOnLastWindowClosed(False)
    client = FakeClient()
    app = App(tmp_path, "sam", fake_services(), tmp_path / "prefs")
    screen = _Screen(app)
    screen.show()
    app.screen = screen

    async def body() -> None:
        window = await app.open_main(client)  # type: ignore[arg-type]
        assert screen.window_visible_at_close is True
        assert window.isVisible() and app.screen is None
        await app.shutdown()

    try:
        run(body())
    finally:
        qapp.setQuitOnLastWindowClosed(True)
        tasks.set_error_sink(None)


FORWARDED = "messenger://add?server=https%3A%2F%2Fchat.example.org&account=acct-dana&handle=dana"


# Offscreen, QWidget.raise_() only warns.
@pytest.mark.qt_log_ignore("does not support raise")
def test_a_forwarded_link_opens_add_contact_prefilled(opened: Opened, run: Any) -> None:
    async def body() -> None:
        window = await opened.open()
        window.showMinimized()
        opened.app.open_link(FORWARDED)
        dialog = window.dialogs["add_contact"]
        await wait_until(lambda: dialog.isVisible())
        assert not window.isMinimized()
        assert dialog.address.text() == FORWARDED
        assert "acct-dana" not in opened.client.contacts_  # the user confirms
        dialog.add_button.click()
        await wait_until(lambda: "acct-dana" in opened.client.contacts_)
        await opened.app.shutdown()

    run(body())


@pytest.mark.qt_log_ignore("does not support raise")
def test_a_forwarded_link_fills_the_first_run_server_step(
    tmp_path: Path, run: Any, qapp: QApplication
) -> None:
    qapp.setQuitOnLastWindowClosed(False)
    app = App(tmp_path, "new", fake_services(), tmp_path / "prefs")

    async def body() -> None:
        await app.start()
        assert isinstance(app.screen, OnboardingView)
        app.open_link(FORWARDED)
        assert app.screen.server_field.text() == FORWARDED
        assert app.screen.current_card() is app.screen.server_card
        await app.shutdown()

    try:
        run(body())
    finally:
        qapp.setQuitOnLastWindowClosed(True)
        tasks.set_error_sink(None)
