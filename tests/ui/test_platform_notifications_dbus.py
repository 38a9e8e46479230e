"""Desktop notifications through a real D-Bus session bus (ui.platform.notifications).

A private ``dbus-daemon`` and a small notification server on it (the
``org.freedesktop.Notifications`` interface, written with dbus-fast, which
desktop-notifier itself uses) stand in for the desktop's: the notification
arrives with its title, text and a click action, and a click on it reaches
``on_clicked`` with its conversation. All on the app's qasync loop.
"""

# dbus-fast reads D-Bus type signatures ("s", "as", "a{sv}") from the annotations:
# ruff: noqa: F722, F821, UP037

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from dbus_fast.aio import MessageBus
from dbus_fast.service import ServiceInterface, method
from dbus_fast.service import signal as dbus_signal

from tests.ui.conftest import Runner, wait_until
from ui.platform.notifications import DesktopNotifier

PATH = "/org/freedesktop/Notifications"
NAME = "org.freedesktop.Notifications"


class NotificationServer(ServiceInterface):
    """The part of the freedesktop notification protocol desktop-notifier uses."""

    def __init__(self) -> None:
        super().__init__(NAME)
        self.shown: list[dict[str, Any]] = []

    @method()
    def GetCapabilities(self) -> "as":
        return ["actions", "body"]

    @method()
    def GetServerInformation(self) -> "ssss":
        return ["test-server", "tests", "1.0", "1.2"]

    @method()
    def Notify(
        self,
        app_name: "s",
        replaces_id: "u",
        app_icon: "s",
        summary: "s",
        body: "s",
        actions: "as",
        hints: "a{sv}",
        expire_timeout: "i",
    ) -> "u":
        self.shown.append(
            {"app": app_name, "icon": app_icon, "title": summary, "body": body, "actions": actions}
        )
        return len(self.shown)

    @method()
    def CloseNotification(self, notification_id: "u"):  # type: ignore[no-untyped-def]
        return

    @dbus_signal()
    def ActionInvoked(self, notification_id: int, action: str) -> "us":
        return [notification_id, action]

    @dbus_signal()
    def NotificationClosed(self, notification_id: int, reason: int) -> "uu":
        return [notification_id, reason]


@pytest.fixture
def session_bus() -> Iterator[str]:
    daemon = shutil.which("dbus-daemon")
    assert daemon, "dbus-daemon is needed (apt-get install dbus)"
    process = subprocess.Popen(
        [daemon, "--session", "--nofork", "--nopidfile", "--print-address=1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        address = process.stdout.readline().strip()
        assert address.startswith("unix:"), address
        yield address
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def test_a_notification_is_shown_and_its_click_opens_the_conversation(
    session_bus: str, run: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", session_bus)  # where dbus-fast connects
    server = NotificationServer()
    notifier = DesktopNotifier(environ={"DBUS_SESSION_BUS_ADDRESS": session_bus})
    assert notifier.available()
    opened: list[int] = []
    notifier.on_clicked = opened.append

    async def scenario() -> None:
        bus = await MessageBus(bus_address=session_bus).connect()
        try:
            bus.export(PATH, server)
            await bus.request_name(NAME)
            await notifier.notify("Alice", "Are we still on for 10:30?", 42)
            await wait_until(lambda: len(server.shown) == 1)
            shown = server.shown[0]
            assert (shown["app"], shown["title"], shown["body"]) == (
                "Messenger",
                "Alice",
                "Are we still on for 10:30?",
            )
            assert "default" in shown["actions"]  # clicking the body is an action
            assert shown["icon"].endswith("messenger.png")
            server.ActionInvoked(1, "default")  # the user clicks it
            await wait_until(lambda: opened == [42])
        finally:
            notifier.close()
            bus.disconnect()
            await bus.wait_for_disconnect()

    run(scenario())
