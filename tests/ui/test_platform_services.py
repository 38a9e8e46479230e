"""Tray, notifications, keyring state and the services bundle (ui.platform)."""

from __future__ import annotations

import logging

import pytest
from PySide6.QtGui import QColor, QIcon
from PySide6.QtWidgets import QApplication, QSystemTrayIcon
from pytestqt.qtbot import QtBot

from messenger.client import KeyringProblem
from tests.ui.conftest import Runner
from ui import resources
from ui.platform import (
    FakeKeyringState,
    FakeNotifier,
    FakeTray,
    KeyringState,
    KeyringStatus,
    Notifier,
    PlatformServices,
    fake_services,
    real_services,
)
from ui.platform.keyring_state import SENTENCES
from ui.platform.notifications import DesktopNotifier, session_bus_available
from ui.platform.tray import BADGE_COLOUR, QtTray, badge_icon, badge_text

# -- tray ---------------------------------------------------------------------------------


def test_badge_text() -> None:
    assert [badge_text(n) for n in (-1, 0, 1, 9, 42, 99, 100, 5000)] == [
        "",
        "",
        "1",
        "9",
        "42",
        "99",
        "99+",
        "99+",
    ]


def _badge_pixels(icon: QIcon, size: int) -> int:
    image = icon.pixmap(size, size).toImage()
    red = QColor(BADGE_COLOUR)
    found = 0
    for x in range(size // 2, size):
        for y in range(size // 2):
            pixel = image.pixelColor(x, y)
            if abs(pixel.red() - red.red()) < 8 and abs(pixel.green() - red.green()) < 8:
                found += 1
    return found


def test_the_badge_is_painted_top_right(qapp: QApplication) -> None:
    base = resources.app_icon()
    assert _badge_pixels(base, 64) == 0
    assert _badge_pixels(badge_icon(base, 3), 64) > 100
    assert badge_icon(base, 0) is base


def test_the_real_tray_is_absent_offscreen_and_the_app_goes_on(qapp: QApplication) -> None:
    assert not QSystemTrayIcon.isSystemTrayAvailable()
    tray = QtTray()
    assert not tray.available()
    tray.set_unread(5)  # no icon: remembered, nothing shown, no warning
    assert tray.unread == 5
    tray.close()


def test_the_fake_tray_records_and_plays_the_user(qtbot: QtBot) -> None:
    tray = FakeTray()
    assert tray.available()
    tray.set_unread(7)
    assert tray.unread == 7
    with qtbot.waitSignal(tray.activated, timeout=1000):
        tray.click()
    with qtbot.waitSignal(tray.quit_requested, timeout=1000):
        tray.quit()
    tray.close()
    assert not tray.available()
    assert not FakeTray(available=False).available()


# -- notifications -------------------------------------------------------------------------


def test_session_bus_detection() -> None:
    assert session_bus_available({"DBUS_SESSION_BUS_ADDRESS": "unix:path=/x"})
    assert not session_bus_available({})
    assert not session_bus_available({"XDG_RUNTIME_DIR": "/nonexistent-dir"})


def test_without_dbus_notify_is_quiet(
    qapp: QApplication, run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = DesktopNotifier(environ={})
    assert isinstance(notifier, Notifier)
    assert not notifier.available()
    with caplog.at_level(logging.DEBUG):
        run(notifier.notify("Alice", "hi", 3))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_failing_notification_service_is_quiet(
    qapp: QApplication, run: Runner, caplog: pytest.LogCaptureFixture
) -> None:
    # A bus address that leads nowhere: desktop-notifier's backend fails to connect.
    notifier = DesktopNotifier(environ={"DBUS_SESSION_BUS_ADDRESS": "unix:path=/nonexistent"})
    assert notifier.available()
    with caplog.at_level(logging.DEBUG):
        run(notifier.notify("Alice", "hi", 3))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_click_on_a_notification_opens_its_conversation(qtbot: QtBot) -> None:
    notifier = DesktopNotifier(environ={})
    opened: list[int] = []
    notifier.on_clicked = opened.append
    with qtbot.waitSignal(notifier.clicked, timeout=1000) as signal:
        notifier._clicked(12)  # what desktop-notifier calls on a click
    assert signal.args == [12]
    assert opened == [12]


def test_the_fake_notifier_records_and_clicks(qtbot: QtBot, run: Runner) -> None:
    notifier = FakeNotifier()
    assert isinstance(notifier, Notifier)
    run(notifier.notify("Alice", "hi", 4))
    run(notifier.notify("Bob", "yo", 9))
    assert [(n.title, n.body, n.conversation_id) for n in notifier.sent] == [
        ("Alice", "hi", 4),
        ("Bob", "yo", 9),
    ]
    opened: list[int] = []
    notifier.on_clicked = opened.append
    with qtbot.waitSignal(notifier.clicked, timeout=1000) as signal:
        notifier.click(0)
    assert signal.args == [4]
    assert opened == [4]
    silent = FakeNotifier(available=False)
    run(silent.notify("Alice", "hi", 4))
    assert silent.sent == []


# -- keyring state ----------------------------------------------------------------------------


class _Client:
    def __init__(self, in_keyring: bool, takes: bool = True) -> None:
        self.key_in_keyring = in_keyring
        self._takes = takes

    async def remember_key(self) -> bool:
        self.key_in_keyring = self._takes
        return self._takes


def test_keyring_state_from_the_client(run: Runner) -> None:
    state = KeyringState()
    assert state.status(_Client(True)) is KeyringStatus.SAVED  # type: ignore[arg-type]
    assert state.status(_Client(False)) is KeyringStatus.NOT_SAVED  # type: ignore[arg-type]
    assert state.status_of_problem(KeyringProblem.UNAVAILABLE) is KeyringStatus.UNAVAILABLE
    assert state.status_of_problem(KeyringProblem.MISSING) is KeyringStatus.NOT_SAVED
    assert state.status_of_problem(KeyringProblem.STALE) is KeyringStatus.STALE
    assert run(state.remember(_Client(False))) is KeyringStatus.SAVED  # type: ignore[arg-type]
    refused = _Client(False, takes=False)
    assert run(state.remember(refused)) is KeyringStatus.UNAVAILABLE  # type: ignore[arg-type]
    for status in KeyringStatus:
        sentence = state.sentence(status)
        assert sentence == SENTENCES[status]
        assert sentence.endswith(".") and "keyring" in sentence


def test_the_fake_keyring_state(run: Runner) -> None:
    fake = FakeKeyringState(KeyringStatus.NOT_SAVED)
    assert fake.status(_Client(True)) is KeyringStatus.NOT_SAVED  # type: ignore[arg-type]
    assert run(fake.remember(_Client(False))) is KeyringStatus.SAVED  # type: ignore[arg-type]
    assert fake.remembered == 1
    none = FakeKeyringState()
    assert run(none.remember(_Client(False))) is KeyringStatus.UNAVAILABLE  # type: ignore[arg-type]


# -- the bundle -------------------------------------------------------------------------------


def test_fake_services(qapp: QApplication) -> None:
    services = fake_services(tray=False, notifications=False, keyring=KeyringStatus.SAVED)
    assert isinstance(services, PlatformServices)
    assert not services.tray.available()
    assert not services.notifier.available()
    assert isinstance(services.keyring_state, FakeKeyringState)
    assert services.keyring_state.fixed is KeyringStatus.SAVED
    services.close()


def test_real_services_offscreen(qapp: QApplication) -> None:
    services = real_services()
    assert isinstance(services.notifier, DesktopNotifier)
    assert isinstance(services.tray, QtTray)
    assert not services.tray.available()  # offscreen has no tray
    assert type(services.keyring_state) is KeyringState
    services.close()
