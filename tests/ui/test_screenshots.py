"""Screenshots of the main screens for the README, light and dark.

Writes PNGs into ``docs/screenshots/``: the main window at 1366x768 with a
realistic group conversation (several senders, replies, reactions, a day
separator, delivery ticks) and the conversation list with unread badges,
in light and dark; the same at device pixel ratio 2; a narrow window; and
the onboarding and settings screens. Each image is checked to have the
expected size and to be more than a blank fill.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QApplication, QWidget

from tests.ui.conftest import wait_until
from tests.ui.fake_client import BOB, FakeClient, populate
from ui import tasks, theme
from ui.bridge import Bridge
from ui.platform import fake_services
from ui.preferences import PreferencesStore, Theme
from ui.views.main_window import MainWindow

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
SIZE = QSize(1366, 768)

pytestmark = pytest.mark.usefixtures("loop")


@pytest.fixture
def out() -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    return OUT


@pytest.fixture(params=[Theme.LIGHT, Theme.DARK], ids=["light", "dark"])
def scheme(request: Any, qapp: QApplication) -> Iterator[Theme]:
    theme.apply_theme(qapp, request.param)
    yield request.param
    theme.apply_theme(qapp, Theme.LIGHT)


def grab(widget: QWidget, scale: float = 1.0) -> QImage:
    """``widget`` rendered at ``scale`` (2.0: as on a HiDPI screen)."""
    if scale == 1.0:
        return widget.grab().toImage()
    pixmap = QPixmap(widget.size() * scale)
    pixmap.setDevicePixelRatio(scale)
    pixmap.fill(Qt.GlobalColor.transparent)
    widget.render(pixmap)
    return pixmap.toImage()


def check_and_save(image: QImage, path: Path, size: QSize) -> None:
    assert image.size() == size, (image.size(), size)
    # more than a blank fill: sample a grid of pixels and count colours
    colours = {
        image.pixel(x, y)
        for x in range(0, image.width(), max(1, image.width() // 60))
        for y in range(0, image.height(), max(1, image.height() // 40))
    }
    assert len(colours) > 12
    assert image.save(str(path))
    assert path.stat().st_size > 10_000


async def main_window(
    tmp_path: Path, extra: Callable[[FakeClient, dict[str, int]], None] | None = None
) -> tuple[MainWindow, dict[str, int]]:
    client = FakeClient(display_name="Sam Rivera")
    ids = populate(client, int(time.time() * 1000))
    if extra is not None:
        extra(client, ids)
    bridge = Bridge(client)
    bridge.start()
    window = MainWindow(client, bridge, PreferencesStore(tmp_path), fake_services())  # type: ignore[arg-type]
    window.resize(SIZE)
    window.show()
    await wait_until(lambda: window.loaded)
    await window.show_conversation(ids["group"])
    window.sidebar.list.viewport().repaint()
    await wait_until(lambda: len(window.list_model.previews) == 6)
    # the open conversation is marked read once its newest message is seen
    await wait_until(lambda: window.list_model.view(ids["group"]).unread == 0)
    window.pane.timeline.scrollToBottom()
    window.pane.composer.field.clearFocus()
    return window, ids


def test_main_window(tmp_path: Path, run: Any, out: Path, scheme: Theme) -> None:
    async def body() -> None:
        window, ids = await main_window(tmp_path)
        try:
            name = scheme.value
            check_and_save(grab(window), out / f"main-{name}.png", SIZE)
            check_and_save(grab(window, 2.0), out / f"main-{name}@2x.png", SIZE * 2)
            # someone typing, and a reply being written
            client = window.client
            assert isinstance(client, FakeClient)
            client.set_typing(ids["group"], BOB, True)
            await wait_until(lambda: "typing" in window.pane.header.subtitle_text())
            timeline = window.pane.timeline
            before = timeline.height()
            window.pane.composer.start_reply(window.pane.model.views()[-1])
            window.pane.composer.field.setPlainText("Great, see you at the station!")
            # the preview bar takes room; the timeline stays at its newest message
            await wait_until(lambda: timeline.height() < before and timeline.at_bottom())
            check_and_save(grab(window), out / f"composer-{name}.png", SIZE)
        finally:
            window.quit()
            tasks.set_error_sink(None)

    run(body())


def test_conversation_that_cannot_go_on(tmp_path: Path, run: Any, out: Path, scheme: Theme) -> None:
    """The strip with "Start again" over a group a member broke (1x and 2x)."""

    async def body() -> None:
        window, ids = await main_window(tmp_path)
        try:
            client = window.client
            assert isinstance(client, FakeClient)
            client.mark_stuck_now(ids["group"])
            await wait_until(lambda: window.pane.restart_bar.isVisible())
            window.pane.timeline.scrollToBottom()
            name = scheme.value
            check_and_save(grab(window), out / f"restart-{name}.png", SIZE)
            check_and_save(grab(window, 2.0), out / f"restart-{name}@2x.png", SIZE * 2)
        finally:
            window.quit()
            tasks.set_error_sink(None)

    run(body())


def test_narrow_window(tmp_path: Path, run: Any, out: Path, qapp: QApplication) -> None:
    theme.apply_theme(qapp, Theme.LIGHT)

    async def body() -> None:
        window, _ = await main_window(tmp_path)
        try:
            window.resize(600, 768)
            await wait_until(lambda: window.narrow)
            check_and_save(grab(window), out / "narrow-light.png", QSize(600, 768))
        finally:
            window.quit()
            tasks.set_error_sink(None)

    run(body())


@pytest.mark.qt_log_ignore("propagateSizeHints")
def test_onboarding_and_settings(tmp_path: Path, run: Any, out: Path, scheme: Theme) -> None:
    from ui.views.onboarding import OnboardingView
    from ui.views.settings import SettingsDialog

    class NoServer:
        async def start(self) -> str:
            raise AssertionError("not started in a screenshot")

    async def body() -> None:
        name = scheme.value
        onboarding = OnboardingView(tmp_path / "data", "screenshot", NoServer())
        onboarding.resize(SIZE)
        onboarding.show()
        await wait_until(lambda: onboarding.isVisible())
        check_and_save(grab(onboarding), out / f"onboarding-{name}.png", SIZE)
        onboarding.close()
        window, _ = await main_window(tmp_path)
        try:
            dialog = SettingsDialog(window.client, window.prefs, window)  # type: ignore[arg-type]
            dialog.resize(820, 560)
            dialog.show()
            await wait_until(lambda: dialog.isVisible())
            await wait_until(lambda: window.client.calls["account"] >= 2)  # type: ignore[attr-defined]
            check_and_save(grab(dialog), out / f"settings-{name}.png", dialog.size())
            dialog.close()
        finally:
            window.quit()
            tasks.set_error_sink(None)

    run(body())


def test_settings_pages_at_2x_and_progress_states(
    tmp_path: Path, run: Any, out: Path, scheme: Theme
) -> None:
    """The settings pages with switches at 2x, and the progress of sign-up and backup."""
    from ui.local_server import LocalServerStarter
    from ui.views.onboarding import OnboardingView
    from ui.views.settings import SettingsDialog

    async def body() -> None:
        name = scheme.value
        window, _ = await main_window(tmp_path)
        client = window.client
        try:
            dialog = SettingsDialog(client, window.prefs, window)  # type: ignore[arg-type]
            dialog.resize(820, 560)
            dialog.show()
            await wait_until(lambda: client.calls["account"] >= 2)  # type: ignore[attr-defined]
            for section in ("Privacy", "Notifications"):
                dialog.show_section(section)
                await wait_until(lambda: dialog.isVisible())
                check_and_save(
                    grab(dialog, 2.0),
                    out / f"settings-{section.lower()}-{name}@2x.png",
                    dialog.size() * 2,
                )
            # the backup page while the export runs (held at 60% by the fake)
            fake: Any = client
            fake.progress_steps = (0.6,)
            fake.progress_gate = asyncio.Event()
            dialog.show_section("Backup")
            dialog.backup_fields.first.setText("backup passphrase")
            dialog.backup_fields.second.setText("backup passphrase")
            dialog.export_backup(tmp_path / "b.msgbackup")
            await wait_until(lambda: dialog.backup_busy.fraction == 0.6)
            check_and_save(
                grab(dialog, 2.0),
                out / f"settings-backup-progress-{name}@2x.png",
                dialog.size() * 2,
            )
            fake.progress_gate.set()
            await wait_until(lambda: dialog.backup_done.isVisible())
            dialog.close()
        finally:
            window.quit()
            tasks.set_error_sink(None)
        # sign-up while the proof of work runs: an estimate, below 100%
        signup = FakeClient(has_account=False)
        signup.progress_steps = (0.2, 0.45, 0.62)
        signup.progress_gate = asyncio.Event()
        onboarding = OnboardingView(
            tmp_path / "data",
            "screenshot",
            LocalServerStarter(tmp_path / "unused"),
            client=signup,  # type: ignore[arg-type]
        )
        onboarding.resize(SIZE)
        onboarding.show()
        onboarding.server_field.setText("https://chat.example.org")
        onboarding.server_continue.click()
        onboarding.account_continue.click()
        await wait_until(lambda: onboarding.signup_progress.fraction == 0.62)
        check_and_save(grab(onboarding), out / f"onboarding-progress-{name}.png", SIZE)
        signup.progress_gate.set()
        await wait_until(lambda: onboarding.current_card() is onboarding.done_card)
        onboarding.close()

    run(body())


# -- several devices per account (docs/devices.md) -------------------------------------------


def over_window(window: QWidget, dialog: QWidget, scale: float = 1.0) -> QImage:
    """``dialog`` centred over ``window`` behind a dimming veil, as a modal dialog looks."""
    from PySide6.QtGui import QColor, QPainter

    image = grab(window, scale)
    painter = QPainter(image)
    painter.fillRect(image.rect(), QColor(0, 0, 0, 110))
    front = grab(dialog, scale)
    x = (image.width() - front.width()) // 2
    y = (image.height() - front.height()) // 2
    painter.drawImage(x, y, front)
    painter.end()
    return image


@pytest.mark.qt_log_ignore("propagateSizeHints")
def test_devices_screens(tmp_path: Path, run: Any, out: Path, scheme: Theme) -> None:
    """Link a device (waiting, offer, progress, done, expired), Settings → Devices,
    onboarding's link path, and a removed device's banner."""
    from messenger.client import ConnectionState
    from tests.ui.fake_client import DAY, HOUR, MINUTE, REMOVED_SENTENCE
    from ui.local_server import LocalServerStarter
    from ui.views.link_device import LinkDeviceDialog
    from ui.views.onboarding import OnboardingView
    from ui.views.settings import SettingsDialog

    async def body() -> None:
        name = scheme.value
        window, ids = await main_window(tmp_path)
        fake: Any = window.client
        now = int(time.time() * 1000)
        fake.add_device_now("Sam's laptop", this_device=True, last_seen_at=now)
        fake.add_device_now("Office desktop", last_seen_at=now - 12 * MINUTE)
        fake.add_device_now("Home PC", last_seen_at=now - 2 * DAY - 3 * HOUR)
        fake.add_device_now("Old netbook", last_seen_at=now - 40 * DAY, verified=False)
        try:
            dialog = SettingsDialog(fake, window.prefs, window)
            dialog.resize(820, 580)
            dialog.show()
            dialog.show_section("Devices")
            await wait_until(lambda: len(dialog.devices.rows) == 4)
            check_and_save(over_window(window, dialog), out / f"devices-{name}.png", SIZE)
            dialog.close()

            fake.progress_steps = (0.2, 0.48)
            fake.progress_gate = asyncio.Event()
            link = LinkDeviceDialog(fake, window)
            link.show()
            await wait_until(lambda: link.state() == "waiting")
            await wait_until(lambda: fake.calls["wait_offer"] >= 1)
            check_and_save(over_window(window, link), out / f"link-device-{name}.png", SIZE)
            fake.offer_link("Office desktop")
            await wait_until(lambda: link.state() == "offer")
            check_and_save(over_window(window, link), out / f"link-device-offer-{name}.png", SIZE)
            link.approve_button.click()
            await wait_until(lambda: link.progress.fraction > 0.4)
            check_and_save(
                over_window(window, link), out / f"link-device-progress-{name}.png", SIZE
            )
            fake.progress_gate.set()
            await wait_until(lambda: link.state() == "done")
            check_and_save(over_window(window, link), out / f"link-device-done-{name}.png", SIZE)
            link.retry_button.click()  # not visible: no effect on a done link
            link.start()
            await wait_until(lambda: link.state() == "waiting")
            await wait_until(lambda: fake.calls["wait_offer"] >= 2)
            fake.expire_link()
            await wait_until(lambda: link.state() == "failed")
            check_and_save(over_window(window, link), out / f"link-device-expired-{name}.png", SIZE)
            link.reject()

            await window.show_conversation(ids["alice"])
            fake.set_connection(ConnectionState.REMOVED, REMOVED_SENTENCE)
            await wait_until(lambda: window.banner.state is ConnectionState.REMOVED)
            window.pane.composer.field.clearFocus()
            check_and_save(grab(window), out / f"device-removed-{name}.png", SIZE)
        finally:
            window.quit()
            tasks.set_error_sink(None)

        joiner = FakeClient(has_account=False)
        joiner.progress_steps = (0.35, 0.55)
        joiner.progress_gate = asyncio.Event()
        onboarding = OnboardingView(
            tmp_path / "data",
            "screenshot",
            LocalServerStarter(tmp_path / "unused"),
            client=joiner,  # type: ignore[arg-type]
            server_url="https://chat.example.org",
        )
        onboarding.resize(SIZE)
        onboarding.show()
        onboarding.link_button.click()
        card = onboarding.link_card
        card.code_field.setText("7KQ2-M9XD-4TRB-8HZN-C3WE-5PFA")
        card.name_field.setText("Work laptop")
        card.code_field.setFocus()
        check_and_save(grab(onboarding), out / f"onboarding-link-{name}.png", SIZE)
        card.continue_button.click()
        await wait_until(lambda: onboarding.signup_progress.fraction > 0.5)
        check_and_save(grab(onboarding), out / f"onboarding-link-progress-{name}.png", SIZE)
        joiner.progress_gate.set()
        await wait_until(lambda: onboarding.current_card() is onboarding.done_card)
        onboarding.close()

    run(body())


# -- attachments and disappearing messages (docs/attachments.md) -------------------------------


def with_window_popup(window: QWidget, popup: QWidget) -> QImage:
    """``window`` with a popup (a menu, a separate top-level) drawn where it opened."""
    from PySide6.QtGui import QPainter

    image = grab(window)
    painter = QPainter(image)
    origin = window.mapFromGlobal(popup.mapToGlobal(popup.rect().topLeft()))
    painter.drawImage(origin, grab(popup))
    painter.end()
    return image


@pytest.mark.qt_log_ignore("does not support raise", "does not support grabbing", "propagateSize")
def test_attachment_screens(tmp_path: Path, run: Any, out: Path, scheme: Theme) -> None:
    """An inline image, a sent file, one mid-download, a failed one, the timer and a
    countdown; the pending-attachment strip; the drop highlight; the viewer; the menu."""
    from tests.ui.fake_client import populate_attachments, scenic_image

    found: dict[str, int] = {}

    def attachments(client: FakeClient, ids: dict[str, int]) -> None:
        found.update(populate_attachments(client, ids["alice"], int(time.time() * 1000)))

    async def body() -> None:
        name = scheme.value
        window, ids = await main_window(tmp_path, attachments)
        pane = window.pane
        try:
            await window.show_conversation(ids["alice"])
            images = pane.timeline.bubbles.images
            await wait_until(lambda: images._full.get(found["photo"]) is not None)
            await wait_until(lambda: pane.timeline.at_bottom())
            pane.composer.field.clearFocus()
            pane.timeline.viewport().repaint()
            check_and_save(grab(window), out / f"attachments-{name}.png", SIZE)

            # the strip: a photo and a document waiting, with a caption
            photo = tmp_path / "summit.jpg"
            photo.write_bytes(scenic_image(900, 1200, "JPEG"))
            notes = tmp_path / "packing-list.pdf"
            notes.write_bytes(b"%PDF-1.7 " + b"x" * 180_000)
            pane.composer.add_paths([photo, notes])
            pane.composer.field.setPlainText("Two more for Saturday")
            await wait_until(lambda: pane.composer.strip.isVisible())
            await wait_until(lambda: pane.timeline.at_bottom())
            check_and_save(grab(window), out / f"attachments-strip-{name}.png", SIZE)
            pane.composer.strip.take()
            pane.composer.field.clear()

            pane.drop_overlay.show_over()
            check_and_save(grab(window), out / f"attachments-drop-{name}.png", SIZE)
            pane.drop_overlay.hide()

            view = pane.model.view_at(pane.model.row_of(found["photo"]))
            assert view is not None
            pane.open_viewer(view)
            viewer = pane.viewer
            assert viewer is not None
            await wait_until(lambda: viewer.full_loaded)
            check_and_save(grab(window), out / f"attachments-viewer-{name}.png", SIZE)
            viewer.close_viewer()

            timer = pane.header.timer
            timer.show_menu()
            menu = timer.menu_open
            assert menu is not None
            await wait_until(lambda: menu.isVisible())
            check_and_save(
                with_window_popup(window, menu), out / f"disappearing-menu-{name}.png", SIZE
            )
            menu.close()
            timer.open_custom()
            dialog = timer.dialog
            assert dialog is not None
            dialog.number.setValue(3)
            dialog.unit.setCurrentIndex(3)
            await wait_until(lambda: dialog.isVisible())
            check_and_save(
                over_window(window, dialog), out / f"disappearing-custom-{name}.png", SIZE
            )
            dialog.reject()

            from ui.views.group import GroupDetailsDialog

            details = GroupDetailsDialog(window.client, ids["alice"], window)  # type: ignore[arg-type]
            details.show()
            await wait_until(lambda: details.view is not None)
            check_and_save(
                over_window(window, details), out / f"disappearing-details-{name}.png", SIZE
            )
            details.close()
        finally:
            window.quit()
            tasks.set_error_sink(None)

    run(body())
