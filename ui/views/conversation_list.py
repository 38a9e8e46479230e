"""The left pane: own avatar, search field, new-conversation button, the list.

ui-design.md, "Conversation list row": 72 px; a 44 px round avatar; name
(semibold) and time (small, muted) on the first line; the last message's
preview (one line, muted, "You: " for own) and an unread badge on the
second; muted conversations show a muted glyph and a grey badge; the
selected row is tinted, hover is subtler. The context menu mutes,
archives and opens details; each action awaits one client coroutine and
the row refreshes from the event that comes back.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QPointF,
    QRectF,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QColor,
    QFont,
    QFontMetricsF,
    QKeyEvent,
    QPainter,
    QPainterPath,
    QPen,
)
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QMenu,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from messenger.client import ConversationKind, ConversationView, MessengerClient

from .. import tasks, theme
from ..models.conversation_list import ConversationListModel, PreviewRole, ViewRole
from ..models.message_list import local_time
from ..widgets.avatar import Avatar, paint_avatar
from ..widgets.badge import badge_width, paint_badge
from ..widgets.icons import themed_icon
from ..widgets.row_highlight import paint_row_highlight
from .toast import report_to

ROW_H = 72
AVATAR = 44

Index = QModelIndex | QPersistentModelIndex

EMPTY_TEXT = "No conversations yet.\nAdd a contact by their address or invite link."


def list_time(ms: int, now: dt.datetime | None = None) -> str:
    """ "10:32" today, "Mon" this week, "3 Dec" this year, else "3 Dec 2024"."""
    when = local_time(ms)
    now = now or dt.datetime.now().astimezone()
    if when.date() == now.date():
        return when.strftime("%H:%M")
    if (now.date() - when.date()).days < 7:
        return when.strftime("%a")
    text = f"{when.day} {when.strftime('%b')}"
    return text if when.year == now.year else f"{text} {when.year}"


class ConversationRowDelegate(QStyledItemDelegate):
    """Paints one conversation row."""

    def __init__(self, model: ConversationListModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._model = model
        self.f_name = theme.font(theme.FONT_PX, QFont.Weight.DemiBold)
        self.f_time = theme.font(theme.CAPTION_PX)
        self.f_preview = theme.font(theme.PREVIEW_PX)
        self.f_typing = theme.font(theme.PREVIEW_PX)
        self.f_typing.setItalic(True)
        self.m_name = QFontMetricsF(self.f_name)
        self.m_time = QFontMetricsF(self.f_time)
        self.m_preview = QFontMetricsF(self.f_preview)

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(260, ROW_H)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        view = index.data(ViewRole)
        if not isinstance(view, ConversationView):
            return
        c = theme.colors()
        rect = QRectF(option.rect).adjusted(8, 2, -8, -2)
        state = option.state
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        paint_row_highlight(painter, rect, state, c, 10)
        if state & QStyle.StateFlag.State_HasFocus and self._focus_visible(option):
            painter.setPen(QPen(c.accent, 1.5))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(rect.adjusted(1, 1, -1, -1), 10, 10)
        avatar = QRectF(rect.left() + 10, rect.center().y() - AVATAR / 2, AVATAR, AVATAR)
        paint_avatar(painter, avatar, view.name, _avatar_key(view))
        left = avatar.right() + 12
        right = rect.right() - 12
        top = rect.top() + 14
        # first line: name ... time
        activity = view.conversation.last_activity_at
        when = list_time(activity) if activity else ""
        time_w = self.m_time.horizontalAdvance(when)
        painter.setFont(self.f_time)
        painter.setPen(c.accent if view.unread and not view.muted else c.muted)
        painter.drawText(
            QRectF(right - time_w, top, time_w, 20),
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
            when,
        )
        name_right = right - time_w - 8
        glyph_w = 0.0
        if view.muted:
            glyph_w = 18.0
        name_w = name_right - left - glyph_w
        painter.setFont(self.f_name)
        painter.setPen(c.text)
        name = self.m_name.elidedText(view.name, Qt.TextElideMode.ElideRight, name_w)
        painter.drawText(QRectF(left, top, name_w, 20), Qt.AlignmentFlag.AlignVCenter, name)
        if view.muted:
            nx = left + self.m_name.horizontalAdvance(name) + 6
            _paint_muted(painter, QPointF(nx + 6, top + 10), c.muted)
        # second line: preview ... badge
        top2 = top + 22
        badge_right = right
        preview_right = right
        if view.unread:
            bw = badge_width(view.unread)
            paint_badge(painter, badge_right, top2 + 10, view.unread, muted=view.muted)
            preview_right = right - bw - 8
        typing = self._model.typing(view.id)
        if typing:
            painter.setFont(self.f_typing)
            painter.setPen(c.accent)
            text = "typing…"
        else:
            painter.setFont(self.f_preview)
            painter.setPen(c.muted)
            text = index.data(PreviewRole) or ""
            if not view.active:
                text = text or "You left this conversation"
            if view.blocked:
                text = "Blocked"
        text = self.m_preview.elidedText(
            text, Qt.TextElideMode.ElideRight, max(0.0, preview_right - left)
        )
        painter.drawText(
            QRectF(left, top2, preview_right - left, 20), Qt.AlignmentFlag.AlignVCenter, text
        )
        painter.restore()

    def _focus_visible(self, option: QStyleOptionViewItem) -> bool:
        widget = option.widget
        return bool(widget is not None and widget.hasFocus())


def _paint_muted(painter: QPainter, center: QPointF, color: QColor) -> None:
    """A small speaker with a slash."""
    painter.save()
    pen = QPen(color, 1.3)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    painter.setPen(pen)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    x, y = center.x(), center.y()
    path = QPainterPath()
    path.moveTo(x - 5, y - 2)
    path.lineTo(x - 3, y - 2)
    path.lineTo(x, y - 5)
    path.lineTo(x, y + 5)
    path.lineTo(x - 3, y + 2)
    path.lineTo(x - 5, y + 2)
    path.closeSubpath()
    painter.drawPath(path)
    painter.drawLine(QPointF(x - 6, y - 6), QPointF(x + 5, y + 6))
    painter.restore()


def _avatar_key(view: ConversationView) -> str:
    conversation = view.conversation
    if conversation.kind is ConversationKind.DIRECT and conversation.peer_account_id:
        return conversation.peer_account_id
    return conversation.group_id.hex()


def avatar_key(view: ConversationView) -> str:
    """The colour key of a conversation's avatar (the peer, or the group)."""
    return _avatar_key(view)


class _ListView(QListView):
    """The list; Enter opens the current row."""

    activated_row = Signal(int)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            index = self.currentIndex()
            if index.isValid():
                self.activated_row.emit(index.row())
                return
        super().keyPressEvent(event)


class ConversationListPane(QWidget):
    """The sidebar: header (own avatar, search, new) and the conversation list."""

    conversation_chosen = Signal(int)
    new_conversation_requested = Signal()
    settings_requested = Signal()
    details_requested = Signal(int)
    search_requested = Signal(str)

    def __init__(
        self,
        client: MessengerClient,
        model: ConversationListModel,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("Sidebar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._client = client
        self.model = model
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)

        header = QFrame(self)
        header.setObjectName("SidebarHeader")
        header.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        row = QHBoxLayout(header)
        row.setContentsMargins(16, 12, 12, 8)
        row.setSpacing(8)
        self.own_avatar = Avatar("Me", "me", 32, header)
        self.own_avatar.setCursor(Qt.CursorShape.PointingHandCursor)
        self.own_avatar.setToolTip("Settings (Ctrl+,)")
        self.own_avatar.installEventFilter(self)
        row.addWidget(self.own_avatar)
        self.search = QLineEdit(header)
        self.search.setPlaceholderText("Search")
        self.search.setAccessibleName("Filter conversations")
        self.search.setClearButtonEnabled(True)
        self.search.addAction(
            themed_icon("search", theme.colors().muted), QLineEdit.ActionPosition.LeadingPosition
        )
        for child in self.search.findChildren(QToolButton):
            child.setAccessibleName("Clear" if child.defaultAction() is None else "Search")
        self.search.textChanged.connect(self.model.set_filter)
        self.search.returnPressed.connect(self._search_entered)
        row.addWidget(self.search, 1)
        self.new_button = QToolButton(header)
        self.new_button.setIcon(themed_icon("compose"))
        self.new_button.setIconSize(QSize(20, 20))
        self.new_button.setFixedSize(36, 36)
        self.new_button.setToolTip("New conversation (Ctrl+N)")
        self.new_button.setAccessibleName("New conversation")
        self.new_button.clicked.connect(self.new_conversation_requested)
        row.addWidget(self.new_button)
        # The app menu (MainWindow fills it): Space/Enter open it from the keyboard.
        self.more_button = QToolButton(header)
        self.more_button.setIcon(themed_icon("more"))
        self.more_button.setIconSize(QSize(20, 20))
        self.more_button.setFixedSize(36, 36)
        self.more_button.setToolTip("Menu (Alt+M)")
        self.more_button.setAccessibleName("Menu")
        self.more_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.more_button.setStyleSheet("QToolButton::menu-indicator { image: none; width: 0; }")
        row.addWidget(self.more_button)
        layout.addWidget(header)

        self.list = _ListView(self)
        self.list.setModel(self.model)
        self.delegate = ConversationRowDelegate(self.model, self.list)
        self.list.setItemDelegate(self.delegate)
        self.list.setUniformItemSizes(True)
        self.list.setMouseTracking(True)
        self.list.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.list.setAccessibleName("Conversations")
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.list.clicked.connect(lambda index: self._choose(index.row()))
        self.list.activated_row.connect(self._choose)
        self.list.setFrameShape(QFrame.Shape.NoFrame)
        self.list.setStyleSheet("QListView { background: transparent; }")
        layout.addWidget(self.list, 1)

        self.empty = QWidget(self)
        self.empty.setObjectName("EmptyState")
        empty_layout = QVBoxLayout(self.empty)
        empty_layout.setContentsMargins(24, 32, 24, 32)
        self.empty_label = QLabel(EMPTY_TEXT, self.empty)
        self.empty_label.setWordWrap(True)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setProperty("class", "muted")
        empty_layout.addWidget(self.empty_label)
        self.empty_button = QPushButton("Start a conversation", self.empty)
        self.empty_button.setProperty("class", "primary")
        self.empty_button.setAccessibleName("Start a conversation")
        self.empty_button.clicked.connect(self.new_conversation_requested)
        empty_layout.addWidget(self.empty_button, 0, Qt.AlignmentFlag.AlignHCenter)
        empty_layout.addStretch(1)
        layout.addWidget(self.empty)

        self.archived_button = QPushButton("Archived conversations", self)
        self.archived_button.setProperty("class", "secondary")
        self.archived_button.setAccessibleName("Show archived conversations")
        self.archived_button.setCheckable(True)
        self.archived_button.toggled.connect(self._toggle_archived)
        archived_row = QHBoxLayout()
        archived_row.setContentsMargins(12, 6, 12, 10)
        archived_row.addWidget(self.archived_button)
        layout.addLayout(archived_row)

        self.model.modelReset.connect(self._update_empty)
        self.model.rowsInserted.connect(self._update_empty)
        self.model.layoutChanged.connect(self._update_empty)
        self._update_empty()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.own_avatar and event.type() == QEvent.Type.MouseButtonRelease:
            self.settings_requested.emit()
            return True
        return False

    def set_identity(self, name: str, key: str) -> None:
        self.own_avatar.set_identity(name, key)

    def _update_empty(self, *args: Any) -> None:
        empty = self.model.rowCount() == 0
        filtering = bool(self.model.filter_text())
        self.list.setVisible(not empty)
        self.empty.setVisible(empty)
        if filtering:
            self.empty_label.setText("No conversation matches. Press Enter to search messages.")
            self.empty_button.hide()
        elif self.model.archived:
            self.empty_label.setText("No archived conversations.")
            self.empty_button.hide()
        else:
            self.empty_label.setText(EMPTY_TEXT)
            self.empty_button.show()

    def _search_entered(self) -> None:
        text = self.search.text().strip()
        if text and self.model.rowCount() == 0:
            self.search_requested.emit(text)
        elif self.model.rowCount() > 0:
            self._choose(0)

    def _choose(self, row: int) -> None:
        ids = self.model.ids()
        if 0 <= row < len(ids):
            self.conversation_chosen.emit(ids[row])

    def select(self, conversation_id: int | None) -> None:
        """Show ``conversation_id`` as the selected row (no signal)."""
        if conversation_id is None:
            self.list.clearSelection()
            return
        row = self.model.row_of(conversation_id)
        if row >= 0:
            index = self.model.index(row)
            self.list.setCurrentIndex(index)
            self.list.scrollTo(index)

    def _toggle_archived(self, on: bool) -> None:
        self.archived_button.setText("Back to conversations" if on else "Archived conversations")
        tasks.spawn(self.model.reload(archived=on), on_error=report_to(self))

    def _context_menu(self, pos: QPoint) -> None:
        index = self.list.indexAt(pos)
        view = index.data(ViewRole)
        if not isinstance(view, ConversationView):
            return
        menu = self.menu_for(view)
        # popup(), not exec(): no nested event loop under qasync.
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(self.list.viewport().mapToGlobal(pos))

    def menu_for(self, view: ConversationView) -> QMenu:
        """The context menu of a row (tests trigger its actions)."""
        menu = QMenu(self)
        cid = view.id
        client = self._client
        if view.muted:
            unmute = QAction("Unmute", menu)
            unmute.triggered.connect(
                lambda: tasks.spawn(client.unmute(cid), on_error=report_to(self))
            )
            menu.addAction(unmute)
        else:
            mute = QAction("Mute", menu)
            mute.triggered.connect(lambda: tasks.spawn(client.mute(cid), on_error=report_to(self)))
            menu.addAction(mute)
        if view.archived:
            unarchive = QAction("Unarchive", menu)
            unarchive.triggered.connect(
                lambda: tasks.spawn(client.unarchive(cid), on_error=report_to(self))
            )
            menu.addAction(unarchive)
        else:
            archive = QAction("Archive", menu)
            archive.triggered.connect(
                lambda: tasks.spawn(client.archive(cid), on_error=report_to(self))
            )
            menu.addAction(archive)
        menu.addSeparator()
        details = QAction("Details", menu)
        details.triggered.connect(lambda: self.details_requested.emit(cid))
        menu.addAction(details)
        return menu
