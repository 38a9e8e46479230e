"""Ctrl+K: jump to a conversation by typing a few letters of its name.

The letters match in order, not necessarily side by side ("clc" finds
"Climbing club"); matches at word starts and runs of letters rank first,
then the most recently active. Up/Down move, Enter opens
(:attr:`QuickSwitcher.chosen`), Esc closes. Keyboard only, mouse welcome.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QDialog,
    QLayout,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from messenger.client import ConversationView, MessengerClient
from ui.tasks import spawn
from ui.views.group import conversation_avatar_key
from ui.views.new_conversation import avatar_icon
from ui.views.onboarding import error_label, label, line_edit, show_error

ID_ROLE = Qt.ItemDataRole.UserRole
MAX_ROWS = 50


def fuzzy_score(query: str, text: str) -> int | None:
    """How well ``query``'s letters match ``text`` in order (None: they do not).

    Higher is better: each letter scores, more at the start of a word and
    right after the previous match; an exact prefix wins outright.
    """
    needle = "".join(query.casefold().split())
    haystack = text.casefold()
    if not needle:
        return 0
    if haystack.startswith(query.casefold().strip()):
        return 10_000 - len(haystack)
    score = 0
    position = 0
    previous = -2
    for letter in needle:
        found = haystack.find(letter, position)
        if found < 0:
            return None
        score += 1
        if found == 0 or not haystack[found - 1].isalnum():
            score += 8
        if found == previous + 1:
            score += 5
        previous = found
        position = found + 1
    return score * 10 - len(haystack) // 4


class QuickSwitcher(QDialog):
    """The conversation switcher; :attr:`chosen` has the conversation id."""

    chosen = Signal(int)

    def __init__(self, client: MessengerClient, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Go to a conversation")
        self.setAccessibleName("Go to a conversation")
        self.setMinimumWidth(460)
        self._client = client
        self._views: list[ConversationView] = []
        layout = QVBoxLayout(self)
        layout.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.setSpacing(8)
        self.field = line_edit("Conversation name", "Go to a conversation…")
        self.field.textChanged.connect(self._filter)
        self.field.returnPressed.connect(self.choose_current)
        self.field.installEventFilter(self)
        layout.addWidget(self.field)
        self.list = QListWidget()
        self.list.setAccessibleName("Conversations")
        self.list.setIconSize(QSize(28, 28))
        self.list.setUniformItemSizes(True)
        self.list.setMinimumHeight(300)
        self.list.itemActivated.connect(self._activated)
        self.list.itemClicked.connect(self._activated)
        layout.addWidget(self.list, 1)
        self.empty = label("", "muted")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.hide()
        layout.addWidget(self.empty)
        self.hint = label("↑↓ to move · Enter to open · Esc to close", "caption")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.hint)
        self.error = error_label()
        layout.addWidget(self.error)
        self.loaded = False
        spawn(self._load(), on_done=self._loaded, on_error=lambda s: show_error(self.error, s))
        self.field.setFocus()

    async def _load(self) -> list[ConversationView]:
        active = await self._client.conversations()
        archived = await self._client.conversations(archived=True)
        return active + archived

    def _loaded(self, views: list[ConversationView]) -> None:
        self._views = sorted(views, key=lambda v: (v.archived, -v.conversation.last_activity_at))
        self.loaded = True
        self._filter(self.field.text())

    def _filter(self, text: str) -> None:
        scored: list[tuple[int, int, ConversationView]] = []
        for order, view in enumerate(self._views):
            score = fuzzy_score(text, view.name)
            if score is not None:
                scored.append((-score, order, view))
        scored.sort(key=lambda entry: (entry[0], entry[1]))
        self.list.clear()
        for _, _, view in scored[:MAX_ROWS]:
            text_shown = f"{view.name}  · archived" if view.archived else view.name
            if view.unread:
                text_shown = f"{text_shown}  ({view.unread})"
            item = QListWidgetItem(
                avatar_icon(view.name, conversation_avatar_key(view), 28), text_shown
            )
            item.setData(ID_ROLE, view.id)
            spoken = view.name + (f", {view.unread} unread" if view.unread else "")
            item.setData(Qt.ItemDataRole.AccessibleTextRole, spoken)
            item.setSizeHint(QSize(0, 40))
            self.list.addItem(item)
        if self.list.count():
            self.list.setCurrentRow(0)
        has_rows = self.list.count() > 0
        self.list.setVisible(has_rows)
        self.empty.setVisible(not has_rows and self.loaded)
        if not self._views:
            self.empty.setText("No conversations yet.")
        else:
            self.empty.setText(f"No conversation matches “{text.strip()}”.")

    def names(self) -> list[str]:
        return [self.list.item(row).text() for row in range(self.list.count())]

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.field and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            if event.key() in (Qt.Key.Key_Down, Qt.Key.Key_Up) and self.list.count():
                step = 1 if event.key() == Qt.Key.Key_Down else -1
                row = (self.list.currentRow() + step) % self.list.count()
                self.list.setCurrentRow(row)
                return True
        return False

    def choose_current(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self._activated(item)

    def _activated(self, item: QListWidgetItem) -> None:
        self.chosen.emit(int(item.data(ID_ROLE)))
        self.accept()
