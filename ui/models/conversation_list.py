"""The conversation list as a Qt model: most recent activity first, filterable.

A :class:`QAbstractListModel` over :class:`~messenger.client.ConversationView`
records. It refreshes from :class:`~ui.bridge.Bridge` signals (a changed
view replaces the old one and the row moves to its place); the last
message's preview is read lazily, only for rows a view asks about, and in
one batched task, so 200 conversations cost no 200 reads at start-up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)

from messenger.client import ClientError, ConversationView, MessageKind, MessageView

from .. import tasks
from .message_list import display_name

ViewRole = Qt.ItemDataRole.UserRole + 1
PreviewRole = Qt.ItemDataRole.UserRole + 2
IdRole = Qt.ItemDataRole.UserRole + 3

Index = QModelIndex | QPersistentModelIndex


class ConversationSource(Protocol):
    async def conversations(self, *, archived: bool = False) -> list[ConversationView]: ...

    async def messages(
        self,
        conversation_id: int,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> list[MessageView]: ...


def preview_text(view: MessageView | None) -> str:
    """One line for the list: "You: hi", "This message was deleted", a note."""
    if view is None:
        return ""
    message = view.message
    text = "This message was deleted" if message.deleted else " ".join((message.body or "").split())
    if view.attachment is not None and not message.deleted:
        text = f"📎 {text or display_name(view.attachment.name)}"
    if message.kind is MessageKind.SYSTEM:
        return text
    if message.outgoing:
        return f"You: {text}"
    return text


class ConversationListModel(QAbstractListModel):
    """Conversations sorted by last activity, with a name filter."""

    loaded = Signal()

    def __init__(self, client: ConversationSource, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._client = client
        self._all: list[ConversationView] = []
        self._rows: list[ConversationView] = []
        self._filter = ""
        self._archived = False
        self.previews: dict[int, MessageView | None] = {}
        self._wanted: set[int] = set()
        self._preview_task: asyncio.Task[None] | None = None
        self._typing: dict[int, set[str]] = {}
        self.is_loaded = False

    # -- Qt model API ------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        view = self._rows[index.row()]
        if role == ViewRole:
            return view
        if role == IdRole:
            return view.id
        if role == Qt.ItemDataRole.DisplayRole:
            return view.name
        if role == PreviewRole:
            return self._preview(view.id)
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return self.spoken(view)
        if role == Qt.ItemDataRole.ToolTipRole:
            return view.name
        return None

    def spoken(self, view: ConversationView) -> str:
        parts = [view.name]
        if view.unread:
            parts.append(f"{view.unread} unread")
        if view.muted:
            parts.append("muted")
        preview = self.previews.get(view.id)
        if preview is not None:
            parts.append(preview_text(preview))
        return ", ".join(parts)

    # -- reading -------------------------------------------------------------------------

    @property
    def archived(self) -> bool:
        return self._archived

    async def reload(self, archived: bool | None = None) -> None:
        """Read the conversations again (at start, after EventsDropped)."""
        if archived is not None:
            self._archived = archived
        views = await self._client.conversations(archived=self._archived)
        self.beginResetModel()
        self._all = sorted(views, key=_activity, reverse=True)
        self.previews = {k: v for k, v in self.previews.items() if v is not None}
        self._rows = self._filtered()
        self.endResetModel()
        self.is_loaded = True
        self.loaded.emit()

    def _preview(self, cid: int) -> str:
        if cid in self.previews:
            return preview_text(self.previews[cid])
        self._wanted.add(cid)
        if self._preview_task is None or self._preview_task.done():
            try:
                loop = asyncio.get_event_loop()
            except RuntimeError:
                return ""
            if not loop.is_closed():
                self._preview_task = loop.create_task(self._fetch_previews())
        return ""

    async def _fetch_previews(self) -> None:
        await asyncio.sleep(0)
        while self._wanted:
            cid = self._wanted.pop()
            if cid in self.previews:
                continue
            try:
                page = await self._client.messages(cid, limit=1)
            except ClientError:
                self.previews[cid] = None
                continue
            except Exception as error:
                tasks.report(error)
                return
            self.previews[cid] = page[-1] if page else None
            self._changed(cid)

    def _changed(self, cid: int) -> None:
        for row, view in enumerate(self._rows):
            if view.id == cid:
                index = self.index(row)
                self.dataChanged.emit(index, index)
                return

    # -- filtering -----------------------------------------------------------------------

    def set_filter(self, text: str) -> None:
        text = " ".join(text.casefold().split())
        if text == self._filter:
            return
        self._filter = text
        self.beginResetModel()
        self._rows = self._filtered()
        self.endResetModel()

    def filter_text(self) -> str:
        return self._filter

    def _filtered(self) -> list[ConversationView]:
        if not self._filter:
            return list(self._all)
        return [v for v in self._all if _matches(v, self._filter)]

    # -- updates from the bridge -------------------------------------------------------------

    def update_conversations(self, views: Sequence[ConversationView]) -> None:
        """New state of some conversations: replace, insert, move or drop rows."""
        changed = False
        by_id = {v.id: v for v in views}
        kept: list[ConversationView] = []
        for old in self._all:
            new = by_id.pop(old.id, None)
            if new is None:
                kept.append(old)
            elif new.archived == self._archived:
                kept.append(new)
                changed = True
            else:
                changed = True
        for new in by_id.values():
            if new.archived == self._archived:
                kept.append(new)
                changed = True
        if not changed:
            return
        kept.sort(key=_activity, reverse=True)
        self._all = kept
        rows = self._filtered()
        if [v.id for v in rows] == [v.id for v in self._rows]:
            self._rows = rows
            if rows:
                self.dataChanged.emit(self.index(0), self.index(len(rows) - 1))
            return
        self.layoutAboutToBeChanged.emit()
        old_ids = [v.id for v in self._rows]
        persistent = self.persistentIndexList()
        self._rows = rows
        new_pos = {v.id: i for i, v in enumerate(rows)}
        for index in persistent:
            cid = old_ids[index.row()] if 0 <= index.row() < len(old_ids) else None
            row = new_pos.get(cid) if cid is not None else None
            self.changePersistentIndex(index, self.index(row) if row is not None else QModelIndex())
        self.layoutChanged.emit()

    def messages_arrived(self, cid: int, views: Sequence[MessageView]) -> None:
        """The newest message of ``cid`` is the new preview."""
        if views:
            self.previews[cid] = views[-1]
            self._changed(cid)

    def messages_changed(self, cid: int, views: Sequence[MessageView]) -> None:
        current = self.previews.get(cid)
        for view in views:
            if current is not None and view.id == current.id:
                self.previews[cid] = view
                self._changed(cid)

    def messages_expired(self, cid: int, message_ids: Sequence[int]) -> None:
        """A preview that disappeared is read again (its text must not stay on screen)."""
        current = self.previews.get(cid)
        if current is not None and current.id in set(message_ids):
            del self.previews[cid]
            self._changed(cid)

    def set_typing(self, cid: int, account_id: str, active: bool) -> None:
        who = self._typing.setdefault(cid, set())
        if active:
            who.add(account_id)
        else:
            who.discard(account_id)
        self._changed(cid)

    def typing(self, cid: int) -> bool:
        return bool(self._typing.get(cid))

    # -- lookups -------------------------------------------------------------------------

    def view(self, cid: int) -> ConversationView | None:
        for view in self._all:
            if view.id == cid:
                return view
        return None

    def row_of(self, cid: int) -> int:
        for row, view in enumerate(self._rows):
            if view.id == cid:
                return row
        return -1

    def ids(self) -> list[int]:
        return [v.id for v in self._rows]

    def total_unread(self) -> int:
        return sum(v.unread for v in self._all if not v.muted)


def _activity(view: ConversationView) -> tuple[int, int]:
    return (view.conversation.last_activity_at, view.id)


def _matches(view: ConversationView, text: str) -> bool:
    if text in view.name.casefold():
        return True
    return any(text in m.name.casefold() for m in view.members if not m.is_me)
