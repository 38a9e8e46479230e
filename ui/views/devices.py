"""The devices of this account: Settings → Devices.

docs/devices.md §3 and §5. One row per device (``client.devices()``): a
computer icon, the name with a "This device" badge on the current one,
"Active now" or "Last seen 5 minutes ago" (the last-seen times come from
the devices group, never from the server), and an "Unverified" warning
when the device's certificate does not verify. This device can be renamed
inline; another device can be removed after a confirmation that says what
happens; "Sign out this device" appears once another device exists (the
last device cannot be removed). "Link a device" at the top opens
:class:`~ui.views.link_device.LinkDeviceDialog`.

The list is read again when the bridge reports ``DevicesChanged``, after
every change made here, and after a device was linked.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ui.bridge import Bridge
from ui.resources import icon_pixmap
from ui.tasks import spawn
from ui.theme import colors, notifier
from ui.views.link_device import LinkDeviceDialog, LinkingClient
from ui.views.onboarding import button, error_label, label, line_edit, show_error

__all__ = [
    "ConfirmDialog",
    "DeviceRow",
    "DevicesClient",
    "DevicesPanel",
    "device_name",
    "last_seen_text",
]

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
#: Seen this recently: "Active now".
ACTIVE_MS = 5 * MINUTE_MS
#: The longest device name the UI sends (the client checks too).
MAX_NAME = 64

INTRO = (
    "Every device of your account gets your messages, end-to-end encrypted to it "
    "alone. Remove a device you no longer use or do not recognise."
)
UNVERIFIED = (
    "Unverified: this device's certificate does not check out. If you did not link it, remove it."
)
SIGN_OUT_TEXT = (
    "This computer will stop receiving messages and can no longer send any. The "
    "messages already here stay readable. Your other devices keep working."
)


class DeviceLike(Protocol):
    """The client's ``DeviceView``."""

    @property
    def client_id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def last_seen_at(self) -> int | None: ...

    @property
    def this_device(self) -> bool: ...

    @property
    def verified(self) -> bool: ...


class DevicesClient(LinkingClient, Protocol):
    async def devices(self) -> Sequence[Any]: ...  # list[DeviceView]

    async def rename_device(self, name: str) -> Any: ...

    async def remove_device(self, client_id: str) -> Any: ...


def device_name(device: Any) -> str:
    """A device's name as shown (a device that never named itself has none)."""
    return str(device.name or "") or "Unnamed device"


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def last_seen_text(last_seen_at: int | None, now_ms: int, *, this_device: bool = False) -> str:
    """ "Active now", "Last seen 5 minutes ago", "Last seen on 3 Dec 2025"."""
    if this_device:
        return "Active now"
    if last_seen_at is None:
        return "Not seen yet"
    age = now_ms - last_seen_at
    if age < ACTIVE_MS:
        return "Active now"
    if age < HOUR_MS:
        return f"Last seen {_plural(age // MINUTE_MS, 'minute')} ago"
    if age < DAY_MS:
        return f"Last seen {_plural(age // HOUR_MS, 'hour')} ago"
    if age < 7 * DAY_MS:
        return f"Last seen {_plural(age // DAY_MS, 'day')} ago"
    day = datetime.datetime.fromtimestamp(last_seen_at / 1000)
    return f"Last seen on {day.day} {day:%b %Y}"


class ConfirmDialog(QDialog):
    """A short question with Cancel and one (dangerous) action; Enter acts, Escape cancels."""

    def __init__(self, title: str, text: str, action: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setAccessibleName(title)
        self.setAccessibleDescription(text)
        self.setModal(True)
        self.setMinimumWidth(420)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 18)
        layout.setSpacing(10)
        layout.addWidget(label(title, "subtitle"))
        self.text = label(text, "muted")
        layout.addWidget(self.text)
        row = QHBoxLayout()
        row.addStretch(1)
        self.cancel_button = button("Cancel")
        self.cancel_button.clicked.connect(self.reject)
        self.action_button = button(action, "danger")
        self.action_button.setDefault(True)
        self.action_button.clicked.connect(self.accept)
        row.addWidget(self.cancel_button)
        row.addWidget(self.action_button)
        layout.addSpacing(8)
        layout.addLayout(row)
        self.action_button.setFocus()


class DeviceRow(QFrame):
    """One device: icon, name (and badge), last seen, a warning, and its action."""

    rename_requested = Signal(str)  # the new name
    remove_requested = Signal(str)  # client id

    def __init__(self, device: Any, now_ms: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.device = device
        self.setObjectName("DeviceRow")
        self.setProperty("class", "card")
        name = device_name(device)
        self.setAccessibleName(f"{name}{', this device' if device.this_device else ''}")
        outer = QHBoxLayout(self)
        outer.setContentsMargins(14, 12, 14, 12)
        outer.setSpacing(14)
        self.icon = QLabel()
        self.icon.setFixedSize(40, 40)
        self.icon.setAlignment(Qt.AlignmentFlag.AlignCenter)
        c = colors()
        tint = c.accent if device.this_device else c.muted
        self.icon.setStyleSheet(
            f"background: {c.selection.name() if device.this_device else c.input.name()};"
            " border-radius: 20px; border: none;"
        )
        self.icon.setPixmap(icon_pixmap("laptop", 22, color=tint, scale=self.devicePixelRatioF()))
        outer.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)

        texts = QVBoxLayout()
        texts.setSpacing(2)
        first = QHBoxLayout()
        first.setSpacing(8)
        self.name_label = label(name, wrap=False)
        self.name_label.setStyleSheet("font-weight: 600; background: transparent; border: none;")
        self.name_label.setAccessibleName("Device name")
        first.addWidget(self.name_label)
        self.name_field = line_edit("Name of this device", "Name of this device")
        self.name_field.setMaxLength(MAX_NAME)
        self.name_field.hide()
        first.addWidget(self.name_field, 1)
        self.badge: QLabel | None = None
        if device.this_device:
            self.badge = QLabel("This device")
            self.badge.setAccessibleName("This device")
            self.badge.setStyleSheet(
                f"background: {c.selection.name()}; color: {c.link.name()};"
                " border: none; border-radius: 9px; padding: 1px 8px;"
                " font-size: 11px; font-weight: 600;"
            )
            first.addWidget(self.badge)
        first.addStretch(1)
        texts.addLayout(first)
        self.seen_label = label(
            last_seen_text(device.last_seen_at, now_ms, this_device=device.this_device),
            "caption",
            wrap=False,
        )
        self.seen_label.setAccessibleName("Last seen")
        self.seen_label.setStyleSheet("background: transparent; border: none;")
        texts.addWidget(self.seen_label)
        self.warning: QLabel | None = None
        if not device.verified:
            self.warning = label(f"⚠ {UNVERIFIED}", "error")
            self.warning.setAccessibleName("Unverified device")
            self.warning.setStyleSheet("background: transparent; border: none;")
            texts.addWidget(self.warning)
        outer.addLayout(texts, 1)

        actions = QHBoxLayout()
        actions.setSpacing(6)
        self.action: QPushButton
        self.save_button: QPushButton | None = None
        self.cancel_button: QPushButton | None = None
        if device.this_device:
            self.action = button("Rename", accessible="Rename this device")
            self.action.clicked.connect(self.start_rename)
            self.save_button = button("Save", "primary", accessible="Save the device name")
            self.save_button.clicked.connect(self.finish_rename)
            self.cancel_button = button("Cancel", accessible="Cancel renaming")
            self.cancel_button.clicked.connect(self.cancel_rename)
            self.save_button.hide()
            self.cancel_button.hide()
            self.name_field.returnPressed.connect(self.finish_rename)
            actions.addWidget(self.cancel_button)
            actions.addWidget(self.save_button)
        else:
            self.action = button("Remove", accessible=f"Remove {name}")
            self.action.setStyleSheet(f"color: {c.danger.name()};")
            self.action.clicked.connect(lambda: self.remove_requested.emit(device.client_id))
        actions.addWidget(self.action)
        outer.addLayout(actions)

    def editing(self) -> bool:
        return self.name_field.isVisibleTo(self)

    def start_rename(self) -> None:
        self.name_field.setText(self.device.name or "")
        self.name_label.hide()
        self.name_field.show()
        self.action.hide()
        if self.save_button is not None and self.cancel_button is not None:
            self.save_button.show()
            self.cancel_button.show()
        self.name_field.setFocus()
        self.name_field.selectAll()

    def cancel_rename(self) -> None:
        self.name_field.hide()
        self.name_label.show()
        self.action.show()
        if self.save_button is not None and self.cancel_button is not None:
            self.save_button.hide()
            self.cancel_button.hide()
        self.action.setFocus()

    def finish_rename(self) -> None:
        name = " ".join(self.name_field.text().split())
        if not name or name == (self.device.name or ""):
            self.cancel_rename()
            return
        self.rename_requested.emit(name)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape and self.editing():
            self.cancel_rename()
            return
        super().keyPressEvent(event)


class DevicesPanel(QWidget):
    """The device list with its actions; goes on a settings page."""

    #: The list was read (``list[DeviceView]``), for tests.
    loaded = Signal(object)

    def __init__(
        self,
        client: DevicesClient,
        parent: QWidget | None = None,
        *,
        bridge: Bridge | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(parent)
        self.setAccessibleName("Devices")
        self._client = client
        self._clock = clock
        self._tasks: set[asyncio.Task[Any]] = set()
        self.devices: list[Any] = []
        self.rows: list[DeviceRow] = []
        self.confirm: ConfirmDialog | None = None
        self.link_dialog: LinkDeviceDialog | None = None

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(10)
        head = QHBoxLayout()
        head.setSpacing(16)
        intro = label(INTRO, "muted")
        head.addWidget(intro, 1)
        self.link_button = button("Link a device", "primary", accessible="Link a new device")
        self.link_button.clicked.connect(self.open_link)
        head.addWidget(self.link_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(head)
        layout.addSpacing(4)
        self.error = error_label()
        layout.addWidget(self.error)
        self.list_layout = QVBoxLayout()
        self.list_layout.setSpacing(8)
        layout.addLayout(self.list_layout)
        self.empty = label("Reading your devices…", "muted")
        self.list_layout.addWidget(self.empty)
        layout.addSpacing(12)
        self.sign_out_button = button("Sign out this device", accessible="Sign out this device")
        self.sign_out_button.setStyleSheet(f"color: {colors().danger.name()};")
        self.sign_out_button.clicked.connect(self.sign_out)
        self.sign_out_button.hide()
        self.sign_out_note = label(
            "Signing out removes this computer from your account. You can link it again.",
            "caption",
        )
        self.sign_out_note.hide()
        row = QHBoxLayout()
        row.addWidget(self.sign_out_button)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addWidget(self.sign_out_note)
        if bridge is not None:
            bridge.devices_changed.connect(self.reload)
            bridge.reload_requested.connect(self.reload)
        notifier().changed.connect(self._retheme)
        self.reload()

    # -- tasks ------------------------------------------------------------------------------

    def _spawn(self, coro: Any, on_done: Callable[[Any], None] | None = None) -> None:
        task = spawn(coro, on_done=on_done, on_error=self._failed)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def busy(self) -> bool:
        return any(not t.done() for t in self._tasks)

    def _failed(self, sentence: str) -> None:
        show_error(self.error, sentence)

    def cancel_tasks(self) -> None:
        for task in list(self._tasks):
            if not task.done():
                task.cancel()

    # -- the list ----------------------------------------------------------------------------

    def reload(self, *_: object) -> None:
        self._spawn(self._client.devices(), self._show)

    def _show(self, devices: Sequence[Any]) -> None:
        editing = next((r for r in self.rows if r.editing()), None)
        if editing is not None:
            # Keep the user's typing: read again when the rename ends.
            self.devices = list(devices)
            return
        self.devices = sorted(
            devices,
            key=lambda d: (not d.this_device, -(d.last_seen_at or 0), device_name(d).lower()),
        )
        for row in self.rows:
            self.list_layout.removeWidget(row)
            row.hide()
            row.deleteLater()
        self.rows = []
        self.empty.setVisible(not self.devices)
        self.empty.setText("No devices found.")
        now_ms = int(self._clock() * 1000)
        for device in self.devices:
            row = DeviceRow(device, now_ms, self)
            row.rename_requested.connect(self.rename)
            row.remove_requested.connect(self.ask_remove)
            self.list_layout.addWidget(row)
            row.show()  # at once, not on the layout's queued show
            self.rows.append(row)
        others = any(not d.this_device for d in self.devices)
        self.sign_out_button.setVisible(others)
        self.sign_out_note.setVisible(others)
        self.loaded.emit(self.devices)

    def row(self, client_id: str) -> DeviceRow:
        return next(r for r in self.rows if r.device.client_id == client_id)

    def this_row(self) -> DeviceRow | None:
        return next((r for r in self.rows if r.device.this_device), None)

    def _retheme(self, _dark: bool) -> None:
        self.sign_out_button.setStyleSheet(f"color: {colors().danger.name()};")
        if self.devices and not any(r.editing() for r in self.rows):
            self._show(self.devices)  # the rows' icons and badges in the new colours

    # -- actions -----------------------------------------------------------------------------

    def rename(self, name: str) -> None:
        show_error(self.error, None)
        row = self.this_row()

        def renamed(_: object) -> None:
            if row is not None:
                row.device = _Renamed(row.device, name)
                row.name_label.setText(name)
                row.cancel_rename()
            self.reload()

        self._spawn(self._client.rename_device(name), renamed)

    def ask_remove(self, client_id: str) -> None:
        device = next((d for d in self.devices if d.client_id == client_id), None)
        if device is None:
            return
        name = device_name(device)
        dialog = self.confirm = ConfirmDialog(
            f"Remove “{name}”?",
            f"{name} will be signed out and will no longer receive messages. Messages "
            "already on it stay there; anything sent from now on cannot be read on it.",
            "Remove",
            self,
        )
        dialog.accepted.connect(lambda: self.remove(client_id))
        dialog.open()

    def remove(self, client_id: str) -> None:
        show_error(self.error, None)
        self._spawn(self._client.remove_device(client_id), self.reload)

    def sign_out(self) -> None:
        own = next((d for d in self.devices if d.this_device), None)
        if own is None:
            return
        dialog = self.confirm = ConfirmDialog(
            "Sign out this device?", SIGN_OUT_TEXT, "Sign out", self
        )
        dialog.accepted.connect(lambda: self.remove(own.client_id))
        dialog.open()

    def open_link(self) -> None:
        dialog = self.link_dialog = LinkDeviceDialog(self._client, self.window())
        dialog.linked.connect(self.reload)
        dialog.finished.connect(lambda _result: self.reload())
        dialog.open()


class _Renamed:
    """A device view with a new name (until the list is read again)."""

    def __init__(self, device: Any, name: str) -> None:
        self._device = device
        self.name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._device, attribute)
