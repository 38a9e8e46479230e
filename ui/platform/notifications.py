"""Desktop notifications behind a small interface, with a fake for tests.

:class:`DesktopNotifier` sends through ``desktop-notifier`` (D-Bus
``org.freedesktop.Notifications`` on Linux, the notification centres on
macOS and Windows). Without a D-Bus session bus, or when sending fails, it
stays quiet: the app works without notifications, and nothing but one line
in the log says so. Clicking a notification calls :attr:`on_clicked` with
its conversation and emits :attr:`clicked`, which the app turns into
"raise the window and open that conversation".

What a notification shows (sender, text, or neither) is decided by the
caller from the user's preference; this module shows what it is given.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from PySide6.QtCore import QObject, Signal

from ui import resources

__all__ = [
    "DesktopNotifier",
    "FakeNotifier",
    "Notifier",
    "SentNotification",
    "session_bus_available",
]

log = logging.getLogger(__name__)

#: The name notifications are shown under.
APP_NAME = "Messenger"


@runtime_checkable
class Notifier(Protocol):
    """Shows "new message" notifications; a click reports its conversation."""

    on_clicked: Callable[[int], None] | None

    def available(self) -> bool:
        """Whether notifications can be shown at all (else :meth:`notify` does nothing)."""
        ...

    async def notify(self, title: str, body: str, conversation_id: int) -> None:
        """Show one notification; never raises for a missing notification service."""
        ...

    def close(self) -> None:
        """Let go of the notification service (at exit)."""
        ...


def session_bus_available(environ: dict[str, str] | None = None) -> bool:
    """Whether a D-Bus session bus can be found (always True off Linux/BSD)."""
    if sys.platform in ("darwin", "win32"):
        return True
    env = os.environ if environ is None else environ
    if env.get("DBUS_SESSION_BUS_ADDRESS"):
        return True
    runtime = env.get("XDG_RUNTIME_DIR")
    return bool(runtime) and os.path.exists(os.path.join(runtime or "", "bus"))


class _QuietFailures(logging.Filter):
    """Turns desktop-notifier's "Notification failed" warning into one debug line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING and "failed" in record.getMessage().lower():
            log.debug("a notification could not be shown (%s)", record.getMessage())
            return False
        return True


_QUIET = _QuietFailures()
_BACKEND_LOGGERS = ("desktop_notifier", "desktop_notifier.backends.base", "desktop_notifier.main")


class DesktopNotifier(QObject):
    """Notifications through ``desktop-notifier``; quiet when there is no service."""

    clicked = Signal(int)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        on_clicked: Callable[[int], None] | None = None,
        environ: dict[str, str] | None = None,
    ) -> None:
        super().__init__(parent)
        self.on_clicked = on_clicked
        self._available = session_bus_available(environ)
        self._backend: Any = None
        if not self._available:
            log.info("no D-Bus session bus: desktop notifications are off")

    def available(self) -> bool:
        return self._available

    def _notifier(self) -> Any:
        if self._backend is None:
            from desktop_notifier import DesktopNotifier as Backend
            from desktop_notifier import Icon

            for name in _BACKEND_LOGGERS:
                logging.getLogger(name).addFilter(_QUIET)  # the same filter: added once
            png = resources.icons_dir() / "hicolor" / "256x256" / "apps" / "messenger.png"
            icon = Icon(path=png) if png.is_file() else None
            self._backend = Backend(app_name=APP_NAME, app_icon=icon)
        return self._backend

    async def notify(self, title: str, body: str, conversation_id: int) -> None:
        if not self._available:
            return
        try:
            await self._notifier().send(
                title=title,
                message=body,
                on_clicked=lambda: self._clicked(conversation_id),
                thread=f"conversation-{conversation_id}",
            )
        except Exception as exc:  # the service went away: stay quiet
            log.debug("a notification could not be shown (%s)", type(exc).__name__)

    def _clicked(self, conversation_id: int) -> None:
        self.clicked.emit(conversation_id)
        if self.on_clicked is not None:
            self.on_clicked(conversation_id)

    def close(self) -> None:
        """Disconnect from the session bus, if a notification connected to it."""
        backend, self._backend = self._backend, None
        # desktop-notifier keeps its D-Bus connection on the platform backend.
        bus = getattr(getattr(backend, "_backend", None), "bus", None)
        if bus is not None:
            try:
                bus.disconnect()
            except Exception as exc:  # already gone
                log.debug("closing the notification bus: %s", type(exc).__name__)


@dataclass(frozen=True, slots=True)
class SentNotification:
    title: str
    body: str
    conversation_id: int


class FakeNotifier(QObject):
    """Records notifications; :meth:`click` plays a user's click."""

    clicked = Signal(int)

    def __init__(self, parent: QObject | None = None, *, available: bool = True) -> None:
        super().__init__(parent)
        self.on_clicked: Callable[[int], None] | None = None
        self.sent: list[SentNotification] = []
        self.closed = False
        self._available = available

    def available(self) -> bool:
        return self._available

    async def notify(self, title: str, body: str, conversation_id: int) -> None:
        if self._available:
            self.sent.append(SentNotification(title, body, conversation_id))

    def close(self) -> None:
        self.closed = True

    def click(self, index: int = -1) -> None:
        """Click the notification at ``index`` (default: the newest)."""
        conversation_id = self.sent[index].conversation_id
        self.clicked.emit(conversation_id)
        if self.on_clicked is not None:
            self.on_clicked(conversation_id)
