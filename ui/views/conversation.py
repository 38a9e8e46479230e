"""The right pane: header, the timeline of one conversation, the composer.

The timeline is a :class:`QListView` over :class:`MessageListModel` with
the :class:`BubbleDelegate`; it pages older messages in as its top comes
near (keeping what is on screen in place), follows new arrivals while it
sits at the bottom, and marks the conversation read when the newest
message is visible in an active window.

Message actions work from the context menu and from the keyboard on the
current message (Up/Down to move): R reply, E edit (own), Delete (own),
Ctrl+C copy, Shift+F10 or the Menu key for the whole menu (reactions,
retry). Every action awaits one client coroutine; the view changes when
the bridge reports the result.

Attachments (docs/attachments.md §6): a file card's buttons and an image's
pill dispatch ``download``, ``cancel_transfer``, ``retry_transfer``,
``open_attachment`` and ``save_attachment``; clicking an image (or Enter
on it) opens the :class:`~ui.views.image_viewer.ImageViewer`. Files dragged
over the pane show the "Drop to send" overlay and join the composer's
strip. Disappearing messages (§7): the header's hourglass sets the
conversation's timer; one timer per timeline repaints the countdowns
every few seconds, and expired rows leave on ``MessagesExpired``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QPointF,
    QSize,
    Qt,
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QDesktopServices,
    QDragEnterEvent,
    QDragLeaveEvent,
    QDragMoveEvent,
    QDropEvent,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QMenu,
    QMessageBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from messenger.client import (
    ConversationKind,
    ConversationView,
    MessageKind,
    MessageStatus,
    MessageView,
    MessengerClient,
    ReactionSummary,
    TransferState,
)

from .. import tasks, theme
from ..models.message_list import MessageListModel, ViewRole
from ..widgets.avatar import Avatar
from ..widgets.badge import verified_icon
from ..widgets.bubble_delegate import BubbleDelegate
from ..widgets.drop_overlay import DropOverlay
from ..widgets.icons import themed_icon
from ..widgets.image_cache import MAX_INLINE_BYTES
from .attachment_strip import carries_attachments
from .composer import Composer
from .conversation_list import avatar_key
from .image_viewer import ImageViewer
from .quick_reactions import QUICK_REACTIONS as QUICK_REACTION_NAMES
from .quick_reactions import QuickReactions
from .restart_bar import RestartBar
from .timer_menu import TimerButton
from .toast import report_to

QUICK_REACTIONS = tuple(emoji for emoji, _name in QUICK_REACTION_NAMES)
#: Forget a typing notice after this long without a refresh (ms).
TYPING_TIMEOUT_MS = 8000
#: Load older messages when the view's top is this close (px).
NEAR_TOP_PX = 600
HIGHLIGHT_MS = 1600
#: How often the countdowns of disappearing messages are repainted (ms).
COUNTDOWN_MS = 5000


class Timeline(QListView):
    """The message list with bubble painting, hit-testing and message keys."""

    reply_requested = Signal(object)
    edit_requested = Signal(object)
    delete_requested = Signal(object)
    react_requested = Signal(object, str, bool)
    retry_requested = Signal(object)
    quote_clicked = Signal(object)
    menu_requested = Signal(object, QPoint)
    #: "More reactions" on the quick reactions bar: the emoji picker for this message.
    react_picker_requested = Signal(object)
    #: An attachment's button or image was used: ``view, action`` ("download", "open",
    #: "save", "cancel", "retry", "view").
    attachment_requested = Signal(object, str)

    def __init__(self, model: MessageListModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("Timeline")
        self.setAccessibleName("Messages")
        self.setModel(model)
        self.message_model = model
        self.bubbles = BubbleDelegate(self)
        self.setItemDelegate(self.bubbles)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(24)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setMouseTracking(True)
        self.setWordWrap(True)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._context_at)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.member_names: dict[str, str] = {}
        #: Follow the newest message: when the content grows or the view
        #: shrinks, stay at the bottom. Cleared when the user scrolls up.
        self.pinned = True
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._track_pin)
        bar.rangeChanged.connect(self._keep_pinned)
        # hover (or "+" on the selected message): six reactions and "more"
        self.reactions = QuickReactions(self.viewport())
        self.reactions.picked.connect(self._quick_react)
        self.reactions.more_requested.connect(self._quick_more)
        self.reactions.dismissed.connect(lambda: self.setFocus(Qt.FocusReason.OtherFocusReason))
        bar.valueChanged.connect(lambda _value: self._hide_reactions())
        model.modelReset.connect(self._hide_reactions)
        model.rowsRemoved.connect(self._hide_reactions)
        model.dataChanged.connect(self._rows_changed)
        self.bubbles.images.changed.connect(self._picture_changed)
        # one timer for every countdown on screen (never one per row)
        self.countdown = QTimer(self)
        self.countdown.setInterval(COUNTDOWN_MS)
        self.countdown.timeout.connect(self.tick_countdowns)
        self.countdown.start()

    # -- attachments and countdowns ---------------------------------------------------------

    def tick_countdowns(self) -> None:
        """Repaint the rows (their countdowns are painted from the clock)."""
        if self.message_model.has_timers():
            self.viewport().update()

    def _picture_changed(self, message_id: int) -> None:
        row = self.message_model.row_of(message_id)
        if row >= 0:
            index = self.message_model.index(row)
            self._rows_changed(index, index)
            self.viewport().update(self.visualRect(index))

    def _rows_changed(self, top: QModelIndex, bottom: QModelIndex, *_: Any) -> None:
        """A row whose height changed (a card gained buttons, an image fell back): relayout."""
        for row in range(top.row(), bottom.row() + 1):
            if self.bubbles.height_changed(self.message_model.index(row)):
                self.scheduleDelayedItemsLayout()
                return

    def default_attachment_action(self, view: MessageView) -> str | None:
        """What Enter does on a file message: view or open it, download, retry."""
        attachment = view.attachment
        if attachment is None or view.message.deleted:
            return None
        if attachment.readable:
            broken = self.bubbles.images.broken(view.id)
            return "view" if attachment.is_image and not broken else "open"
        return {
            TransferState.AVAILABLE: "download",
            TransferState.FAILED: "retry",
            TransferState.UPLOAD_FAILED: "retry",
        }.get(attachment.state)

    # -- quick reactions -------------------------------------------------------------------

    def _reactable(self, index: QModelIndex | QPersistentModelIndex) -> MessageView | None:
        view = index.data(ViewRole) if index.isValid() else None
        if not isinstance(view, MessageView):
            return None
        if view.message.kind is MessageKind.SYSTEM or view.message.deleted:
            return None
        return view

    def show_reactions(self, index: QModelIndex) -> bool:
        """Show the quick reactions bar beside the message at ``index``."""
        row = self.bubbles.layout_for(index) if self._reactable(index) else None
        if row is None or row.bubble is None:
            self.reactions.hide_soon()
            return False
        bubble = row.bubble.translated(QPointF(self.visualRect(index).topLeft())).toRect()
        if self.reactions.isVisible() and self.reactions.index == QPersistentModelIndex(index):
            self.reactions.keep()
            return True
        self.reactions.show_for(QPersistentModelIndex(index), bubble, row.own)
        return True

    def _hide_reactions(self) -> None:
        if self.reactions.isVisible():
            self.reactions.close_bar()

    def _quick_react(self, index: QPersistentModelIndex, emoji: str) -> None:
        view = self._reactable(index)
        if view is not None:
            mine = any(r.emoji == emoji and r.mine for r in view.reactions)
            self.react_requested.emit(view, emoji, mine)

    def _quick_more(self, index: QPersistentModelIndex) -> None:
        view = self._reactable(index)
        if view is not None:
            self.react_picker_requested.emit(view)

    def viewportEvent(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Leave:
            self.reactions.hide_soon()
        return super().viewportEvent(event)

    def _track_pin(self, value: int) -> None:
        self.pinned = value >= self.verticalScrollBar().maximum() - 8

    def _keep_pinned(self, _minimum: int, maximum: int) -> None:
        if self.pinned:
            self.verticalScrollBar().setValue(maximum)

    def current_view(self) -> MessageView | None:
        view = self.currentIndex().data(ViewRole)
        return view if isinstance(view, MessageView) else None

    def at_bottom(self) -> bool:
        bar = self.verticalScrollBar()
        return bar.value() >= bar.maximum() - 8

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        index = self.indexAt(event.position().toPoint())
        if index.isValid() and event.button() == Qt.MouseButton.LeftButton:
            rect = self.visualRect(index)
            pos = QPointF(event.position()) - QPointF(rect.topLeft())
            kind, value = self.bubbles.hit(index, pos)
            view = index.data(ViewRole)
            if kind == "link" and isinstance(value, str):
                QDesktopServices.openUrl(QUrl(value))
                return
            if kind == "quote" and isinstance(view, MessageView):
                self.quote_clicked.emit(view)
                return
            if kind == "reaction" and isinstance(value, ReactionSummary):
                self.react_requested.emit(view, value.emoji, value.mine)
                return
            if kind == "retry" and isinstance(view, MessageView):
                self.retry_requested.emit(view)
                return
            if kind == "attachment" and isinstance(view, MessageView) and isinstance(value, str):
                self.attachment_requested.emit(view, value)
                return
        super().mouseReleaseEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        index = self.indexAt(event.position().toPoint())
        shape = Qt.CursorShape.ArrowCursor
        if index.isValid():
            rect = self.visualRect(index)
            kind, _ = self.bubbles.hit(index, QPointF(event.position()) - QPointF(rect.topLeft()))
            if kind in ("link", "quote", "reaction", "retry", "attachment"):
                shape = Qt.CursorShape.PointingHandCursor
        if event.buttons() == Qt.MouseButton.NoButton and not self.reactions.has_focus():
            self.show_reactions(index)
        self.viewport().setCursor(shape)
        super().mouseMoveEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        view = self.current_view()
        key = event.key()
        mods = event.modifiers()
        if view is not None and view.message.kind is not MessageKind.SYSTEM:
            plain = not mods & ~Qt.KeyboardModifier.KeypadModifier
            if event.text() == "+" and not view.message.deleted:
                if self.show_reactions(self.currentIndex()):
                    self.reactions.focus_first()
                return
            if key == Qt.Key.Key_R and plain and not view.message.deleted:
                self.reply_requested.emit(view)
                return
            if key == Qt.Key.Key_E and plain and _own_editable(view):
                self.edit_requested.emit(view)
                return
            if key == Qt.Key.Key_Delete and _own_deletable(view):
                self.delete_requested.emit(view)
                return
            if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and plain:
                action = self.default_attachment_action(view)
                if action is not None:
                    self.attachment_requested.emit(view, action)
                    return
            if event.matches(QKeySequence.StandardKey.Copy):
                copy_text(view)
                return
            if key == Qt.Key.Key_Menu or (
                key == Qt.Key.Key_F10 and mods & Qt.KeyboardModifier.ShiftModifier
            ):
                rect = self.visualRect(self.currentIndex())
                self.menu_requested.emit(view, rect.center())
                return
        super().keyPressEvent(event)

    def _context_at(self, pos: QPoint) -> None:
        index = self.indexAt(pos)
        view = index.data(ViewRole)
        if isinstance(view, MessageView):
            self.setCurrentIndex(index)
            self.menu_requested.emit(view, pos)


def copy_text(view: MessageView) -> None:
    clipboard = QGuiApplication.clipboard()
    clipboard.setText(view.message.body or "")


def _own_deletable(view: MessageView) -> bool:
    m = view.message
    return m.outgoing and not m.deleted and m.kind is not MessageKind.SYSTEM


def _own_editable(view: MessageView) -> bool:
    """Own text can be edited (a file message's caption cannot)."""
    return _own_deletable(view) and view.message.kind is not MessageKind.FILE


def _safe_name(name: str) -> str:
    """A file name from the network as a suggestion for the save dialog (never a path)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].strip().lstrip(".")
    cleaned = "".join(ch for ch in base if ch.isprintable() and ch not in '<>:"|?*')
    return cleaned[:120] or "file"


class ConversationHeader(QFrame):
    """56 px: back (narrow), avatar, name, subtitle or typing, actions."""

    back_requested = Signal()
    search_requested = Signal()
    details_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ConversationHeader")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setFixedHeight(60)
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 8, 12, 8)
        row.setSpacing(10)
        self.back = QToolButton(self)
        self.back.setIcon(themed_icon("back"))
        self.back.setIconSize(QSize(20, 20))
        self.back.setAccessibleName("Back to conversations")
        self.back.setToolTip("Back (Esc)")
        self.back.clicked.connect(self.back_requested)
        self.back.hide()
        row.addWidget(self.back)
        self.avatar = Avatar("", "", 36, self)
        row.addWidget(self.avatar)
        texts = QVBoxLayout()
        texts.setSpacing(0)
        name_row = QHBoxLayout()
        name_row.setSpacing(6)
        self.name = QLabel(self)
        self.name.setProperty("class", "subtitle")
        self.name.setTextFormat(Qt.TextFormat.PlainText)
        name_row.addWidget(self.name)
        self.verified = QLabel(self)
        self.verified.setPixmap(verified_icon(14).pixmap(14, 14))
        self.verified.setAccessibleName("Verified")
        self.verified.setToolTip("You verified this contact's safety number")
        self.verified.hide()
        name_row.addWidget(self.verified)
        name_row.addStretch(1)
        texts.addLayout(name_row)
        self.subtitle = QLabel(self)
        self.subtitle.setProperty("class", "caption")
        self.subtitle.setTextFormat(Qt.TextFormat.PlainText)
        texts.addWidget(self.subtitle)
        row.addLayout(texts, 1)
        self.timer = TimerButton(self)
        row.addWidget(self.timer)
        self.search = QToolButton(self)
        self.search.setIcon(themed_icon("search"))
        self.search.setIconSize(QSize(20, 20))
        self.search.setFixedSize(36, 36)
        self.search.setAccessibleName("Search in this conversation")
        self.search.setToolTip("Search (Ctrl+F)")
        self.search.clicked.connect(self.search_requested)
        row.addWidget(self.search)
        self.details = QToolButton(self)
        self.details.setIcon(themed_icon("info"))
        self.details.setIconSize(QSize(20, 20))
        self.details.setFixedSize(36, 36)
        self.details.setAccessibleName("Conversation details")
        self.details.setToolTip("Details")
        self.details.clicked.connect(self.details_requested)
        row.addWidget(self.details)
        self._base_subtitle = ""
        self._typing_names: list[str] = []

    def set_view(self, view: ConversationView, *, verified: bool = False) -> None:
        self.name.setText(view.name)
        self.avatar.set_identity(view.name, avatar_key(view))
        self.verified.setVisible(verified)
        self.timer.set_seconds(view.conversation.disappearing_seconds)
        self.timer.setVisible(view.active and not view.blocked)
        if view.conversation.kind is ConversationKind.GROUP:
            count = len(view.members)
            text = f"{count} member" + ("" if count == 1 else "s")
        else:
            text = "Verified" if verified else ""
        if view.muted:
            text = f"{text} · Muted" if text else "Muted"
        if not view.active:
            text = "You are no longer a member"
        if view.blocked:
            text = "Blocked"
        self._base_subtitle = text
        self._show_subtitle()

    def set_typing(self, names: list[str]) -> None:
        self._typing_names = names
        self._show_subtitle()

    def subtitle_text(self) -> str:
        return self.subtitle.text()

    def _show_subtitle(self) -> None:
        names = self._typing_names
        if names:
            if len(names) == 1:
                text = f"{names[0]} is typing…"
            elif len(names) == 2:
                text = f"{names[0]} and {names[1]} are typing…"
            else:
                text = "Several people are typing…"
            self.subtitle.setText(text)
            self.subtitle.setStyleSheet(f"color: {theme.colors().accent.name()};")
        else:
            self.subtitle.setText(self._base_subtitle)
            self.subtitle.setStyleSheet("")
        self.subtitle.setVisible(bool(self.subtitle.text()))


class ConversationPane(QWidget):
    """Header, timeline and composer of the open conversation."""

    back_requested = Signal()
    details_requested = Signal(int)
    search_requested = Signal(int)
    react_picker_requested = Signal(object)

    def __init__(self, client: MessengerClient, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        #: The message menu open now (popped up, not exec'd), else None.
        self.open_menu: QMenu | None = None
        self._last_menu: QMenu | None = None
        self._client = client
        self.model = MessageListModel(client, self)
        self.view: ConversationView | None = None
        self.verified: set[str] = set()
        #: Why this device can no longer send (it was replaced or removed), else None.
        self.stopped_reason: str | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.header = ConversationHeader(self)
        self.header.back_requested.connect(self.back_requested)
        self.header.details_requested.connect(self._details)
        self.header.search_requested.connect(self._search)
        self.header.timer.timer_chosen.connect(self.set_timer)
        layout.addWidget(self.header)
        self.restart_bar = RestartBar(self)
        self.restart_bar.restart_requested.connect(self.restart)
        layout.addWidget(self.restart_bar)
        self.timeline = Timeline(self.model, self)
        self.model.prepare = self.timeline.bubbles.prepare
        self.timeline.bubbles.images.loader = self.inline_bytes
        #: The image viewer while it is open; the save dialog while it is open.
        self.viewer: ImageViewer | None = None
        self.save_dialog: QFileDialog | None = None
        layout.addWidget(self.timeline, 1)
        self.empty = QLabel("No messages yet. Say hello! Messages are end-to-end encrypted.", self)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setProperty("class", "muted")
        self.empty.setWordWrap(True)
        layout.addWidget(self.empty, 1)
        self.empty.hide()
        self.composer = Composer(client, self)
        self.composer.sent.connect(self._after_send)
        self.composer.edit_last_requested.connect(self.edit_last)
        layout.addWidget(self.composer)

        t = self.timeline
        t.reply_requested.connect(self.composer.start_reply)
        t.edit_requested.connect(self.composer.start_edit)
        t.delete_requested.connect(self.delete_message)
        t.react_requested.connect(self._toggle_reaction)
        t.retry_requested.connect(self.retry)
        t.quote_clicked.connect(self.jump_to_quote)
        t.menu_requested.connect(self._show_menu)
        t.react_picker_requested.connect(self.react_picker_requested)
        t.attachment_requested.connect(self.attachment_action)
        t.verticalScrollBar().valueChanged.connect(self._scrolled)
        self.setAcceptDrops(True)
        self.drop_overlay = DropOverlay(self)
        self.model.loaded.connect(self._loaded)
        self.model.rowsAboutToBeInserted.connect(self._before_insert)
        self.model.rowsInserted.connect(self._after_insert)
        self.model.modelReset.connect(self._update_empty)
        self.model.highlight_row.connect(self._scroll_to_row)
        self.model.older_loaded.connect(self._keep_anchor)
        self._anchor: tuple[int, int] | None = None
        #: The anchor row's index after older rows came in, and its offset.
        self._prepended: tuple[int, int] | None = None
        self._stick_pending = False
        self._typing: dict[str, str] = {}
        self._typing_timers: dict[str, QTimer] = {}
        self._read_timer = QTimer(self)
        self._read_timer.setSingleShot(True)
        self._read_timer.timeout.connect(self._mark_read)
        self._unhighlight = QTimer(self)
        self._unhighlight.setSingleShot(True)
        self._unhighlight.timeout.connect(lambda: self.model.highlight(None))
        self.last_read_request: int | None = None

    # -- opening ---------------------------------------------------------------------------

    @property
    def _stick(self) -> bool:
        return self.timeline.pinned

    @_stick.setter
    def _stick(self, value: bool) -> None:
        self.timeline.pinned = value

    @property
    def conversation_id(self) -> int | None:
        return self.view.id if self.view is not None else None

    async def open(self, view: ConversationView, message_id: int | None = None) -> None:
        """Show ``view``'s conversation at its newest message (or at ``message_id``)."""
        switching = self.view is None or self.view.id != view.id
        self.set_view(view)
        if switching:
            self.composer.set_conversation(view.id, view.draft)
            self._clear_typing()
        is_group = view.conversation.kind is ConversationKind.GROUP
        self.timeline.bubbles.group_chat = is_group
        self.timeline.member_names = {m.account_id: m.name for m in view.members}
        self._stick = message_id is None
        if message_id is None:
            stale = self.model.conversation_id != view.id or self.model.has_newer
            if switching or stale:
                await self.model.load(view.id, is_group=is_group)
            else:
                self.timeline.scrollToBottom()
        else:
            row = self.model.row_of(message_id) if not switching else -1
            if row < 0:
                await self.model.load_around(view.id, message_id, is_group=is_group)
            else:
                self.model.highlight(message_id)
            self._unhighlight.start(HIGHLIGHT_MS)

    def set_view(self, view: ConversationView) -> None:
        self.view = view
        peer = view.conversation.peer_account_id
        verified = peer is not None and peer in self.verified
        self.header.set_view(view, verified=verified)
        self.restart_bar.set_view(view)
        can_send = (
            view.active and not view.blocked and not view.stuck and self.stopped_reason is None
        )
        reason = self.stopped_reason or (
            "Start the conversation again to send messages here."
            if view.stuck and view.active
            else "You can't send messages here."
            if not can_send
            else ""
        )
        self.composer.set_enabled_for(can_send, reason)

    def stop_sending(self, reason: str) -> None:
        """This device stopped for good (replaced, removed): the composer says why."""
        self.stopped_reason = reason
        self.composer.set_enabled_for(False, reason)

    def close_conversation(self) -> None:
        self.composer.set_conversation(None)
        self.view = None
        self.model.clear()

    def _loaded(self, conversation_id: int) -> None:
        self._update_empty()
        if self._stick:
            self.timeline.scrollToBottom()
            QTimer.singleShot(0, self.timeline.scrollToBottom)
            self._schedule_read()

    def _update_empty(self) -> None:
        empty = self.model.rowCount() == 0 and self.view is not None
        self.empty.setVisible(empty)
        self.timeline.setVisible(not empty)

    # -- scrolling -------------------------------------------------------------------------

    def _scrolled(self, value: int) -> None:
        near_top = value < NEAR_TOP_PX
        self.model.set_near_top(near_top)
        if near_top and self.model.canFetchMore(QModelIndex()):
            self.model.fetchMore(QModelIndex())
        bar = self.timeline.verticalScrollBar()
        if value >= bar.maximum() - 8:
            self._stick = True
            if self.model.has_newer and not self.model.loading:
                tasks.spawn(self.model.fetch_newer(), on_error=report_to(self))
            self._schedule_read()
        else:
            self._stick = False

    def _before_insert(self, parent: QModelIndex, first: int, last: int) -> None:
        if first == 0 and self.model.rowCount() > 0:
            index = self.timeline.indexAt(QPoint(4, 4))
            if not index.isValid():
                index = self.model.index(0)
            self._anchor = (index.row(), self.timeline.visualRect(index).top())
        else:
            self._anchor = None
            self._stick = self.timeline.at_bottom() or self._stick

    def _after_insert(self, parent: QModelIndex, first: int, last: int) -> None:
        self._update_empty()
        if first == 0 and self._anchor is not None:
            # Older rows came in above: the anchor row is put back in place once
            # the model has also trimmed its newest end (``older_loaded``), so
            # that the view lays its rows out once per page, not twice.
            row, offset = self._anchor
            self._anchor = None
            self._prepended = (row + last - first + 1, offset)
        elif self._stick:
            # once per burst, after Qt has laid the new rows out
            if not self._stick_pending:
                self._stick_pending = True
                QTimer.singleShot(0, self._stick_to_bottom)
            self._schedule_read()

    def _keep_anchor(self, _count: int) -> None:
        """After a page of older rows: the row that was at the top stays where it was."""
        if self._prepended is None:
            return
        row, offset = self._prepended
        self._prepended = None
        self.timeline.doItemsLayout()
        rect = self.timeline.visualRect(self.model.index(row))
        bar = self.timeline.verticalScrollBar()
        bar.setValue(bar.value() + rect.top() - offset)

    def _stick_to_bottom(self) -> None:
        self._stick_pending = False
        if self._stick:
            self.timeline.scrollToBottom()

    def _scroll_to_row(self, row: int) -> None:
        index = self.model.index(row)
        self.timeline.setCurrentIndex(index)
        self.timeline.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)
        QTimer.singleShot(
            0,
            lambda: self.timeline.scrollTo(
                self.model.index(row), QAbstractItemView.ScrollHint.PositionAtCenter
            ),
        )

    def _after_send(self) -> None:
        self._stick = True
        if self.model.has_newer and self.view is not None:
            tasks.spawn(
                self.model.load(self.view.id, is_group=self.model.is_group),
                on_error=report_to(self),
            )
        self.timeline.scrollToBottom()

    # -- read markers ----------------------------------------------------------------------

    def _schedule_read(self) -> None:
        self._read_timer.start(250)

    def _mark_read(self) -> None:
        view = self.view
        if view is None or not self.isVisible() or not view.unread:
            return
        window = self.window()
        if not window.isActiveWindow() and QGuiApplication.platformName() != "offscreen":
            return
        if not self.timeline.at_bottom() or self.model.has_newer:
            return
        self.last_read_request = view.id
        tasks.spawn(self._client.mark_read(view.id), on_error=report_to(self))

    def window_activated(self) -> None:
        self._schedule_read()

    # -- typing ----------------------------------------------------------------------------

    def set_typing(self, account_id: str, active: bool) -> None:
        if self.view is None:
            return
        if active:
            name = next(
                (m.name for m in self.view.members if m.account_id == account_id),
                account_id[:8],
            )
            self._typing[account_id] = name
            timer = self._typing_timers.get(account_id)
            if timer is None:
                timer = QTimer(self)
                timer.setSingleShot(True)
                timer.timeout.connect(lambda a=account_id: self.set_typing(a, False))
                self._typing_timers[account_id] = timer
            timer.start(TYPING_TIMEOUT_MS)
        else:
            self._typing.pop(account_id, None)
            timer = self._typing_timers.pop(account_id, None)
            if timer is not None:
                timer.stop()
                timer.deleteLater()
        self.header.set_typing(list(self._typing.values()))

    def _clear_typing(self) -> None:
        for timer in self._typing_timers.values():
            timer.stop()
            timer.deleteLater()
        self._typing_timers.clear()
        self._typing.clear()
        self.header.set_typing([])

    # -- actions ---------------------------------------------------------------------------

    def _details(self) -> None:
        if self.view is not None:
            self.details_requested.emit(self.view.id)

    def _search(self) -> None:
        if self.view is not None:
            self.search_requested.emit(self.view.id)

    def edit_last(self) -> None:
        for view in reversed(self.model.views()):
            if _own_editable(view):
                self.composer.start_edit(view)
                return

    def delete_message(self, view: MessageView) -> None:
        box = QMessageBox(self)
        box.setWindowTitle("Delete message")
        box.setText("Delete this message for everyone?")
        box.setInformativeText("The others in this conversation will see that it was deleted.")
        box.setStandardButtons(QMessageBox.StandardButton.Cancel | QMessageBox.StandardButton.Yes)
        yes = box.button(QMessageBox.StandardButton.Yes)
        yes.setText("Delete")
        yes.setProperty("class", "danger")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.finished.connect(
            lambda result: (
                self._confirmed_delete(view) if result == QMessageBox.StandardButton.Yes else None
            )
        )
        self.delete_box = box
        box.open()

    def _confirmed_delete(self, view: MessageView) -> None:
        tasks.spawn(
            self._client.delete(view.message.conversation_id, view.id), on_error=report_to(self)
        )

    def react(self, view: MessageView, emoji: str) -> None:
        mine = any(r.emoji == emoji and r.mine for r in view.reactions)
        self._toggle_reaction(view, emoji, mine)

    def _toggle_reaction(self, view: Any, emoji: str, remove: bool) -> None:
        if isinstance(view, MessageView):
            tasks.spawn(
                self._client.react(view.message.conversation_id, view.id, emoji, remove=remove),
                on_error=report_to(self),
            )

    def retry(self, view: MessageView) -> None:
        """Send a failed message's text again (as a new message)."""
        m = view.message
        if view.attachment is not None:
            self.attachment_action(view, "retry")
            return
        text = m.body or ""
        if not text:
            return
        if view.reply_to is not None:
            tasks.spawn(
                self._client.reply(m.conversation_id, view.reply_to.id, text),
                on_error=report_to(self),
            )
        else:
            tasks.spawn(self._client.send_text(m.conversation_id, text), on_error=report_to(self))

    def jump_to_quote(self, view: MessageView) -> None:
        original = view.reply_to
        if original is None:
            return
        tasks.spawn(self.show_message(original.id), on_error=report_to(self))

    async def show_message(self, message_id: int) -> None:
        """Scroll to ``message_id`` (loading around it if needed) and highlight it."""
        self._stick = False
        row = await self.model.ensure_loaded(message_id)
        if row >= 0:
            self.model.highlight(message_id)
            self._unhighlight.start(HIGHLIGHT_MS)

    def menu_for(self, view: MessageView) -> QMenu:
        """The context menu of a message (tests trigger its actions)."""
        menu = QMenu(self)
        m = view.message
        if m.kind is MessageKind.SYSTEM:
            return menu
        if not m.deleted:
            reply = QAction("Reply", menu)
            reply.setShortcut(QKeySequence("R"))
            reply.triggered.connect(lambda: self.composer.start_reply(view))
            menu.addAction(reply)
            react = menu.addMenu("React")
            for emoji in QUICK_REACTIONS:
                action = QAction(emoji, react)
                action.triggered.connect(lambda _=False, e=emoji: self.react(view, e))
                react.addAction(action)
            more = QAction("More…", react)
            more.triggered.connect(lambda: self.react_picker_requested.emit(view))
            react.addAction(more)
            self._attachment_menu(menu, view)
            copy = QAction("Copy text", menu)
            copy.setShortcut(QKeySequence.StandardKey.Copy)
            copy.triggered.connect(lambda: copy_text(view))
            menu.addAction(copy)
        if _own_deletable(view):
            if _own_editable(view):
                edit = QAction("Edit", menu)
                edit.setShortcut(QKeySequence("E"))
                edit.triggered.connect(lambda: self.composer.start_edit(view))
                menu.addAction(edit)
            if m.status is MessageStatus.FAILED and view.attachment is None:
                retry = QAction("Retry", menu)
                retry.triggered.connect(lambda: self.retry(view))
                menu.addAction(retry)
            menu.addSeparator()
            delete = QAction("Delete for everyone", menu)
            delete.setShortcut(QKeySequence.StandardKey.Delete)
            delete.triggered.connect(lambda: self.delete_message(view))
            menu.addAction(delete)
        return menu

    def _attachment_menu(self, menu: QMenu, view: MessageView) -> None:
        """A file message's actions, as on its card (the keyboard's way to them)."""
        attachment = view.attachment
        if attachment is None:
            return
        actions: list[tuple[str, str]] = []
        state = attachment.state
        if attachment.readable:
            if attachment.is_image and not self.timeline.bubbles.images.broken(view.id):
                actions.append(("View image", "view"))
            actions += [("Open", "open"), ("Save as…", "save")]
        elif state is TransferState.AVAILABLE:
            actions.append(("Download", "download"))
        if state in (TransferState.UPLOADING, TransferState.DOWNLOADING):
            actions.append(("Cancel transfer", "cancel"))
        if state in (TransferState.FAILED, TransferState.UPLOAD_FAILED):
            actions.append(("Retry", "retry"))
        if state is TransferState.UPLOAD_FAILED:
            actions.append(("Cancel sending", "cancel"))
        for label, action in actions:
            item = QAction(label, menu)
            item.triggered.connect(lambda _=False, a=action: self.attachment_action(view, a))
            menu.addAction(item)
        if actions:
            menu.addSeparator()

    # -- attachments -------------------------------------------------------------------------

    async def inline_bytes(self, message_id: int) -> bytes:
        """An image's plaintext for the timeline and the viewer (bounded)."""
        return await self._client.attachment_bytes(message_id, max_bytes=MAX_INLINE_BYTES)

    def attachment_action(self, view: MessageView, action: str) -> None:
        """One button of a card or an image: each awaits one client coroutine."""
        mid = view.id
        client = self._client
        sink = report_to(self)
        if action == "download":
            tasks.spawn(client.download(mid), on_error=sink)
        elif action == "cancel":
            tasks.spawn(client.cancel_transfer(mid), on_error=sink)
        elif action == "retry":
            tasks.spawn(client.retry_transfer(mid), on_error=sink)
        elif action == "open":
            tasks.spawn(client.open_attachment(mid), on_done=self._open_file, on_error=sink)
        elif action == "save":
            self.save_attachment(view)
        elif action == "view":
            self.open_viewer(view)

    def _open_file(self, path: Path) -> None:
        """Hand a decrypted temporary copy to the system's viewer."""
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    def save_attachment(self, view: MessageView) -> None:
        """Ask where (a save dialog, opened without a nested loop), then save there."""
        attachment = view.attachment
        if attachment is None:
            return
        if self.save_dialog is not None:
            self.save_dialog.deleteLater()
        dialog = QFileDialog(self.window(), "Save file")
        dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        dialog.setFileMode(QFileDialog.FileMode.AnyFile)
        dialog.setDirectory(str(Path.home()))
        dialog.selectFile(_safe_name(attachment.name))
        dialog.fileSelected.connect(lambda path: self._save_to(view.id, Path(path)))
        self.save_dialog = dialog
        dialog.open()

    def _save_to(self, message_id: int, destination: Path) -> None:
        tasks.spawn(self._client.save_attachment(message_id, destination), on_error=report_to(self))

    def open_viewer(self, view: MessageView) -> None:
        """The image over the whole window (thumbnail first, then the full image)."""
        if self.viewer is not None:
            self.viewer.close_viewer()
        bubbles = self.timeline.bubbles
        picture = bubbles.images.thumbnail(view)
        viewer = ImageViewer(self.window(), view, self.inline_bytes, picture)
        viewer.save_requested.connect(self.save_attachment)
        viewer.closed.connect(self._viewer_closed)
        self.viewer = viewer
        viewer.show()
        viewer.raise_()
        viewer.setFocus(Qt.FocusReason.OtherFocusReason)

    def _viewer_closed(self) -> None:
        self.viewer = None
        self.timeline.setFocus(Qt.FocusReason.OtherFocusReason)

    def messages_expired(self, conversation_id: int, message_ids: list[int]) -> None:
        """Disappearing messages expired: their rows, layouts, pictures and viewer go."""
        for mid in message_ids:
            self.timeline.bubbles.forget(mid)
        if self.viewer is not None and self.viewer.view.id in message_ids:
            self.viewer.close_viewer()
        composer = self.composer
        quoted = composer.reply_to or composer.editing
        if quoted is not None and quoted.id in message_ids:
            composer.cancel_mode()
        self.model.messages_removed(conversation_id, message_ids)

    def restart(self, conversation_id: int) -> None:
        """The restart bar: start the stuck conversation again (the view follows)."""
        report = report_to(self)

        def failed(sentence: str) -> None:
            self.restart_bar.done()
            report(sentence)

        tasks.spawn(
            self._client.restart_conversation(conversation_id),
            on_done=lambda _none: self.restart_bar.done(),
            on_error=failed,
        )

    def set_timer(self, seconds: int) -> None:
        """The header's timer menu: the group agrees on it through a commit."""
        if self.view is not None:
            tasks.spawn(
                self._client.set_disappearing_timer(self.view.id, seconds),
                on_error=report_to(self),
            )

    # -- drag and drop -----------------------------------------------------------------------

    def _can_drop(self, event: QDragEnterEvent | QDragMoveEvent | QDropEvent) -> bool:
        mime = event.mimeData()
        return (
            mime is not None
            and carries_attachments(mime)
            and self.view is not None
            and not self.composer.field.isReadOnly()
        )

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._can_drop(event):
            event.acceptProposedAction()
            self.drop_overlay.show_over()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if self._can_drop(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self.drop_overlay.hide()
        super().dragLeaveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        self.drop_overlay.hide()
        if not self._can_drop(event):
            event.ignore()
            return
        event.acceptProposedAction()
        mime = event.mimeData()
        self.composer.add_mime(mime)

    def _menu_closed(self) -> None:
        self.open_menu = None
        self.timeline.setFocus(Qt.FocusReason.PopupFocusReason)

    def _show_menu(self, view: Any, pos: QPoint) -> None:
        # popup(), not exec(): a nested event loop under qasync would stall the
        # loop's other work (and a test driving the keyboard) until it closes.
        if isinstance(view, MessageView):
            menu = self.menu_for(view)
            if menu.isEmpty():
                menu.deleteLater()
                return
            # Kept until the next one opens (its action fires after it hides).
            if self._last_menu is not None:
                self._last_menu.deleteLater()
            self._last_menu = self.open_menu = menu
            menu.aboutToHide.connect(self._menu_closed)
            menu.popup(self.timeline.viewport().mapToGlobal(pos))
