"""The controller of one profile's window: onboarding, unlock, main window.

:class:`App` decides what the user sees first -- onboarding when there is
no profile or no account, the unlock screen when the keyring does not give
the store key (:class:`~messenger.client.PassphraseRequiredError`), else the
main window -- and owns the one :class:`~messenger.client.MessengerClient`
(its ``start()`` and ``close()``) and the :class:`~ui.bridge.Bridge`, which
it starts before the client so that nothing is missed.

It also runs what spans the whole window: the theme (System/Light/Dark),
desktop notifications for arrivals outside the focused conversation (as
much as :class:`~ui.preferences.NotificationContent` allows), the tray's
unread count and close-to-tray, the app lock after idle minutes (the
screens helper's ``LockScreen``), and the last line of defence: an
unexpected exception is logged to ``<profile>/logs/ui.log`` (0600; type
and traceback, never message text or secrets) and shown as a sentence.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication, QWidget

from messenger.client import (
    ClientError,
    MessageKind,
    MessageView,
    MessengerClient,
    PassphraseRequiredError,
    Profiles,
)

from . import tasks, theme
from .bridge import Bridge
from .models.message_list import display_name
from .platform import PlatformServices
from .preferences import AppPreferences, NotificationContent, PreferencesStore
from .views.composer import optional_class
from .views.main_window import MainWindow
from .views.toast import report_to

log = logging.getLogger(__name__)

LOG_NAME = "ui.log"
#: Only this many notifications per burst; the rest are summed up in one.
MAX_NOTIFICATIONS_PER_BATCH = 3
#: A device link reached a computer that has an account already.
DEVICE_LINK_HERE = (
    "This code links a new computer to your account. Open it on that computer, under "
    "“Link to an existing account”."
)


def is_device_link(link: str) -> bool:
    """A ``messenger://link?...`` device link (docs/devices.md §2), not an invite link."""
    return link.strip().lower().startswith("messenger://link?")


class App(QObject):
    """One profile's window and client, from first run to quit."""

    #: The main window is up: ``MainWindow``.
    main_window_ready = Signal(object)
    #: The user quit (menu, tray, last window closed).
    quitting = Signal()

    def __init__(
        self,
        data_dir: Path | None,
        profile_name: str,
        services: PlatformServices,
        prefs_dir: Path | None = None,
        *,
        local_server: Any = None,
        server_url: str | None = None,
        link: str | None = None,
        passphrase: str | None = None,
        kdf: Any = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.data_dir = data_dir
        self.profile_name = profile_name
        self.services = services
        self._local_server = local_server
        self._server_url = server_url
        self._link = link
        self._forwarded_link: str | None = None
        self._passphrase = passphrase
        self._kdf = kdf
        directory = prefs_dir or (Profiles(data_dir).root / profile_name)
        self.prefs = PreferencesStore(directory)
        self.client: MessengerClient | None = None
        self.bridge: Bridge | None = None
        self.window: MainWindow | None = None
        self.screen: QWidget | None = None
        self.lock_screen: Any = None
        self._quit = asyncio.Event()
        self._log_handler: logging.Handler | None = None
        self._idle = QTimer(self)
        self._idle.setSingleShot(True)
        self._idle.timeout.connect(self.lock)
        self.notified: list[tuple[str, str, int]] = []
        self.prefs.changed.connect(self._prefs_changed)
        services.tray.activated.connect(self.show_window)
        services.tray.quit_requested.connect(self.quit)
        services.notifier.on_clicked = self._notification_clicked
        app = QApplication.instance()
        if isinstance(app, QApplication):
            theme.apply_theme(app, self.prefs.value.theme)
            app.installEventFilter(self)

    # -- running -----------------------------------------------------------------------------

    async def run_until_quit(self) -> int:
        """Show the first screen, then run until the user quits; the exit status."""
        await self.start()
        await self._quit.wait()
        await self.shutdown()
        return 0

    async def start(self) -> None:
        """Decide and show the first screen (without waiting for the quit)."""
        install_exception_hooks()
        profiles = Profiles(self.data_dir)
        if not profiles.exists(self.profile_name):
            self._show_onboarding()
            return
        try:
            client = await MessengerClient.open(
                self.profile_name, self._passphrase, data_dir=self.data_dir
            )
        except PassphraseRequiredError as error:
            self._show_unlock(error)
            return
        if not client.has_account:
            self._show_onboarding(client)
            return
        await self.open_main(client)

    def _set_screen(self, widget: QWidget, title: str) -> None:
        old, self.screen = self.screen, widget
        widget.setWindowTitle(title)
        widget.resize(1000, 700)
        widget.show()
        if old is not None:
            old.close()
            old.deleteLater()

    def _show_onboarding(self, client: MessengerClient | None = None) -> None:
        """The first-run screens; ``client``: an open profile that has no account yet."""
        factory = optional_class("onboarding", "OnboardingView")
        if factory is None:
            raise RuntimeError("the onboarding screen is missing")
        kwargs: dict[str, Any] = {}
        accepted = inspect.signature(factory).parameters
        if self._kdf is not None:
            kwargs["kdf"] = self._kdf
        if self._server_url and "server_url" in accepted:
            kwargs["server_url"] = self._server_url
        if client is not None:
            kwargs["client"] = client
        view = factory(self.data_dir, self.profile_name, self._local_server, **kwargs)
        view.finished.connect(self._opened)
        self._set_screen(view, "Welcome to Messenger")
        # A device link given at launch opens "Link to an existing account".
        for attribute in ("_link", "_forwarded_link"):
            link = getattr(self, attribute)
            if link and is_device_link(link) and view.use_link(link):
                setattr(self, attribute, None)

    def _show_unlock(self, error: PassphraseRequiredError) -> None:
        factory = optional_class("unlock", "UnlockView")
        if factory is None:
            raise RuntimeError("the unlock screen is missing")
        profile = Profiles(self.data_dir).get(self.profile_name)
        view = factory(profile, self.data_dir, reason=error.reason)
        view.unlocked.connect(self._opened)
        self._set_screen(view, "Unlock Messenger")

    def _opened(self, client: MessengerClient) -> None:
        if not client.has_account:
            # Unlocked a profile whose first run stopped before sign-up:
            # finish the first run with this open client (start() would
            # raise NoAccountError).
            self._show_onboarding(client)
            return
        tasks.spawn(self.open_main(client))

    async def open_main(self, client: MessengerClient) -> MainWindow:
        """Start ``client`` behind a new main window."""
        self.client = client
        self._attach_log(client.profile.path)
        bridge = self.bridge = Bridge(client, self)
        bridge.start()  # before client.start(): nothing is missed
        bridge.messages_received.connect(self._notify)
        window = self.window = MainWindow(client, bridge, self.prefs, self.services)
        window.close_to_tray = self.prefs.value.close_to_tray
        window.closed.connect(self.quit)
        window.quit_requested.connect(self.quit)
        window.lock_requested.connect(self.lock)
        window.lock_available = optional_class("lock_screen", "LockScreen") is not None
        window.resize(1200, 780)
        minimized = self.prefs.value.start_minimized and self.services.tray.available()
        if not minimized:
            window.show()
        # Only now close the previous screen: closing the last visible
        # window first would look like the user quitting.
        if self.screen is not None:
            self.screen.close()
            self.screen.deleteLater()
            self.screen = None
        self._restart_idle()
        for attribute in ("_link", "_forwarded_link"):
            link = getattr(self, attribute)
            if link and is_device_link(link):
                # A code for a new device: this one has an account already.
                setattr(self, attribute, None)
                window.show_info(DEVICE_LINK_HERE)
        if self._link:
            link, self._link = self._link, None
            tasks.spawn(
                client.add_contact(link),
                on_done=lambda contact: window.show_info(
                    f"{contact.display_name or contact.handle or 'The contact'} was added."
                ),
            )
        if self._forwarded_link:
            forwarded, self._forwarded_link = self._forwarded_link, None
            window.add_contact(forwarded)
        self.main_window_ready.emit(window)
        # Sync starts once the window shows its conversations: loading MLS and
        # the network stack would otherwise compete with the first paint.
        tasks.spawn(self._start_syncing(client, window), on_error=report_to(window))
        return window

    async def _start_syncing(self, client: MessengerClient, window: MainWindow) -> None:
        await asyncio.wait([window.first_load])  # a failed load is reported by the window
        await client.start()

    def open_link(self, link: str) -> None:
        """A ``messenger:`` link forwarded by a second launch: raise the window and use it.

        In the main window the add-contact dialog opens prefilled (the user
        confirms); on the first-run screen the link fills the server step; on
        the unlock screen it waits for the main window.
        """
        self.show_window()
        if self.window is not None:
            if self.window.isMinimized() or not self.window.isVisible():
                self.window.showNormal()
            if is_device_link(link):
                self.window.show_info(DEVICE_LINK_HERE)
                return
            self.window.add_contact(link)
            return
        use_link = getattr(self.screen, "use_link", None)
        if callable(use_link) and use_link(link):
            return
        self._forwarded_link = link

    def show_window(self) -> None:
        """Raise the running window (single-instance activation, the tray)."""
        target = self.window or self.screen
        if target is None:
            return
        target.show()
        target.setWindowState(target.windowState() & ~target.windowState().WindowMinimized)
        target.raise_()
        target.activateWindow()

    def quit(self) -> None:
        self.quitting.emit()
        self._quit.set()

    async def shutdown(self) -> None:
        """Save, stop the bridge and the client, close the windows."""
        self._idle.stop()
        app = QApplication.instance()
        if isinstance(app, QApplication):
            app.removeEventFilter(self)
        if self.window is not None:
            self.window.pane.composer.save_draft()
        await asyncio.sleep(0)
        if self.bridge is not None:
            await self.bridge.stop()
        if self.client is not None:
            with contextlib.suppress(ClientError):
                await self.client.close()
        # A first run left half-way (onboarding) may hold an open store too.
        pending = getattr(self.screen, "_client", None)
        if pending is not None and pending is not self.client:
            with contextlib.suppress(ClientError):
                await pending.close()
        if self.window is not None:
            self.window.quit()
            self.window.deleteLater()
        if self.screen is not None:
            self.screen.close()
            self.screen.deleteLater()
        tasks.set_error_sink(None)
        self.services.close()
        if self._log_handler is not None:
            logging.getLogger().removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None

    # -- preferences -------------------------------------------------------------------------

    def _prefs_changed(self, value: AppPreferences) -> None:
        app = QApplication.instance()
        if isinstance(app, QApplication):
            theme.apply_theme(app, value.theme)
        if self.window is not None:
            self.window.close_to_tray = value.close_to_tray
        self._restart_idle()

    # -- notifications and the tray ------------------------------------------------------------

    def _notify(self, cid: int, views: list[MessageView]) -> None:
        prefs = self.prefs.value
        window = self.window
        if window is None:
            return
        self.services.tray.set_unread(window.list_model.total_unread())
        if not prefs.notifications:
            return
        focused = (
            window.isVisible() and window.isActiveWindow() and window.current_conversation() == cid
        )
        if focused:
            return
        conversation = window.list_model.view(cid)
        if conversation is not None and conversation.muted:
            return
        incoming = [
            v for v in views if not v.message.outgoing and v.message.kind is not MessageKind.SYSTEM
        ]
        if not incoming:
            return
        name = conversation.name if conversation is not None else "a conversation"
        shown = incoming[-MAX_NOTIFICATIONS_PER_BATCH:]
        if len(incoming) > MAX_NOTIFICATIONS_PER_BATCH:
            shown = incoming[-1:]
        for view in shown:
            title, body = notification_text(
                prefs.notification_content, view, name, len(incoming) if len(shown) == 1 else 1
            )
            self.notified.append((title, body, cid))
            tasks.spawn(self.services.notifier.notify(title, body, cid), on_error=_log_only)

    def _notification_clicked(self, conversation_id: int) -> None:
        self.show_window()
        if self.window is not None:
            self.window.open_conversation(conversation_id)

    # -- app lock --------------------------------------------------------------------------

    def _restart_idle(self) -> None:
        minutes = self.prefs.value.lock_after_minutes
        if minutes > 0 and self.window is not None:
            self._idle.start(minutes * 60_000)
        else:
            self._idle.stop()

    def lock(self) -> None:
        """Cover the window until the passphrase is entered again."""
        window, client = self.window, self.client
        if window is None or client is None:
            return
        if self.lock_screen is None:
            factory = optional_class("lock_screen", "LockScreen")
            if factory is None:
                return
            self.lock_screen = factory(client, window)
            self.lock_screen.unlocked.connect(self._unlocked)
        self.lock_screen.lock()

    @property
    def locked(self) -> bool:
        return self.lock_screen is not None and self.lock_screen.isVisible()

    def _unlocked(self) -> None:
        if self.lock_screen is not None:
            self.lock_screen.hide()
        self._restart_idle()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind in _ACTIVITY and self._idle.isActive():
            self._idle.start()
        return False

    # -- the log ---------------------------------------------------------------------------

    def _attach_log(self, profile_dir: Path) -> None:
        if self._log_handler is not None:
            return
        handler = open_log(profile_dir)
        if handler is not None:
            logging.getLogger().addHandler(handler)
            self._log_handler = handler


_ACTIVITY = frozenset(
    {
        QEvent.Type.KeyPress,
        QEvent.Type.MouseButtonPress,
        QEvent.Type.MouseMove,
        QEvent.Type.Wheel,
    }
)


def notification_text(
    content: NotificationContent, view: MessageView, conversation: str, count: int = 1
) -> tuple[str, str]:
    """Title and body of a notification, as much as ``content`` allows."""
    if content is NotificationContent.NONE:
        return ("Messenger", "New message" if count == 1 else f"{count} new messages")
    sender = view.sender_name
    title = sender if sender == conversation else f"{sender} in {conversation}"
    if content is NotificationContent.SENDER:
        return (title, "New message" if count == 1 else f"{count} new messages")
    body = "This message was deleted" if view.message.deleted else (view.message.body or "")
    if view.attachment is not None and not view.message.deleted:
        body = f"📎 {body or display_name(view.attachment.name)}"
    if count > 1:
        body = f"{body}\n(+{count - 1} more)"
    return (title, body)


def open_log(profile_dir: Path) -> logging.Handler | None:
    """A handler writing to ``<profile>/logs/ui.log`` (0700 directory, 0600 file)."""
    path = profile_dir / "logs" / LOG_NAME
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        return None
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def _log_only(sentence: str) -> None:
    log.info("a desktop notification could not be shown")


def handle_unexpected(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    """``sys.excepthook``: log type and traceback (never the message), show a sentence."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    # Only the traceback's frames and the type: the message may hold user text.
    log.error("unexpected %s", kind.__name__, exc_info=(kind, _scrubbed(value), tb))
    tasks.report(ClientError("unexpected error, logged", user_message=tasks.UNEXPECTED))


def _loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    error = context.get("exception")
    if isinstance(error, BaseException):
        handle_unexpected(type(error), error, error.__traceback__)
    else:
        log.error("an error in the event loop (no exception)")


def _scrubbed(value: BaseException) -> BaseException:
    """A copy of ``value`` with no arguments (its message may contain user data)."""
    try:
        clean = type(value).__new__(type(value))
        clean.args = ()
        return clean
    except Exception:
        return RuntimeError(type(value).__name__)


def install_exception_hooks() -> None:
    """Route unexpected exceptions (Qt slots, the asyncio loop) to the log and a toast."""
    sys.excepthook = handle_unexpected
    with contextlib.suppress(RuntimeError):
        asyncio.get_event_loop().set_exception_handler(_loop_exception)
