"""One conversation's timeline as a windowed Qt model.

Architecture guide, "Windowed models": the model holds a window of a few
hundred :class:`~messenger.client.MessageView` records, never the whole
history. It opens on the newest page; when the view nears the top it asks
``canFetchMore``/``fetchMore`` (which here mean *older* messages:
``client.messages(cid, before=first_id, limit=PAGE)``); a jump to a message
(a search hit, a reply's original) loads the page around it, after which
:meth:`fetch_newer` pages forward towards the present. The window is
trimmed at the far end so it stays bounded.

Qt's own auto-fetch asks ``canFetchMore`` when the *last* row is visible;
``canFetchMore`` is true only while the view reports its top edge near
(:meth:`set_near_top`), so the two never disagree about direction.

Each row exposes ``Qt.AccessibleTextRole`` ("Alice, 10:32, delivered:
hi") and :data:`GroupingRole`, the flags the bubble delegate lays out with
(first/last of a sender's group, a day separator above). Row heights are
cached by the delegate (:mod:`ui.widgets.bubble_delegate`).
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import datetime as dt
import time
import unicodedata
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)

from messenger.client import (
    AttachmentView,
    MessageKind,
    MessageStatus,
    MessageView,
    TransferState,
    format_size,
)

from .. import tasks

ViewRole = Qt.ItemDataRole.UserRole + 1
GroupingRole = Qt.ItemDataRole.UserRole + 2
IdRole = Qt.ItemDataRole.UserRole + 3
HighlightRole = Qt.ItemDataRole.UserRole + 4

#: Messages per page read from the client (a screenful or three).
PAGE = 50
#: The most messages the window holds; the far end is trimmed beyond.
MAX_WINDOW = 600
#: Messages from one sender this close together are one group (ms).
GROUP_GAP_MS = 5 * 60 * 1000

Index = QModelIndex | QPersistentModelIndex


class MessageSource(Protocol):
    async def messages(
        self,
        conversation_id: int,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> list[MessageView]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Grouping:
    """How a row sits among its neighbours."""

    first: bool
    """First bubble of a sender's group (name shown, wider gap above)."""
    last: bool
    """Last bubble of a group (avatar, tail corner)."""
    day: bool
    """A day separator above this row."""


def local_time(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000).astimezone()


def clock_text(ms: int) -> str:
    """``10:32`` in local time."""
    t = time.localtime(ms // 1000)
    return f"{t.tm_hour:02d}:{t.tm_min:02d}"


def day_text(ms: int, today: dt.date | None = None) -> str:
    """ "Today", "Yesterday", "Mon 3 Dec" or "Mon 3 Dec 2024"."""
    day = local_time(ms).date()
    today = today or dt.datetime.now().astimezone().date()
    if day == today:
        return "Today"
    if day == today - dt.timedelta(days=1):
        return "Yesterday"
    text = f"{day.strftime('%a')} {day.day} {day.strftime('%b')}"
    return text if day.year == today.year else f"{text} {day.year}"


def status_text(view: MessageView) -> str:
    m = view.message
    if not m.outgoing:
        return ""
    return {
        MessageStatus.PENDING: "sending",
        MessageStatus.SENT: "sent",
        MessageStatus.DELIVERED: "delivered",
        MessageStatus.READ: "read",
        MessageStatus.FAILED: "not sent",
    }.get(m.status, "")


def short_duration(seconds: int) -> str:
    """A compact duration, rounded up: "45s", "59m", "1h", "6d", "2w" (3,599 s is "1h")."""
    seconds = max(0, seconds)
    units = (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))
    for i, (unit, size) in enumerate(units):
        if seconds >= size or unit == "s":
            value = -(-seconds // size)
            if i > 0 and value * size >= units[i - 1][1]:
                return f"1{units[i - 1][0]}"
            return f"{value}{unit}"
    return "0s"  # pragma: no cover - the loop always returns


def remaining_text(view: MessageView, now_ms: int) -> str | None:
    """The countdown of a disappearing message ("59m"), its timer while not counting, or None."""
    m = view.message
    if m.expires_at is not None:
        return short_duration(-(-(m.expires_at - now_ms) // 1000))
    if m.expires_after:
        return short_duration(m.expires_after)
    return None


def display_name(name: str) -> str:
    """A file name from the network as shown: no control or bidi-override characters.

    "photo\u202egpj.exe" would otherwise read as "photoexe.jpg"; a line break
    or a NUL would break the card. Each such character becomes U+FFFD.
    """
    cleaned = "".join(
        "\ufffd" if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in name
    )
    return cleaned[:255] or "file"


def transfer_text(attachment: AttachmentView) -> str:
    """Where an attachment stands, in a few words ("downloaded", "downloading 40%")."""
    state = attachment.state
    percent = 0 if attachment.size <= 0 else min(100, attachment.done * 100 // attachment.size)
    return {
        TransferState.UPLOADING: f"sending {percent}%",
        TransferState.UPLOAD_FAILED: "not sent",
        TransferState.SENT: "sent",
        TransferState.AVAILABLE: "not downloaded",
        TransferState.DOWNLOADING: f"downloading {percent}%",
        TransferState.DOWNLOADED: "downloaded",
        TransferState.FAILED: "download failed",
        TransferState.GONE: "no longer available",
    }.get(state, str(state))


def spoken_attachment(attachment: AttachmentView) -> str:
    """ "photo.jpg, image, 2.1 MB, downloaded"."""
    kind = "image" if attachment.is_image else "file"
    size = format_size(attachment.size)
    return f"{display_name(attachment.name)}, {kind}, {size}, {transfer_text(attachment)}"


def spoken_text(view: MessageView) -> str:
    """What a screen reader says for a row: "Alice, 10:32, delivered: hi"."""
    m = view.message
    if m.kind is MessageKind.SYSTEM:
        return m.body or ""
    parts = [view.sender_name, clock_text(m.sent_at)]
    status = status_text(view)
    if status:
        parts.append(status)
    if m.edited_at is not None and not m.deleted:
        parts.append("edited")
    body = "This message was deleted" if m.deleted else (m.body or "")
    if view.attachment is not None and not m.deleted:
        spoken = spoken_attachment(view.attachment)
        body = f"{spoken}. {body}" if body else spoken
    text = ", ".join(parts) + ": " + body
    if m.expires_at is not None or m.expires_after:
        text += ". Disappears"
        left = remaining_text(view, int(time.time() * 1000))
        if m.expires_at is not None and left is not None:
            text += f" in {left}"
    if view.reply_to is not None:
        text += " (in reply to a message)"
    if view.reactions:
        text += ". Reactions: " + ", ".join(f"{r.emoji} {r.count}" for r in view.reactions)
    return text


def _day(ms: int) -> int:
    """The local calendar day of ``ms`` as one comparable number (cheap)."""
    t = time.localtime(ms // 1000)
    return t.tm_year * 1000 + t.tm_yday


def _grouping_of(prev: MessageView | None, view: MessageView, nxt: MessageView | None) -> Grouping:
    day = prev is None or _day(prev.message.sent_at) != _day(view.message.sent_at)
    first = prev is None or day or not _groupable(prev, view)
    last = nxt is None or not _groupable(view, nxt)
    return Grouping(first=first, last=last, day=day)


#: Lays out rows before they are inserted (the view's delegate), a few per
#: loop tick: ``(view, grouping)`` pairs, in the order they will appear.
PrepareRows = Callable[[Sequence[tuple[MessageView, Grouping]]], Awaitable[None]]


def _groupable(a: MessageView, b: MessageView) -> bool:
    ma, mb = a.message, b.message
    if ma.kind is MessageKind.SYSTEM or mb.kind is MessageKind.SYSTEM:
        return False
    if ma.sender_account_id != mb.sender_account_id:
        return False
    if abs(mb.sent_at - ma.sent_at) > GROUP_GAP_MS:
        return False
    return _day(ma.sent_at) == _day(mb.sent_at)


class MessageListModel(QAbstractListModel):
    """A window of one conversation's messages, oldest first."""

    #: Emitted after a (re)load: ``conversation_id``.
    loaded = Signal(int)
    #: Emitted after older rows were put at the top: ``count``.
    older_loaded = Signal(int)
    #: A message to highlight briefly (jump target): ``row``.
    highlight_row = Signal(int)

    def __init__(self, client: MessageSource, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._client = client
        self.conversation_id: int | None = None
        self.is_group = False
        self._rows: list[MessageView] = []
        self._ids: list[int] = []
        self._has_older = False
        self._has_newer = False
        self._loading_older = False
        self._loading_newer = False
        self._near_top = False
        self._generation = 0
        self.highlighted: int | None = None
        self.reads = 0
        self._groupings: dict[int, tuple[tuple[int, int], Grouping]] = {}
        #: Set by the view: a page fetched on scrolling is laid out by this
        #: before it is inserted, so that inserting it costs no text layout
        #: in one go (issue 10: no UI stall over 50 ms while paging).
        self.prepare: PrepareRows | None = None

    # -- Qt model API ------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        row = index.row()
        if not index.isValid() or not 0 <= row < len(self._rows):
            return None
        view = self._rows[row]
        if role == ViewRole:
            return view
        if role == GroupingRole:
            return self.grouping(row)
        if role == IdRole:
            return view.id
        if role == Qt.ItemDataRole.DisplayRole:
            return view.message.body or ""
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return spoken_text(view)
        if role == HighlightRole:
            return view.id == self.highlighted
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def grouping(self, row: int) -> Grouping:
        """How row ``row`` sits among its neighbours (cached by their ids)."""
        view = self._rows[row]
        prev = self._rows[row - 1] if row > 0 else None
        nxt = self._rows[row + 1] if row + 1 < len(self._rows) else None
        key = (prev.id if prev is not None else 0, nxt.id if nxt is not None else 0)
        hit = self._groupings.get(view.id)
        if hit is not None and hit[0] == key:
            return hit[1]
        grouping = _grouping_of(prev, view, nxt)
        self._groupings[view.id] = (key, grouping)
        return grouping

    async def _prepare(
        self, page: Sequence[MessageView], prev: MessageView | None, nxt: MessageView | None
    ) -> None:
        """Have the view lay ``page`` out, to go between ``prev`` and ``nxt``."""
        if self.prepare is None or not page:
            return
        rows = []
        for i, view in enumerate(page):
            before = page[i - 1] if i > 0 else prev
            after = page[i + 1] if i + 1 < len(page) else nxt
            grouping = _grouping_of(before, view, after)
            key = (before.id if before is not None else 0, after.id if after is not None else 0)
            self._groupings[view.id] = (key, grouping)
            rows.append((view, grouping))
        await self.prepare(rows)

    def row_data(self, row: int) -> tuple[MessageView, Grouping] | None:
        """The view and grouping of ``row`` in one call (the delegate's fast path)."""
        if 0 <= row < len(self._rows):
            return self._rows[row], self.grouping(row)
        return None

    def canFetchMore(self, parent: Index) -> bool:
        """Older messages exist and the view's top is near (see the module doc)."""
        return (
            not parent.isValid()
            and self._near_top
            and self._has_older
            and not self._loading_older
            and self.conversation_id is not None
        )

    def fetchMore(self, parent: Index) -> None:
        if self.canFetchMore(parent):
            self._loading_older = True
            tasks.spawn(self.fetch_older())

    # -- state ---------------------------------------------------------------------------

    def set_near_top(self, near: bool) -> None:
        self._near_top = near

    @property
    def has_older(self) -> bool:
        return self._has_older

    @property
    def has_newer(self) -> bool:
        return self._has_newer

    @property
    def loading(self) -> bool:
        return self._loading_older or self._loading_newer

    def views(self) -> list[MessageView]:
        return list(self._rows)

    def view_at(self, row: int) -> MessageView | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, message_id: int) -> int:
        i = bisect.bisect_left(self._ids, message_id)
        if i < len(self._ids) and self._ids[i] == message_id:
            return i
        return -1

    def row_of_uid(self, uid: bytes) -> int:
        for row in range(len(self._rows) - 1, -1, -1):
            if self._rows[row].message.uid == uid:
                return row
        return -1

    def clear(self) -> None:
        self._generation += 1
        self.beginResetModel()
        self.conversation_id = None
        self._rows, self._ids = [], []
        self._has_older = self._has_newer = False
        self._loading_older = self._loading_newer = False
        self.endResetModel()

    # -- loading -------------------------------------------------------------------------

    async def load(self, conversation_id: int, *, is_group: bool = False) -> None:
        """Open ``conversation_id`` at its newest page."""
        self._generation += 1
        generation = self._generation
        self.reads += 1
        page = await self._client.messages(conversation_id, limit=PAGE)
        if generation != self._generation:
            return
        self._reset(conversation_id, is_group, page, has_older=len(page) >= PAGE, has_newer=False)

    async def load_around(
        self, conversation_id: int, message_id: int, *, is_group: bool = False
    ) -> int:
        """Open ``conversation_id`` with ``message_id`` in the middle; its row (or -1)."""
        self._generation += 1
        generation = self._generation
        half = PAGE // 2
        self.reads += 2
        before = await self._client.messages(conversation_id, before=message_id + 1, limit=half)
        after = await self._client.messages(conversation_id, after=message_id, limit=half)
        if generation != self._generation:
            return -1
        self._reset(
            conversation_id,
            is_group,
            [*before, *after],
            has_older=len(before) >= half,
            has_newer=len(after) >= half,
        )
        row = self.row_of(message_id)
        if row >= 0:
            self.highlight(message_id)
        return row

    def _reset(
        self,
        conversation_id: int,
        is_group: bool,
        page: Sequence[MessageView],
        *,
        has_older: bool,
        has_newer: bool,
    ) -> None:
        self.beginResetModel()
        self._groupings.clear()
        self.conversation_id = conversation_id
        self.is_group = is_group
        self._rows = list(page)
        self._ids = [v.id for v in self._rows]
        self._has_older = has_older
        self._has_newer = has_newer
        self._loading_older = self._loading_newer = False
        self.highlighted = None
        self.endResetModel()
        self.loaded.emit(conversation_id)

    async def reload(self) -> None:
        """Read the newest page again (after EventsDropped)."""
        if self.conversation_id is not None:
            await self.load(self.conversation_id, is_group=self.is_group)

    async def fetch_older(self) -> int:
        """Put the page before the first row at the top; how many rows came."""
        cid = self.conversation_id
        if cid is None or not self._has_older or not self._rows:
            self._loading_older = False
            return 0
        generation = self._generation
        self._loading_older = True
        try:
            self.reads += 1
            page = await self._client.messages(cid, before=self._ids[0], limit=PAGE)
            if generation != self._generation:
                return 0
            self._has_older = len(page) >= PAGE
            page = [v for v in page if v.id < self._ids[0]]
            await self._prepare(page, None, self._rows[0] if self._rows else None)
        finally:
            if generation == self._generation:
                self._loading_older = False
        if generation != self._generation or not self._rows:
            return 0
        page = [v for v in page if v.id < self._ids[0]]
        if not page:
            return 0
        # The old first row's grouping may change: tell the view.
        self.beginInsertRows(QModelIndex(), 0, len(page) - 1)
        self._rows[0:0] = page
        self._ids[0:0] = [v.id for v in page]
        self.endInsertRows()
        self._changed_row(len(page))
        self._trim_newer()
        self.older_loaded.emit(len(page))
        return len(page)

    async def fetch_newer(self) -> int:
        """After a jump: put the page after the last row at the bottom."""
        cid = self.conversation_id
        if cid is None or not self._has_newer or self._loading_newer or not self._rows:
            return 0
        generation = self._generation
        self._loading_newer = True
        try:
            self.reads += 1
            page = await self._client.messages(cid, after=self._ids[-1], limit=PAGE)
            if generation != self._generation:
                return 0
            self._has_newer = len(page) >= PAGE
            page = [v for v in page if v.id > self._ids[-1]]
            await self._prepare(page, self._rows[-1] if self._rows else None, None)
        finally:
            if generation == self._generation:
                self._loading_newer = False
        if generation != self._generation or not self._rows:
            return 0
        page = [v for v in page if v.id > self._ids[-1]]
        if page:
            self._append(page)
            self._trim_older()
        return len(page)

    def _trim_newer(self) -> None:
        extra = len(self._rows) - MAX_WINDOW
        if extra > 0:
            start = len(self._rows) - extra
            self.beginRemoveRows(QModelIndex(), start, len(self._rows) - 1)
            del self._rows[start:]
            del self._ids[start:]
            self.endRemoveRows()
            self._has_newer = True

    def _trim_older(self, limit: int = MAX_WINDOW) -> None:
        extra = len(self._rows) - limit
        if extra > 0:
            self.beginRemoveRows(QModelIndex(), 0, extra - 1)
            del self._rows[:extra]
            del self._ids[:extra]
            self.endRemoveRows()
            self._has_older = True

    def _append(self, page: Sequence[MessageView]) -> None:
        start = len(self._rows)
        self.beginInsertRows(QModelIndex(), start, start + len(page) - 1)
        self._rows.extend(page)
        self._ids.extend(v.id for v in page)
        self.endInsertRows()
        if start > 0:
            self._changed_row(start - 1)

    def _changed_row(self, row: int) -> None:
        if 0 <= row < len(self._rows):
            index = self.index(row)
            self.dataChanged.emit(index, index)

    # -- updates from the bridge -------------------------------------------------------------

    def messages_arrived(
        self, conversation_id: int, views: Sequence[MessageView], *, keep: int | None = None
    ) -> None:
        """New messages of the open conversation go at the bottom (one insert).

        ``keep``: the view follows the newest message, so the window may
        shrink to this many rows (older ones page back in on scrolling up);
        a burst then costs a small relayout, not one of ``MAX_WINDOW`` rows.
        """
        if conversation_id != self.conversation_id or self._has_newer:
            return
        last = self._ids[-1] if self._ids else 0
        fresh = [v for v in views if v.id > last]
        known = [v for v in views if v.id <= last]
        if known:
            self.messages_changed(conversation_id, known)
        if not fresh:
            return
        limit = MAX_WINDOW if keep is None else max(PAGE, min(keep, MAX_WINDOW))
        if len(fresh) > limit:
            # only the newest ``limit`` can stay (every older row goes below,
            # so the window stays contiguous): insert just those
            fresh = fresh[-limit:]
        self._append(fresh)
        self._trim_older(limit)

    def messages_changed(self, conversation_id: int, views: Sequence[MessageView]) -> None:
        """Edited, deleted, reacted or delivered: replace those rows."""
        if conversation_id != self.conversation_id:
            return
        for view in views:
            row = self.row_of(view.id)
            if row >= 0:
                self._rows[row] = view
                self._changed_row(row)

    def messages_removed(self, conversation_id: int, message_ids: Sequence[int]) -> None:
        """Disappearing messages expired: their rows go (each neighbour regroups)."""
        if conversation_id != self.conversation_id:
            return
        rows = sorted((r for r in map(self.row_of, message_ids) if r >= 0), reverse=True)
        for row in rows:
            self.beginRemoveRows(QModelIndex(), row, row)
            self._groupings.pop(self._ids[row], None)
            del self._rows[row]
            del self._ids[row]
            self.endRemoveRows()
            self._changed_row(row - 1)
            self._changed_row(row)
        # a reply quoting an expired message no longer shows its text
        gone = set(message_ids)
        for row, view in enumerate(self._rows):
            if view.reply_to is not None and view.reply_to.id in gone:
                self._rows[row] = dataclasses.replace(view, reply_to=None)
                self._changed_row(row)

    def transfer_progress(self, conversation_id: int, message_id: int, done: int) -> None:
        """An upload or download moved on: the row's attachment shows ``done`` bytes."""
        if conversation_id != self.conversation_id:
            return
        row = self.row_of(message_id)
        view = self._rows[row] if row >= 0 else None
        if view is None or view.attachment is None or view.attachment.done == done:
            return
        attachment = dataclasses.replace(view.attachment, done=done)
        self._rows[row] = dataclasses.replace(view, attachment=attachment)
        self._changed_row(row)

    def has_timers(self) -> bool:
        """Whether a row shows a countdown (the view then repaints now and then)."""
        return any(v.message.expires_at is not None for v in self._rows)

    def highlight(self, message_id: int | None) -> None:
        """Mark one message as highlighted (a jump target), or none."""
        old = self.row_of(self.highlighted) if self.highlighted is not None else -1
        self.highlighted = message_id
        self._changed_row(old)
        if message_id is not None:
            row = self.row_of(message_id)
            self._changed_row(row)
            if row >= 0:
                self.highlight_row.emit(row)

    async def ensure_loaded(self, message_id: int) -> int:
        """The row of ``message_id``, loading around it when it is not in the window."""
        row = self.row_of(message_id)
        if row >= 0 or self.conversation_id is None:
            return row
        return await self.load_around(self.conversation_id, message_id, is_group=self.is_group)


async def wait_idle(model: MessageListModel, timeout: float = 5.0) -> None:
    """Until the model is not loading (tests, the benchmark)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while model.loading and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.005)
