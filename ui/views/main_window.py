"""The main window: conversation list on the left, the conversation on the right.

ui-design.md, "Layout": two panes (the list about 320 px, resizable
260-420 and remembered); under about 720 px one pane at a time with a
back button; a thin connection banner at the very top; toasts at the
bottom. Shortcuts: Ctrl+K quick switcher, Ctrl+F search, Ctrl+N new
conversation, Alt+Up/Down previous/next conversation, Esc back or close,
Ctrl+, settings, Ctrl+Q quit, Alt+M the app menu (the "⋯" button of the
list's header: new conversation, new group, add contact, invite link and
QR code, settings, lock now, quit).

The window hosts the dialogs of :mod:`ui.views` written by the screens
helper (settings, contacts, groups, search, quick switcher, emoji picker)
by their contract names, and refreshes from :class:`~ui.bridge.Bridge`
signals only: every action awaits one client coroutine.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence, QResizeEvent, QShortcut
from PySide6.QtWidgets import (
    QFrame,
    QLabel,
    QMainWindow,
    QMenu,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from messenger.client import (
    ClientError,
    ConnectionState,
    ConversationKind,
    ConversationView,
    MessageView,
    MessengerClient,
)

from .. import tasks, theme
from ..bridge import Bridge
from ..models.conversation_list import ConversationListModel
from ..platform import PlatformServices
from ..preferences import PreferencesStore
from ..widgets.icons import themed_icon
from .banner import ConnectionBanner
from .composer import optional_class
from .conversation import ConversationPane
from .conversation_list import ConversationListPane
from .toast import Toast, report_to

#: Below this window width, one pane at a time.
NARROW_PX = 720
SIDEBAR_MIN = 260
SIDEBAR_MAX = 420

NO_CONVERSATION = "Choose a conversation, or start a new one."
#: Rows kept while the timeline follows new messages (older ones page back in).
FOLLOW_WINDOW = 100


class MainWindow(QMainWindow):
    """One profile's main window."""

    #: The user asked to quit (menu, tray); the App decides.
    quit_requested = Signal()
    #: The window was closed (not to the tray).
    closed = Signal()
    #: "Lock now" from the menu; the App covers the window.
    lock_requested = Signal()

    def __init__(
        self,
        client: MessengerClient,
        bridge: Bridge,
        prefs: PreferencesStore,
        services: PlatformServices,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.client = client
        self.bridge = bridge
        self.prefs = prefs
        self.services = services
        self.setWindowTitle("Messenger")
        self.setAccessibleName("Messenger")
        self.setMinimumSize(400, 480)
        self.account_id = ""
        self.verified: set[str] = set()
        self.dialogs: dict[str, Any] = {}
        self.close_to_tray = False
        #: Whether "Lock now" is offered (the App sets it when it can lock).
        self.lock_available = False
        self._quitting = False

        central = QWidget(self)
        outer = QVBoxLayout(central)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(0)
        self.banner = ConnectionBanner(central)
        outer.addWidget(self.banner)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, central)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setHandleWidth(1)
        outer.addWidget(self.splitter, 1)

        self.list_model = ConversationListModel(client, self)
        self.left = QStackedWidget(self.splitter)
        self.left.setMinimumWidth(SIDEBAR_MIN)
        self.left.setMaximumWidth(SIDEBAR_MAX)
        self.sidebar = ConversationListPane(client, self.list_model, self.left)
        self.left.addWidget(self.sidebar)
        self.search_panel: Any = None

        self.right = QStackedWidget(self.splitter)
        self.placeholder = self._placeholder()
        self.right.addWidget(self.placeholder)
        self.pane = ConversationPane(client, self.right)
        self.right.addWidget(self.pane)
        self.splitter.addWidget(self.left)
        self.splitter.addWidget(self.right)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        width = max(SIDEBAR_MIN, min(SIDEBAR_MAX, prefs.value.sidebar_width))
        self.splitter.setSizes([width, 1000])
        self._save_split = QTimer(self)
        self._save_split.setSingleShot(True)
        self._save_split.timeout.connect(self._remember_split)
        self.splitter.splitterMoved.connect(lambda *_: self._save_split.start(400))
        self.setCentralWidget(central)

        self.toast = Toast(central)
        tasks.set_error_sink(self.show_error)
        self.narrow = False

        self.sidebar.conversation_chosen.connect(self.open_conversation)
        self.sidebar.new_conversation_requested.connect(self.new_conversation)
        self.sidebar.settings_requested.connect(self.open_settings)
        self.sidebar.details_requested.connect(self.open_details)
        self.sidebar.search_requested.connect(self.open_search)
        self.pane.back_requested.connect(self.show_list)
        self.pane.details_requested.connect(self.open_details)
        self.pane.search_requested.connect(lambda _cid: self.open_search())
        self.pane.react_picker_requested.connect(self._react_with_picker)

        bridge.conversations_changed.connect(self._conversations_changed)
        bridge.messages_received.connect(self._messages_received)
        bridge.messages_updated.connect(self._messages_updated)
        bridge.messages_expired.connect(self._messages_expired)
        bridge.transfer_progress.connect(
            lambda cid, mid, done, _total: self.pane.model.transfer_progress(cid, mid, done)
        )
        bridge.typing_changed.connect(self._typing_changed)
        bridge.connection_changed.connect(self._connection_changed)
        bridge.operation_failed.connect(lambda _cid, sentence: self.show_error(sentence))
        bridge.reload_requested.connect(self.reload)
        bridge.contacts_changed.connect(
            lambda _ids: tasks.spawn(self._contacts_changed(), on_error=report_to(self))
        )
        bridge.account_changed.connect(
            lambda _name: tasks.spawn(self._load_account(), on_error=report_to(self))
        )
        theme.notifier().changed.connect(self._theme_changed)

        self._shortcuts()
        self._build_menu()
        self.loaded = False
        #: The first load of the conversation list; the app starts syncing once it is done.
        self.first_load = tasks.spawn(self.load(), on_error=report_to(self))

    # -- building --------------------------------------------------------------------------

    def _placeholder(self) -> QWidget:
        page = QFrame(self)
        page.setObjectName("EmptyState")
        page.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        layout = QVBoxLayout(page)
        layout.addStretch(1)
        title = QLabel("Private messages, on a server you choose", page)
        title.setProperty("class", "subtitle")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(title)
        self.placeholder_text = QLabel(NO_CONVERSATION, page)
        self.placeholder_text.setProperty("class", "muted")
        self.placeholder_text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder_text.setWordWrap(True)
        layout.addWidget(self.placeholder_text)
        button = QPushButton("New conversation", page)
        button.setProperty("class", "primary")
        button.setAccessibleName("New conversation")
        button.clicked.connect(self.new_conversation)
        layout.addSpacing(8)
        layout.addWidget(button, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(2)
        return page

    def _shortcuts(self) -> None:
        def add(keys: str | QKeySequence.StandardKey, slot: Any, name: str) -> QShortcut:
            shortcut = QShortcut(QKeySequence(keys), self)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(slot)
            shortcut.setObjectName(name)
            return shortcut

        self.shortcuts = {
            "switcher": add("Ctrl+K", self.open_quick_switcher, "switcher"),
            "search": add("Ctrl+F", self.open_search, "search"),
            "new": add("Ctrl+N", self.new_conversation, "new"),
            "previous": add("Alt+Up", lambda: self.step_conversation(-1), "previous"),
            "next": add("Alt+Down", lambda: self.step_conversation(1), "next"),
            "settings": add("Ctrl+,", self.open_settings, "settings"),
            "escape": add("Esc", self.escape, "escape"),
            "composer": add("Ctrl+L", self.focus_composer, "composer"),
            "quit": add("Ctrl+Q", self.quit_requested.emit, "quit"),
            "menu": add("Alt+M", self.show_menu, "menu"),
        }

    def _build_menu(self) -> None:
        """The app menu behind the list header's "⋯" button."""
        menu = self.menu = QMenu(self)
        menu.setAccessibleName("Menu")

        def add(text: str, slot: Any, keys: str = "", icon: str = "") -> QAction:
            action = menu.addAction(text)
            action.triggered.connect(lambda _checked=False: slot())
            if keys:
                # Shown in the menu; the window's QShortcut does the work
                # (one owner per key, so Qt never finds it ambiguous).
                action.setShortcut(QKeySequence(keys))
                action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
            if icon:
                action.setIcon(themed_icon(icon))
            return action

        self.menu_actions = {
            "new": add("New conversation", self.new_conversation, "Ctrl+N", "compose"),
            "group": add("New group", self.new_group, "", "group"),
            "contact": add("Add contact", self.add_contact, "", "user-add"),
            "invite": add("Your invite link and QR code", self.open_invite, "", "qr"),
        }
        self.menu_actions["link_device"] = add("Link a device", self.open_link_device, "", "laptop")
        menu.addSeparator()
        self.menu_actions["settings"] = add("Settings", self.open_settings, "Ctrl+,", "settings")
        self.menu_actions["lock"] = add("Lock now", self.lock_requested.emit, "", "lock")
        menu.addSeparator()
        self.menu_actions["quit"] = add("Quit", self.quit_requested.emit, "Ctrl+Q")
        menu.aboutToShow.connect(self._menu_about_to_show)
        self.sidebar.more_button.setMenu(menu)

    def _menu_about_to_show(self) -> None:
        self.menu_actions["lock"].setVisible(self.lock_available)

    def show_menu(self) -> None:
        """Open the app menu under its button (Alt+M)."""
        button = self.sidebar.more_button
        if not button.isVisible():
            self.show_list()
        self.menu.popup(button.mapToGlobal(button.rect().bottomLeft()))

    # -- loading ---------------------------------------------------------------------------

    async def load(self) -> None:
        """Read what the window shows (at start and after the bridge fell behind)."""
        await self.list_model.reload()
        await self._load_account()
        await self._contacts_changed(reload_list=False)
        self.loaded = True
        self.services.tray.set_unread(self.list_model.total_unread())

    def reload(self) -> None:
        tasks.spawn(self._reload(), on_error=report_to(self))

    async def _reload(self) -> None:
        await self.list_model.reload()
        cid = self.pane.conversation_id
        if cid is not None:
            try:
                view = await self.client.conversation(cid)
            except ClientError:
                self.show_list()
                return
            self.pane.set_view(view)
            await self.pane.model.reload()

    async def _load_account(self) -> None:
        info = await self.client.account()
        if info is None:
            return
        self.account_id = info.account_id
        name = info.display_name or info.handle or "Me"
        self.sidebar.set_identity(name, info.account_id)
        self.sidebar.own_avatar.setAccessibleName(f"{name}: settings")

    async def _contacts_changed(self, *, reload_list: bool = True) -> None:
        contacts = await self.client.contacts(include_blocked=True)
        self.verified = {c.account_id for c in contacts if c.verified}
        self.pane.verified = self.verified
        if reload_list:
            await self.list_model.reload()
            if self.pane.view is not None:
                with contextlib.suppress(ClientError):
                    self.pane.set_view(await self.client.conversation(self.pane.view.id))

    # -- bridge ----------------------------------------------------------------------------

    def _conversations_changed(self, views: list[ConversationView]) -> None:
        self.list_model.update_conversations(views)
        current = self.pane.view
        if current is not None:
            for view in views:
                if view.id == current.id:
                    self.pane.set_view(view)
        self.services.tray.set_unread(self.list_model.total_unread())
        self._update_title()

    def _messages_received(self, cid: int, views: list[MessageView]) -> None:
        self.list_model.messages_arrived(cid, views)
        # while the timeline follows the newest message, a small window will do
        keep = FOLLOW_WINDOW if self.pane.timeline.pinned else None
        self.pane.model.messages_arrived(cid, views, keep=keep)
        if self.list_model.typing(cid):
            # a message from someone ends their typing notice
            for sender in {v.message.sender_account_id for v in views if not v.message.outgoing}:
                self.pane_typing_stopped(cid, sender)

    def pane_typing_stopped(self, cid: int, account_id: str) -> None:
        self.list_model.set_typing(cid, account_id, False)
        if self.pane.conversation_id == cid:
            self.pane.set_typing(account_id, False)

    def _messages_updated(self, cid: int, views: list[MessageView]) -> None:
        self.list_model.messages_changed(cid, views)
        self.pane.model.messages_changed(cid, views)

    def _messages_expired(self, cid: int, message_ids: list[int]) -> None:
        self.list_model.messages_expired(cid, message_ids)
        self.pane.messages_expired(cid, message_ids)

    def _typing_changed(self, cid: int, account_id: str, active: bool) -> None:
        if account_id == self.account_id:
            return
        self.list_model.set_typing(cid, account_id, active)
        if self.pane.conversation_id == cid:
            self.pane.set_typing(account_id, active)

    def _connection_changed(self, state: ConnectionState, error: str | None) -> None:
        self.banner.set_state(state, error)
        if state in (ConnectionState.REPLACED, ConnectionState.REMOVED):
            self.pane.stop_sending(self.banner.text())

    def _theme_changed(self, dark: bool) -> None:
        # icons are drawn in the theme's ink: redraw them in the new one
        self.sidebar.new_button.setIcon(themed_icon("compose"))
        self.sidebar.more_button.setIcon(themed_icon("more"))
        self.pane.timeline.reactions.retheme()
        self.pane.header.timer.set_seconds(self.pane.header.timer.seconds)
        self.pane.composer.attach_button.setIcon(themed_icon("attach", theme.colors().muted))
        for name, icon in (
            ("new", "compose"),
            ("group", "group"),
            ("contact", "user-add"),
            ("invite", "qr"),
            ("link_device", "laptop"),
            ("settings", "settings"),
            ("lock", "lock"),
        ):
            self.menu_actions[name].setIcon(themed_icon(icon))
        self.pane.timeline.bubbles.clear_cache()
        self.pane.timeline.bubbles._fonts()
        self.pane.timeline.viewport().update()
        self.sidebar.list.viewport().update()

    def _update_title(self) -> None:
        unread = self.list_model.total_unread()
        self.setWindowTitle(f"Messenger ({unread})" if unread else "Messenger")

    # -- conversations ---------------------------------------------------------------------

    def open_conversation(self, conversation_id: int, message_id: int | None = None) -> None:
        """Show a conversation (at ``message_id``, highlighted, when given)."""
        tasks.spawn(self.show_conversation(conversation_id, message_id), on_error=report_to(self))

    async def show_conversation(self, conversation_id: int, message_id: int | None = None) -> None:
        view = self.list_model.view(conversation_id)
        if view is None:
            view = await self.client.conversation(conversation_id)
        self.right.setCurrentWidget(self.pane)
        self.sidebar.select(conversation_id)
        self._apply_narrow()
        await self.pane.open(view, message_id)
        if message_id is None:
            self.pane.composer.field.setFocus()

    def current_conversation(self) -> int | None:
        return self.pane.conversation_id

    def show_list(self) -> None:
        """Narrow mode: back to the list. Wide: close the conversation."""
        if self.narrow:
            self.pane.close_conversation()
            self.right.setCurrentWidget(self.placeholder)
            self.sidebar.select(None)
            self._apply_narrow()
            self.sidebar.list.setFocus()

    def step_conversation(self, step: int) -> None:
        ids = self.list_model.ids()
        if not ids:
            return
        current = self.pane.conversation_id
        if current in ids:
            index = max(0, min(len(ids) - 1, ids.index(current) + step))
        else:
            index = 0 if step > 0 else len(ids) - 1
        self.open_conversation(ids[index])

    def escape(self) -> None:
        if self.pane.timeline.reactions.isVisible():
            self.pane.timeline.reactions.close_bar()
            return
        if self.toast.isVisible():
            self.toast.dismiss()
            return
        if self.left.currentWidget() is not self.sidebar:
            self.close_search()
            return
        composer = self.pane.composer
        if composer.reply_to is not None or composer.editing is not None:
            composer.cancel_mode()
            return
        if self.narrow and self.right.currentWidget() is self.pane:
            self.show_list()
            return
        if self.sidebar.search.text():
            self.sidebar.search.clear()
            return
        self.sidebar.search.setFocus()

    def focus_composer(self) -> None:
        if self.pane.view is not None:
            self.pane.composer.field.setFocus()

    # -- narrow layout ---------------------------------------------------------------------

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        narrow = self.width() < NARROW_PX
        if narrow != self.narrow:
            self.narrow = narrow
            self._apply_narrow()

    def _apply_narrow(self) -> None:
        open_pane = self.right.currentWidget() is self.pane
        if self.narrow:
            self.left.setMaximumWidth(16777215)
            self.left.setVisible(not open_pane)
            self.right.setVisible(open_pane)
            full = max(1, self.splitter.width())
            self.splitter.setSizes([0, full] if open_pane else [full, 0])
        else:
            self.left.setMaximumWidth(SIDEBAR_MAX)
            self.left.setVisible(True)
            self.right.setVisible(True)
            width = max(SIDEBAR_MIN, min(SIDEBAR_MAX, self.prefs.value.sidebar_width))
            self.splitter.setSizes([width, max(1, self.splitter.width() - width)])
        self.pane.header.back.setVisible(self.narrow)

    def _remember_split(self) -> None:
        if self.narrow or not self.left.isVisible():
            return
        width = self.splitter.sizes()[0]
        if SIDEBAR_MIN <= width <= SIDEBAR_MAX:
            self.prefs.update(sidebar_width=width)

    # -- errors ----------------------------------------------------------------------------

    def show_error(self, sentence: str) -> None:
        self.toast.show_message(sentence)

    def show_info(self, sentence: str) -> None:
        self.toast.show_message(sentence)

    # -- dialogs (screens helper) ------------------------------------------------------------

    def _dialog(self, name: str, module: str, cls: str, *args: Any) -> Any:
        factory = optional_class(module, cls)
        if factory is None:
            self.show_info("This part of the app is not available in this build.")
            return None
        kwargs: dict[str, Any] = {}
        with contextlib.suppress(TypeError, ValueError):
            if "bridge" in inspect.signature(factory).parameters:
                kwargs["bridge"] = self.bridge  # follows changes made elsewhere
        dialog = factory(*args, self, **kwargs)
        self.dialogs[name] = dialog
        return dialog

    def open_settings(self) -> None:
        dialog = self._dialog("settings", "settings", "SettingsDialog", self.client, self.prefs)
        if dialog is not None:
            dialog.open()

    def open_link_device(self) -> None:
        """Link a new device to this account (docs/devices.md §2)."""
        dialog = self._dialog("link_device", "link_device", "LinkDeviceDialog", self.client)
        if dialog is not None:
            dialog.open()

    def new_conversation(self) -> None:
        dialog = self._dialog("new", "new_conversation", "NewConversationDialog", self.client)
        if dialog is not None:
            dialog.created.connect(self._created)
            dialog.open()

    def new_group(self) -> None:
        dialog = self._dialog("new", "new_conversation", "NewConversationDialog", self.client)
        if dialog is not None:
            dialog.created.connect(self._created)
            if hasattr(dialog, "group_mode"):
                dialog.group_mode.setChecked(True)
            dialog.open()

    def add_contact(self, address: str = "") -> None:
        """The add-contact dialog (``address``: prefilled, e.g. a forwarded invite link)."""
        dialog = self._dialog("add_contact", "contacts", "AddContactDialog", self.client)
        if dialog is not None:
            if address:
                dialog.address.setText(address)
                dialog.address.setCursorPosition(0)
                dialog.add_button.setFocus()
            dialog.added.connect(lambda _account_id: self.show_info("The contact was added."))
            dialog.open()

    def open_invite(self) -> None:
        dialog = self._dialog("invite", "contacts", "InviteDialog", self.client)
        if dialog is not None:
            dialog.open()

    def _created(self, conversation_id: int) -> None:
        tasks.spawn(self._open_created(conversation_id), on_error=report_to(self))

    async def _open_created(self, conversation_id: int) -> None:
        await self.list_model.reload()
        await self.show_conversation(conversation_id)

    def open_details(self, conversation_id: int) -> None:
        view = self.list_model.view(conversation_id) or self.pane.view
        if view is None or view.id != conversation_id:
            return
        conversation = view.conversation
        if conversation.kind is ConversationKind.DIRECT and conversation.peer_account_id:
            dialog = self._dialog(
                "contact",
                "contacts",
                "ContactDetailsDialog",
                self.client,
                conversation.peer_account_id,
            )
            if dialog is not None:
                if hasattr(dialog, "open_conversation"):
                    dialog.open_conversation.connect(self.open_conversation)
                dialog.open()
        else:
            dialog = self._dialog("group", "group", "GroupDetailsDialog", self.client, view.id)
            if dialog is not None:
                if hasattr(dialog, "left"):
                    dialog.left.connect(lambda _cid: self.show_list())
                dialog.open()

    def open_quick_switcher(self) -> None:
        dialog = self._dialog("switcher", "quick_switcher", "QuickSwitcher", self.client)
        if dialog is None:
            self.sidebar.search.setFocus()
            self.sidebar.search.selectAll()
            return
        dialog.chosen.connect(self.open_conversation)
        dialog.open()

    def open_search(self, text: str = "") -> None:
        if self.search_panel is None:
            factory = optional_class("search", "SearchPanel")
            if factory is None:
                self.sidebar.search.setFocus()
                return
            self.search_panel = factory(self.client, self.left)
            self.search_panel.setAccessibleName("Search messages")
            self.search_panel.open_message.connect(self._open_hit)
            if hasattr(self.search_panel, "closed"):
                self.search_panel.closed.connect(self.close_search)
            self.left.addWidget(self.search_panel)
        if self.narrow:
            self.right.setCurrentWidget(self.placeholder)
        self.left.setCurrentWidget(self.search_panel)
        self._apply_narrow()
        self.search_panel.focus_search(text)

    def close_search(self) -> None:
        self.left.setCurrentWidget(self.sidebar)
        self.sidebar.list.setFocus()

    def _open_hit(self, conversation_id: int, message_id: int) -> None:
        self.open_conversation(conversation_id, message_id)

    def _react_with_picker(self, view: Any) -> None:
        factory = optional_class("emoji_picker", "EmojiPicker")
        if factory is None or not isinstance(view, MessageView):
            return
        picker = factory(self)
        self.dialogs["react"] = picker
        picker.picked.connect(lambda emoji: self.pane.react(view, emoji))
        pane = self.pane.timeline
        picker.popup_at(pane.mapToGlobal(pane.rect().center()))

    # -- window ---------------------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.ActivationChange and self.isActiveWindow():
            self.pane.window_activated()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.close_to_tray and not self._quitting and self.services.tray.available():
            self.pane.composer.save_draft()
            event.ignore()
            self.hide()
            return
        self.pane.composer.shutdown()
        self.toast.dismiss()
        super().closeEvent(event)
        self.closed.emit()

    def quit(self) -> None:
        """Close for good (not to the tray)."""
        self._quitting = True
        self.close()
