"""The app's own preferences (theme, notifications, tray, app lock).

They are about this computer's window, not the account, so they live in a
small JSON file in the profile's directory (``ui.json``, mode 0600), not in
the encrypted store; nothing in them is secret. Preferences the account
owns (read receipts, typing) belong to :class:`messenger.client.Preferences`.
Unknown or malformed values fall back to the defaults: a damaged file never
stops the app from starting.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

FILE_NAME = "ui.json"


class Theme(enum.StrEnum):
    SYSTEM = "system"
    LIGHT = "light"
    DARK = "dark"


class NotificationContent(enum.StrEnum):
    """How much a desktop notification shows."""

    FULL = "full"
    """Sender and message text."""
    SENDER = "sender"
    """Only who wrote ("New message from Alice")."""
    NONE = "none"
    """Neither ("New message")."""


@dataclasses.dataclass(frozen=True, slots=True)
class AppPreferences:
    theme: Theme = Theme.SYSTEM
    notifications: bool = True
    notification_content: NotificationContent = NotificationContent.FULL
    start_minimized: bool = False
    close_to_tray: bool = False
    #: Lock the window after this many idle minutes (0: never).
    lock_after_minutes: int = 0
    #: The conversation list's width in pixels, remembered.
    sidebar_width: int = 320
    #: The local server this profile runs ("run a server on this computer").
    local_server: bool = False
    local_server_port: int = 0

    def to_json(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: object) -> AppPreferences:
        if not isinstance(data, dict):
            return cls()
        defaults = cls()
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            default = getattr(defaults, f.name)
            raw = data.get(f.name, default)
            values[f.name] = _coerce(default, raw)
        return cls(**values)


def _plain(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


def _coerce(default: object, raw: object) -> object:
    if isinstance(default, enum.Enum):
        try:
            return type(default)(raw)
        except ValueError:
            return default
    if isinstance(default, bool):
        return raw if isinstance(raw, bool) else default
    if isinstance(default, int):
        ok = isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw <= 1_000_000
        return raw if ok else default
    return default


class PreferencesStore(QObject):
    """Loads and saves :class:`AppPreferences` for one profile directory."""

    changed = Signal(object)  # AppPreferences

    def __init__(self, directory: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._path = directory / FILE_NAME
        self._value = self._load()

    @property
    def value(self) -> AppPreferences:
        return self._value

    def _load(self) -> AppPreferences:
        try:
            return AppPreferences.from_json(json.loads(self._path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            return AppPreferences()

    def update(self, **changes: Any) -> AppPreferences:
        """Change some fields, save atomically (0600), and emit :attr:`changed`."""
        value = dataclasses.replace(self._value, **changes)
        if value == self._value:
            return value
        self._value = value
        self._save()
        self.changed.emit(value)
        return value

    def _save(self) -> None:
        directory = self._path.parent
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".ui-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(self._value.to_json(), out, indent=1)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self._path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
