"""Settings → Devices against the fake client, and the removed-device banner.

One row per device (this one first, with its badge; last seen in words;
the unverified warning); rename this device inline (Enter saves, Escape
cancels); remove another after a confirmation that says what happens
(Cancel keeps it); "Sign out this device" only when another device exists;
the client's sentence on failure; "Link a device" opens the link dialog;
the list follows ``DevicesChanged``. A removed device shows the banner for
good and the composer says why it cannot send.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from messenger.client import ClientError, ConnectionState
from tests.ui.conftest import wait_until
from tests.ui.fake_client import NOW_MS, REMOVED_SENTENCE, FakeClient
from ui.bridge import Bridge
from ui.views.banner import REMOVED, ConnectionBanner
from ui.views.devices import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    UNVERIFIED,
    DevicesPanel,
    last_seen_text,
)
from ui.views.link_device import LinkDeviceDialog

pytestmark = [
    pytest.mark.usefixtures("loop"),
    # the offscreen platform's note when a top-level widget is shown, not a problem here
    pytest.mark.qt_log_ignore("propagateSizeHints"),
]


@pytest.fixture(autouse=True)
def stay_open(qapp: QApplication) -> Iterator[None]:
    qapp.setQuitOnLastWindowClosed(False)
    yield


def three_devices() -> FakeClient:
    client = FakeClient(display_name="Sam Rivera")
    client.add_device_now("Laptop", this_device=True, last_seen_at=NOW_MS)
    client.add_device_now("Desktop", last_seen_at=NOW_MS - 5 * MINUTE_MS, client_id="desk")
    client.add_device_now(
        "Old netbook", last_seen_at=NOW_MS - 3 * DAY_MS, verified=False, client_id="old"
    )
    return client


async def panel(client: FakeClient, qtbot: Any, bridge: Bridge | None = None) -> DevicesPanel:
    widget = DevicesPanel(client, bridge=bridge, clock=lambda: NOW_MS / 1000)  # type: ignore[arg-type]
    qtbot.addWidget(widget)
    widget.resize(600, 500)
    widget.show()
    await wait_until(lambda: len(widget.rows) == len(client.devices_))
    return widget


def test_last_seen_words() -> None:
    now = NOW_MS
    assert last_seen_text(now - 10_000, now, this_device=True) == "Active now"
    assert last_seen_text(now - 2 * MINUTE_MS, now) == "Active now"
    assert last_seen_text(now - 5 * MINUTE_MS, now) == "Last seen 5 minutes ago"
    assert last_seen_text(now - HOUR_MS, now) == "Last seen 1 hour ago"
    assert last_seen_text(now - 3 * HOUR_MS, now) == "Last seen 3 hours ago"
    assert last_seen_text(now - DAY_MS, now) == "Last seen 1 day ago"
    assert last_seen_text(now - 30 * DAY_MS, now).startswith("Last seen on ")
    assert last_seen_text(None, now) == "Not seen yet"


def test_rows_badge_last_seen_and_unverified_warning(run: Any, qtbot: Any) -> None:
    client = three_devices()

    async def body() -> None:
        widget = await panel(client, qtbot)
        names = [r.name_label.text() for r in widget.rows]
        assert names == ["Laptop", "Desktop", "Old netbook"]
        this, desk, old = widget.rows
        assert this.badge is not None and this.badge.text() == "This device"
        assert desk.badge is None and old.badge is None
        assert this.seen_label.text() == "Active now"
        assert desk.seen_label.text() == "Last seen 5 minutes ago"
        assert old.seen_label.text() == "Last seen 3 days ago"
        assert old.warning is not None and UNVERIFIED in old.warning.text()
        assert this.warning is None and desk.warning is None
        # this device is renamed, the others removed; each control is named
        assert this.action.text() == "Rename"
        assert desk.action.accessibleName() == "Remove Desktop"
        assert old.action.accessibleName() == "Remove Old netbook"
        assert widget.sign_out_button.isVisible()
        assert widget.link_button.accessibleName() == "Link a new device"

    run(body())


def test_rename_inline_enter_saves_escape_cancels(run: Any, qtbot: Any) -> None:
    client = three_devices()

    async def body() -> None:
        widget = await panel(client, qtbot)
        row = widget.this_row()
        assert row is not None
        row.action.click()
        assert row.editing() and row.name_field.text() == "Laptop"
        row.name_field.setText("Something else")
        QTest.keyClick(row.name_field, Qt.Key.Key_Escape)
        assert not row.editing()
        assert client.calls["rename_device"] == 0
        row.action.click()
        row.name_field.setText("  Work   laptop ")
        QTest.keyClick(row.name_field, Qt.Key.Key_Return)
        await wait_until(lambda: client.calls["rename_device"] == 1)
        await wait_until(
            lambda: (r := widget.this_row()) is not None and r.name_label.text() == "Work laptop"
        )
        assert [d.name for d in client.devices_ if d.this_device] == ["Work laptop"]
        # a failed rename shows the client's sentence
        client.fail("rename_device", ClientError("x", user_message="That name is too long."))
        row = widget.this_row()
        assert row is not None
        row.action.click()
        row.name_field.setText("Another")
        row.save_button.click()  # type: ignore[union-attr]
        await wait_until(lambda: widget.error.text() == "That name is too long.")
        assert widget.error.isVisibleTo(widget)

    run(body())


def test_remove_asks_first_and_says_what_happens(run: Any, qtbot: Any) -> None:
    client = three_devices()

    async def body() -> None:
        widget = await panel(client, qtbot)
        widget.row("desk").action.click()
        dialog = widget.confirm
        assert dialog is not None and dialog.isVisible()
        assert dialog.windowTitle() == "Remove “Desktop”?"
        assert "Desktop will be signed out and will no longer receive messages" in (
            dialog.text.text()
        )
        # Escape keeps the device
        QTest.keyClick(dialog, Qt.Key.Key_Escape)
        assert not dialog.isVisible()
        assert client.calls["remove_device"] == 0
        # Enter removes (the action is the dialog's default button)
        widget.row("desk").action.click()
        dialog = widget.confirm
        assert dialog is not None and dialog.action_button.isDefault()
        QTest.keyClick(dialog, Qt.Key.Key_Return)
        await wait_until(lambda: client.calls["remove_device"] == 1)
        await wait_until(lambda: len(widget.rows) == 2)
        assert [d.client_id for d in client.devices_] == [client.me + "-c", "old"]

    run(body())


def test_remove_failure_and_sign_out_only_with_other_devices(run: Any, qtbot: Any) -> None:
    client = FakeClient()
    client.add_device_now("Laptop", this_device=True)
    client.add_device_now("Desktop", client_id="desk")

    async def body() -> None:
        widget = await panel(client, qtbot)
        client.fail("remove_device", ClientError("x", user_message="The server is busy."), times=1)
        widget.row("desk").action.click()
        assert widget.confirm is not None
        widget.confirm.action_button.click()
        await wait_until(lambda: widget.error.text() == "The server is busy.")
        assert len(widget.rows) == 2
        widget.row("desk").action.click()
        widget.confirm.action_button.click()
        await wait_until(lambda: len(widget.rows) == 1)
        # the last device: no sign-out (the server would refuse it: last_device)
        assert not widget.sign_out_button.isVisible()

    run(body())


def test_sign_out_this_device_removes_it_and_the_banner_stays(
    run: Any, qtbot: Any, tmp_path: Path
) -> None:
    client = three_devices()

    async def body() -> None:
        bridge = Bridge(client)  # type: ignore[arg-type]
        bridge.start()
        banner = ConnectionBanner()
        qtbot.addWidget(banner)
        bridge.connection_changed.connect(banner.set_state)
        widget = await panel(client, qtbot, bridge)
        widget.sign_out_button.click()
        dialog = widget.confirm
        assert dialog is not None and dialog.windowTitle() == "Sign out this device?"
        dialog.action_button.click()
        await wait_until(lambda: banner.state is ConnectionState.REMOVED)
        assert banner.text() == REMOVED_SENTENCE
        assert banner.property("state") == "error"
        # final: nothing hides it, not even "online"
        banner.set_state(ConnectionState.ONLINE)
        assert not banner.isHidden() and banner.text() == REMOVED_SENTENCE
        await bridge.stop()

    run(body())


def test_banner_removed_without_a_sentence(qapp: QApplication) -> None:
    banner = ConnectionBanner()
    banner.set_state(ConnectionState.REMOVED)
    assert banner.text() == REMOVED
    banner.set_state(ConnectionState.CONNECTING)
    assert banner.text() == REMOVED


def test_list_follows_devices_changed_and_link_button_opens_the_dialog(
    run: Any, qtbot: Any
) -> None:
    client = three_devices()

    async def body() -> None:
        bridge = Bridge(client)  # type: ignore[arg-type]
        bridge.start()
        widget = await panel(client, qtbot, bridge)
        reads = client.calls["devices"]
        # another device renamed itself: the client publishes DevicesChanged
        await client.rename_device("Laptop (renamed elsewhere)")
        await wait_until(lambda: client.calls["devices"] > reads)
        await wait_until(lambda: widget.rows[0].name_label.text() == "Laptop (renamed elsewhere)")
        widget.link_button.click()
        dialog = widget.link_dialog
        assert isinstance(dialog, LinkDeviceDialog)
        await wait_until(lambda: dialog.state() == "waiting")
        client.offer_link("Tablet")
        await wait_until(lambda: dialog.state() == "offer")
        dialog.approve_button.click()
        await wait_until(lambda: dialog.state() == "done")
        await wait_until(lambda: any(r.name_label.text() == "Tablet" for r in widget.rows))
        dialog.accept()
        await bridge.stop()

    run(body())


def test_removed_device_disables_the_composer(run: Any, qtbot: Any, tmp_path: Path) -> None:
    from tests.ui.fake_client import populate
    from ui.platform import fake_services
    from ui.preferences import PreferencesStore
    from ui.views.main_window import MainWindow

    client = FakeClient()
    ids = populate(client)

    async def body() -> None:
        bridge = Bridge(client)  # type: ignore[arg-type]
        bridge.start()
        window = MainWindow(client, bridge, PreferencesStore(tmp_path), fake_services())  # type: ignore[arg-type]
        qtbot.addWidget(window)
        window.show()
        await wait_until(lambda: window.loaded)
        await window.show_conversation(ids["alice"])
        assert not window.pane.composer.field.isReadOnly()
        client.set_connection(ConnectionState.REMOVED, REMOVED_SENTENCE)
        await wait_until(lambda: window.banner.state is ConnectionState.REMOVED)
        assert window.pane.composer.field.isReadOnly()
        assert window.pane.composer.field.placeholderText() == REMOVED_SENTENCE
        # switching conversations keeps it disabled
        await window.show_conversation(ids["bob"])
        assert window.pane.composer.field.isReadOnly()
        # and the menu has "Link a device"
        assert window.menu_actions["link_device"].text() == "Link a device"
        window.quit()

    run(body())
