"""Settings: a list of sections on the left, one page on the right.

Profile (display name, address, invite link), Devices (this account's
devices: link, rename, remove; :mod:`ui.views.devices`), Privacy (read receipts,
typing), Notifications (on/off, how much they show), Appearance (theme),
Window (start minimized, close to tray), Security (app lock, the keyring's
state in plain words, change the passphrase), Backup (an encrypted export,
with progress), About (server and account details).

The account's choices go to the client (one coroutine per change); this
computer's choices go to :class:`~ui.preferences.PreferencesStore`, whose
``changed`` signal the app follows (theme, tray, lock). Switches are
``class="toggle"`` check boxes, not a form grid (ui-design.md, "Settings").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLayout,
    QListWidget,
    QListWidgetItem,
    QRadioButton,
    QScrollArea,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from messenger.client import (
    AccountInfo,
    BackupInfo,
    MessengerClient,
    Preferences,
    format_size,
)
from ui.bridge import Bridge
from ui.preferences import AppPreferences, NotificationContent, PreferencesStore, Theme
from ui.tasks import spawn
from ui.views.contacts import InviteDialog, find_bridge
from ui.views.onboarding import (
    KEYRING_YES,
    PassphraseFields,
    busy_bar,
    button,
    error_label,
    label,
    line_edit,
    show_error,
)
from ui.widgets.avatar import Avatar
from ui.widgets.progress import ProgressIndicator
from ui.widgets.toggle import ToggleSwitch

#: A radio group's value type (Theme, NotificationContent).
C = TypeVar("C")

SECTIONS = (
    "Profile",
    "Devices",
    "Privacy",
    "Notifications",
    "Appearance",
    "Window",
    "Security",
    "Backup",
    "About",
)
KEYRING_NOT_SAVED = (
    "Your key is not in the system keyring: you type the passphrase each time the app starts."
)
KEYRING_NONE = "There is no system keyring: you will type the passphrase each time the app starts."
LOCK_CHOICES = (
    (0, "Never"),
    (1, "After 1 minute"),
    (5, "After 5 minutes"),
    (15, "After 15 minutes"),
    (30, "After 30 minutes"),
    (60, "After 1 hour"),
)
CONTENT_CHOICES = (
    (NotificationContent.FULL, "Name and message"),
    (NotificationContent.SENDER, "Name only"),
    (NotificationContent.NONE, "Neither name nor message"),
)
#: Received files downloaded at once, by size (0: none; docs/attachments.md §4).
AUTO_DOWNLOAD_CHOICES = (
    (0, "Never: download each file when I ask"),
    (5 << 20, "Files up to 5 MB"),
    (16 << 20, "Files up to 16 MB"),
    (100 << 20, "Files up to 100 MB"),
)
THEME_CHOICES = ((Theme.SYSTEM, "Same as the system"), (Theme.LIGHT, "Light"), (Theme.DARK, "Dark"))


def toggle(text: str, description: str = "") -> QCheckBox:
    box = ToggleSwitch(text)
    box.setAccessibleName(text)
    if description:
        box.setAccessibleDescription(description)
    return box


class Page(QScrollArea):
    """One settings page: a title and rows, scrolling if the window is small."""

    def __init__(self, title: str) -> None:
        super().__init__()
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setAccessibleName(title)
        inner = QWidget()
        self.rows = QVBoxLayout(inner)
        self.rows.setContentsMargins(28, 24, 28, 24)
        self.rows.setSpacing(10)
        self.rows.addWidget(label(title, "title"))
        self.rows.addSpacing(6)
        self.setWidget(inner)
        self._end = False

    def section(self, text: str) -> None:
        self.rows.addSpacing(10)
        self.rows.addWidget(label(text, "subtitle"))

    def add(self, widget: QWidget, caption: str = "") -> QWidget:
        self.rows.addWidget(widget)
        if caption:
            note = label(caption, "caption")
            note.setContentsMargins(46 if isinstance(widget, QCheckBox) else 0, 0, 0, 4)
            self.rows.addWidget(note)
        return widget

    def finish(self) -> None:
        self.rows.addStretch(1)


class SettingsDialog(QDialog):
    """The settings window."""

    #: The recovery passphrase was changed.
    passphrase_changed = Signal()
    backup_written = Signal(object)  # BackupInfo

    def __init__(
        self,
        client: MessengerClient,
        prefs: PreferencesStore,
        parent: QWidget | None = None,
        *,
        kdf: Any = None,
        bridge: Bridge | None = None,
    ) -> None:
        """``kdf``: scrypt parameters of backups (tests pass cheap ones); with a
        ``bridge`` (or a parent window that has one), changes made elsewhere show."""
        super().__init__(parent)
        bridge = find_bridge(parent, bridge)
        self.setWindowTitle("Settings")
        self.setAccessibleName("Settings")
        self.setMinimumSize(680, 480)
        self.resize(820, 580)
        self._client = client
        self._prefs = prefs
        self._kdf = kdf
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loading = True

        outer = QHBoxLayout(self)
        outer.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        self.sections = QListWidget()
        self.sections.setAccessibleName("Settings sections")
        self.sections.setFixedWidth(200)
        self.sections.setObjectName("settingsSections")
        self.sections.setStyleSheet(
            "QListWidget#settingsSections"
            " { background: palette(alternate-base); padding: 12px 8px; }"
        )
        self.pages = QStackedWidget()
        for name in SECTIONS:
            item = QListWidgetItem(name)
            item.setSizeHint(QSize(0, 36))
            self.sections.addItem(item)
        outer.addWidget(self.sections)
        outer.addWidget(self.pages, 1)
        self._build_profile()
        self._build_devices(bridge)
        self._build_privacy()
        self._build_notifications()
        self._build_appearance()
        self._build_window()
        self._build_security()
        self._build_backup()
        self._build_about()
        self.sections.currentRowChanged.connect(self.pages.setCurrentIndex)
        self.sections.setCurrentRow(0)
        self.sections.setFocus()
        self._show_prefs(prefs.value)
        prefs.changed.connect(self._show_prefs)
        self._loading = False
        if bridge is not None:
            bridge.account_changed.connect(self._reload)
            bridge.preferences_changed.connect(self._preferences_changed)
        self._spawn(self._load(), self._loaded)

    def _preferences_changed(self, read_receipts: bool, typing: bool) -> None:
        self.read_receipts.setChecked(read_receipts)
        self.typing.setChecked(typing)

    # -- helpers ---------------------------------------------------------------------------

    def _spawn(
        self, coro: Any, on_done: Callable[[Any], None], error: QLabel | None = None
    ) -> asyncio.Task[Any]:
        target = error

        def failed(sentence: str) -> None:
            show_error(target or self.profile_error, sentence)

        task = spawn(coro, on_done=on_done, on_error=failed)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def show_section(self, name: str) -> None:
        self.sections.setCurrentRow(SECTIONS.index(name))

    def page(self, name: str) -> Page:
        widget = self.pages.widget(SECTIONS.index(name))
        assert isinstance(widget, Page)
        return widget

    def busy(self) -> bool:
        return any(not t.done() for t in self._tasks)

    # -- pages -----------------------------------------------------------------------------

    def _build_profile(self) -> None:
        page = Page("Profile")
        head = QHBoxLayout()
        head.setSpacing(16)
        self.avatar = Avatar("", "", 64)
        head.addWidget(self.avatar)
        names = QVBoxLayout()
        names.setSpacing(2)
        names.addStretch(1)
        self.profile_name = label("", "subtitle")
        self.profile_address = label("", "muted")
        self.profile_address.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        names.addWidget(self.profile_name)
        names.addWidget(self.profile_address)
        names.addStretch(1)
        head.addLayout(names, 1)
        page.rows.addLayout(head)
        page.section("Your name")
        row = QHBoxLayout()
        self.display_name = line_edit("Your name", "Your name")
        self.display_name.returnPressed.connect(self.save_name)
        self.save_name_button = button("Save")
        self.save_name_button.clicked.connect(self.save_name)
        row.addWidget(self.display_name, 1)
        row.addWidget(self.save_name_button)
        page.rows.addLayout(row)
        page.rows.addWidget(
            label("Shown to people when you join a conversation with them.", "caption")
        )
        page.section("Invite link")
        link_row = QHBoxLayout()
        self.invite_link = line_edit("Your invite link")
        self.invite_link.setReadOnly(True)
        self.copy_link = button("Copy", accessible="Copy the invite link")
        self.copy_link.clicked.connect(self.copy_invite)
        self.show_qr = button("QR code", accessible="Show the invite QR code")
        self.show_qr.clicked.connect(self.open_invite)
        link_row.addWidget(self.invite_link, 1)
        link_row.addWidget(self.copy_link)
        link_row.addWidget(self.show_qr)
        page.rows.addLayout(link_row)
        page.rows.addWidget(
            label(
                "Anyone with this link can add you as a contact and start chats with you. "
                "Share it with people you want to hear from.",
                "caption",
            )
        )
        self.profile_error = error_label()
        page.rows.addWidget(self.profile_error)
        page.finish()
        self.pages.addWidget(page)

    def _build_devices(self, bridge: Bridge | None) -> None:
        """Settings → Devices: the account's devices (ui.views.devices)."""
        from ui.views.devices import DevicesPanel

        page = Page("Devices")
        self.devices = DevicesPanel(self._client, page, bridge=bridge)
        page.add(self.devices)
        page.finish()
        self.pages.addWidget(page)

    def _build_privacy(self) -> None:
        page = Page("Privacy")
        self.read_receipts = toggle("Send read receipts")
        page.add(
            self.read_receipts,
            "Let people see when you have read their messages. A conversation may "
            "choose otherwise.",
        )
        self.typing = toggle("Show when I'm typing")
        page.add(self.typing, "Let people see that you are writing a reply.")
        page.rows.addSpacing(8)
        page.rows.addWidget(
            label(
                "Link previews are never fetched: a preview would tell the linked site "
                "that you got the link.",
                "caption",
            )
        )
        page.section("Download files automatically")
        self.auto_download_buttons = self._choices(
            page,
            AUTO_DOWNLOAD_CHOICES,
            "Download automatically",
            lambda on, v: self.set_auto_download(v) if on and not self._loading else None,
        )
        page.rows.addWidget(
            label(
                "Larger files show a Download button. The server can tell when a file "
                "is fetched, not what it holds.",
                "caption",
            )
        )
        self.privacy_error = error_label()
        page.rows.addWidget(self.privacy_error)
        self.read_receipts.clicked.connect(self.set_read_receipts)
        self.typing.clicked.connect(self.set_typing)
        page.finish()
        self.pages.addWidget(page)

    def _build_notifications(self) -> None:
        page = Page("Notifications")
        self.notifications = toggle("Show notifications")
        page.add(self.notifications, "A desktop notification for each new message.")
        self.notifications.toggled.connect(lambda on: self._update_prefs(notifications=on))
        page.section("What a notification shows")
        self.content_buttons = self._choices(
            page,
            CONTENT_CHOICES,
            "Notifications show",
            lambda on, v: self._choose(on, notification_content=v),
        )
        page.rows.addWidget(
            label(
                "Others can read notifications over your shoulder or on a locked screen.",
                "caption",
            )
        )
        page.finish()
        self.pages.addWidget(page)

    def _build_appearance(self) -> None:
        page = Page("Appearance")
        page.section("Theme")
        self.theme_buttons = self._choices(
            page, THEME_CHOICES, "Theme", lambda on, v: self._choose(on, theme=v)
        )
        page.finish()
        self.pages.addWidget(page)

    def _choices(
        self,
        page: Page,
        choices: Sequence[tuple[C, str]],
        name: str,
        chosen: Callable[[bool, C], None],
    ) -> dict[C, QRadioButton]:
        """One radio button per choice, exclusive, on ``page``; ``chosen(on, value)`` on toggle."""
        group = QButtonGroup(page)
        buttons: dict[C, QRadioButton] = {}
        for value, text in choices:
            radio = QRadioButton(text)
            radio.setAccessibleName(f"{name}: {text}")
            group.addButton(radio)
            buttons[value] = radio
            page.add(radio)
            radio.toggled.connect(lambda on, v=value: chosen(on, v))
        return buttons

    def _build_window(self) -> None:
        page = Page("Window")
        self.start_minimized = toggle("Start minimized")
        page.add(self.start_minimized, "Open in the background when the app starts.")
        self.close_to_tray = toggle("Keep running when the window is closed")
        page.add(
            self.close_to_tray,
            "Closing the window leaves the app in the system tray, so messages keep "
            "arriving. Quit from the tray icon.",
        )
        self.start_minimized.toggled.connect(lambda on: self._update_prefs(start_minimized=on))
        self.close_to_tray.toggled.connect(lambda on: self._update_prefs(close_to_tray=on))
        page.finish()
        self.pages.addWidget(page)

    def _build_security(self) -> None:
        page = Page("Security")
        page.section("App lock")
        self.lock_after = QComboBox()
        self.lock_after.setAccessibleName("Lock the app when idle")
        for minutes, text in LOCK_CHOICES:
            self.lock_after.addItem(text, minutes)
        self.lock_after.currentIndexChanged.connect(
            lambda index: self._update_prefs(
                lock_after_minutes=int(self.lock_after.itemData(index))
            )
        )
        lock_row = QHBoxLayout()
        lock_row.addWidget(label("Lock when idle", wrap=False))
        lock_row.addStretch(1)
        lock_row.addWidget(self.lock_after)
        page.rows.addLayout(lock_row)
        page.rows.addWidget(
            label(
                "The recovery passphrase unlocks it. Messages keep arriving meanwhile.", "caption"
            )
        )
        page.section("System keyring")
        self.keyring_text = label("", "muted")
        self.keyring_text.setAccessibleName("Keyring status")
        page.rows.addWidget(self.keyring_text)
        self.remember_button = button("Keep me unlocked on this computer")
        self.remember_button.clicked.connect(self.remember_key)
        remember_row = QHBoxLayout()
        remember_row.addWidget(self.remember_button)
        remember_row.addStretch(1)
        page.rows.addLayout(remember_row)
        page.section("Change the recovery passphrase")
        self.old_passphrase = line_edit("Current passphrase", "Current passphrase", secret=True)
        page.rows.addWidget(self.old_passphrase)
        self.new_passphrase = PassphraseFields("New passphrase")
        page.rows.addWidget(self.new_passphrase)
        self.passphrase_error = error_label()
        page.rows.addWidget(self.passphrase_error)
        self.passphrase_done = label("", "muted")
        self.passphrase_done.hide()
        page.rows.addWidget(self.passphrase_done)
        self.passphrase_busy = busy_bar("Changing the passphrase")
        self.passphrase_busy.hide()
        page.rows.addWidget(self.passphrase_busy)
        change_row = QHBoxLayout()
        change_row.addStretch(1)
        self.change_button = button("Change passphrase", "primary")
        self.change_button.clicked.connect(self.change_passphrase)
        self.new_passphrase.second.returnPressed.connect(self.change_passphrase)
        change_row.addWidget(self.change_button)
        page.rows.addLayout(change_row)
        page.finish()
        self.pages.addWidget(page)
        self._show_keyring(self._client.key_in_keyring)

    def _build_backup(self) -> None:
        page = Page("Backup")
        page.rows.addWidget(
            label(
                "A backup is one file with your account, contacts and messages, encrypted "
                "with a passphrase you choose now. Keep the file and the passphrase apart.",
                "muted",
            )
        )
        self.backup_fields = PassphraseFields("Backup passphrase")
        page.rows.addWidget(self.backup_fields)
        self.backup_error = error_label()
        page.rows.addWidget(self.backup_error)
        self.backup_busy = ProgressIndicator("Writing the backup")
        self.backup_busy.hide()
        page.rows.addWidget(self.backup_busy)
        self.backup_done = label("", "muted")
        self.backup_done.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.backup_done.hide()
        page.rows.addWidget(self.backup_done)
        row = QHBoxLayout()
        row.addStretch(1)
        self.export_button = button("Export backup…", "primary")
        self.export_button.clicked.connect(self.choose_backup_file)
        row.addWidget(self.export_button)
        page.rows.addLayout(row)
        page.finish()
        self.pages.addWidget(page)

    def _build_about(self) -> None:
        page = Page("About")
        self.about_rows: dict[str, QLabel] = {}
        for key in ("Server", "Account", "This device", "Profile", "Stored in"):
            row = QHBoxLayout()
            name = label(key, "muted", wrap=False)
            name.setFixedWidth(110)
            value = label("", wrap=True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            value.setAccessibleName(key)
            row.addWidget(name, 0, Qt.AlignmentFlag.AlignTop)
            row.addWidget(value, 1)
            page.rows.addLayout(row)
            self.about_rows[key] = value
        page.rows.addSpacing(12)
        page.rows.addWidget(
            label(
                "Messages are end-to-end encrypted with MLS (RFC 9420). The server passes "
                "them on and cannot read them.",
                "caption",
            )
        )
        profile = self._client.profile
        self.about_rows["Profile"].setText(profile.name)
        self.about_rows["Stored in"].setText(str(profile.path))
        page.finish()
        self.pages.addWidget(page)

    # -- loading ---------------------------------------------------------------------------

    async def _load(self) -> tuple[AccountInfo | None, Preferences]:
        return await self._client.account(), await self._client.preferences()

    def _loaded(self, loaded: tuple[AccountInfo | None, Preferences]) -> None:
        info, preferences = loaded
        self._loading = True
        self._privacy(preferences)
        self._loading = False
        if info is None:
            return
        name = info.display_name or info.handle or "You"
        self.avatar.set_identity(name, info.account_id)
        self.profile_name.setText(name)
        self.profile_address.setText(info.address or "No handle: share your invite link.")
        if not self.display_name.hasFocus():
            self.display_name.setText(info.display_name or "")
        self.invite_link.setText(info.invite_link)
        self.invite_link.setCursorPosition(0)
        self.about_rows["Server"].setText(info.server_url)
        self._set_id("Account", info.address or info.account_id)
        self._set_id("This device", info.client_id)

    def _set_id(self, row: str, value: str) -> None:
        """A long identifier, shortened to fit; the whole of it in the tooltip."""
        shown = value if len(value) <= 40 else f"{value[:16]}…{value[-8:]}"
        self.about_rows[row].setText(shown)
        self.about_rows[row].setToolTip(value)

    def _show_prefs(self, value: AppPreferences) -> None:
        loading, self._loading = self._loading, True
        self.notifications.setChecked(value.notifications)
        self.content_buttons[value.notification_content].setChecked(True)
        for radio in self.content_buttons.values():
            radio.setEnabled(value.notifications)
        self.theme_buttons[value.theme].setChecked(True)
        self.start_minimized.setChecked(value.start_minimized)
        self.close_to_tray.setChecked(value.close_to_tray)
        index = self.lock_after.findData(value.lock_after_minutes)
        if index < 0:
            self.lock_after.addItem(
                f"After {value.lock_after_minutes} minutes", value.lock_after_minutes
            )
            index = self.lock_after.count() - 1
        self.lock_after.setCurrentIndex(index)
        self._loading = loading

    def _choose(self, on: bool, **changes: Any) -> None:
        """A radio button was switched on (``on``) or off."""
        if on:
            self._update_prefs(**changes)

    def _update_prefs(self, **changes: Any) -> None:
        if not self._loading:
            self._prefs.update(**changes)

    # -- actions ---------------------------------------------------------------------------

    def save_name(self) -> None:
        name = self.display_name.text().strip() or None
        show_error(self.profile_error, None)
        self._spawn(self._client.set_display_name(name), self._reload, self.profile_error)

    def _reload(self, _: object = None) -> None:
        self._spawn(self._load(), self._loaded)

    def copy_invite(self) -> None:
        if self.invite_link.text():
            QGuiApplication.clipboard().setText(self.invite_link.text())
            self.copy_link.setText("Copied")

    def open_invite(self) -> None:
        InviteDialog(self._client, self).open()

    def set_read_receipts(self, enabled: bool) -> None:
        show_error(self.privacy_error, None)
        self._spawn(self._client.set_read_receipts(enabled), self._privacy, self.privacy_error)

    def set_typing(self, enabled: bool) -> None:
        show_error(self.privacy_error, None)
        self._spawn(self._client.set_typing_indicators(enabled), self._privacy, self.privacy_error)

    def set_auto_download(self, limit: int) -> None:
        show_error(self.privacy_error, None)
        self._spawn(self._client.set_auto_download_bytes(limit), self._privacy, self.privacy_error)

    def _privacy(self, preferences: Preferences) -> None:
        loading, self._loading = self._loading, True
        self.read_receipts.setChecked(preferences.read_receipts)
        self.typing.setChecked(preferences.typing_indicators)
        button = self.auto_download_buttons.get(preferences.auto_download_bytes)
        if button is not None:
            button.setChecked(True)
        else:  # a limit set elsewhere (the command line): no button is on
            group = next(iter(self.auto_download_buttons.values())).group()
            group.setExclusive(False)
            for radio in self.auto_download_buttons.values():
                radio.setChecked(False)
            group.setExclusive(True)
        self._loading = loading

    def _show_keyring(self, saved: bool | None) -> None:
        if saved:
            self.keyring_text.setText(KEYRING_YES)
        elif saved is None:
            self.keyring_text.setText(KEYRING_NONE)
        else:
            self.keyring_text.setText(KEYRING_NOT_SAVED)
        self.remember_button.setVisible(saved is False)

    def remember_key(self) -> None:
        self._spawn(
            self._client.remember_key(),
            lambda saved: self._show_keyring(True if saved else None),
            self.passphrase_error,
        )

    def change_passphrase(self) -> None:
        if self.passphrase_busy.isVisible():
            return
        old = self.old_passphrase.text()
        problem = None if old else "Enter your current passphrase."
        problem = problem or self.new_passphrase.problem()
        show_error(self.passphrase_error, problem)
        self.passphrase_done.hide()
        if problem:
            return
        self.passphrase_busy.show()
        self.change_button.setEnabled(False)
        task = self._spawn(
            self._client.change_passphrase(old, self.new_passphrase.passphrase()),
            self._passphrase_changed,
            self.passphrase_error,
        )
        task.add_done_callback(lambda _: self._passphrase_idle())

    def _passphrase_idle(self) -> None:
        self.passphrase_busy.hide()
        self.change_button.setEnabled(True)
        if self.passphrase_error.isVisibleTo(self):
            self.old_passphrase.setFocus()
            self.old_passphrase.selectAll()

    def _passphrase_changed(self, _: object) -> None:
        self.old_passphrase.clear()
        self.new_passphrase.clear()
        self.passphrase_done.setText("Your recovery passphrase was changed.")
        self.passphrase_done.show()
        self.passphrase_changed.emit()

    def choose_backup_file(self) -> None:
        problem = self.backup_fields.problem()
        show_error(self.backup_error, problem)
        if problem:
            return
        default = Path.home() / f"{self._client.profile.name}.msgbackup"
        path, _ = QFileDialog.getSaveFileName(
            self, "Save the backup", str(default), "Messenger backups (*.msgbackup)"
        )
        if path:
            self.export_backup(Path(path))

    def export_backup(self, path: Path) -> None:
        """Write the backup to ``path`` (the passphrase from the page's fields)."""
        if self.backup_busy.isVisible():
            return
        problem = self.backup_fields.problem()
        show_error(self.backup_error, problem)
        if problem:
            return
        self.backup_done.hide()
        self.backup_busy.reset()
        self.backup_busy.show()
        self.export_button.setEnabled(False)
        options: dict[str, Any] = {"progress": self.backup_busy.set_fraction}
        if self._kdf is not None:
            options["kdf"] = self._kdf
        task = self._spawn(
            self._client.backup(path, self.backup_fields.passphrase(), **options),
            lambda info: self._backed_up(path, info),
            self.backup_error,
        )

        def idle(_: object) -> None:
            self.backup_busy.hide()
            self.export_button.setEnabled(True)

        task.add_done_callback(idle)

    def _backed_up(self, path: Path, info: BackupInfo) -> None:
        self.backup_fields.clear()
        self.backup_done.setText(f"Saved {path.name} ({format_size(path.stat().st_size)}).")
        self.backup_done.show()
        self.backup_written.emit(info)

    def reject(self) -> None:
        for task in self._tasks:
            if not task.done() and not self.backup_busy.isVisible():
                task.cancel()
        super().reject()


__all__ = ["SECTIONS", "SettingsDialog"]
