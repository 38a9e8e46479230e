"""Search across every conversation (the store's full-text search).

Typing searches after a short pause; each result shows the conversation,
the sender, the time and the matching words highlighted (the client marks
them in the snippet with STX/ETX). Enter or a click emits
:attr:`SearchPanel.open_message`, so the main window jumps to the message
in context. Up/Down move through the results from the field; Esc clears,
then emits :attr:`SearchPanel.closed`.
"""

from __future__ import annotations

import datetime
import html
from dataclasses import dataclass

from PySide6.QtCore import (
    QAbstractListModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRectF,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QFontMetricsF,
    QKeyEvent,
    QPainter,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QLayout,
    QListView,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from messenger.client import ConversationView, MessengerClient, SearchHit
from ui.tasks import spawn
from ui.theme import colors
from ui.views.onboarding import error_label, label, line_edit, show_error
from ui.widgets.row_highlight import paint_row_highlight

#: The client's highlight marks in a snippet (``messenger.client`` search).
MARK_START = "\x02"
MARK_END = "\x03"
#: Wait this long after the last key before searching.
DEBOUNCE_MS = 180
ROW_HEIGHT = 84
#: The snippet shows at most this many lines.
SNIPPET_LINES = 2
HIT_ROLE = Qt.ItemDataRole.UserRole


@dataclass(frozen=True, slots=True)
class Result:
    """One hit with the names to show."""

    hit: SearchHit
    conversation: str
    sender: str

    @property
    def conversation_id(self) -> int:
        return self.hit.message.conversation_id

    @property
    def message_id(self) -> int:
        return self.hit.message.id

    def plain(self) -> str:
        return self.hit.snippet.replace(MARK_START, "").replace(MARK_END, "")

    def spoken(self) -> str:
        time = when(self.hit.message.sent_at)
        return f"{self.sender} in {self.conversation}, {time}: {self.plain()}"


def when(ms: int, now: datetime.datetime | None = None) -> str:
    """A short local time: "14:05" today, "3 Dec" this year, else "3 Dec 2024"."""
    moment = datetime.datetime.fromtimestamp(ms / 1000).astimezone()
    now = now or datetime.datetime.now().astimezone()
    if moment.date() == now.date():
        return moment.strftime("%H:%M")
    if moment.year == now.year:
        return f"{moment.day} {moment.strftime('%b')}"
    return f"{moment.day} {moment.strftime('%b %Y')}"


def snippet_html(snippet: str, accent: str) -> str:
    """The snippet as HTML, the matched words bold in the accent colour."""
    out: list[str] = []
    for index, part in enumerate(snippet.split(MARK_START)):
        if index == 0:
            out.append(html.escape(part))
            continue
        hit, _, rest = part.partition(MARK_END)
        out.append(f'<b style="color:{accent}">{html.escape(hit)}</b>{html.escape(rest)}')
    return "".join(out).replace("\n", " ")


class ResultsModel(QAbstractListModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.results: list[Result] = []

    def set_results(self, results: list[Result]) -> None:
        self.beginResetModel()
        self.results = results
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.results)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self.results):
            return None
        result = self.results[index.row()]
        if role == HIT_ROLE:
            return result
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return result.spoken()
        return None


class ResultDelegate(QStyledItemDelegate):
    """Conversation and time on the first line; sender and highlighted snippet below."""

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        return QSize(option.rect.width(), ROW_HEIGHT)

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        result = index.data(HIT_ROLE)
        if not isinstance(result, Result):
            return
        c = colors()
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        rect = QRectF(option.rect).adjusted(4, 2, -4, -2)
        state = option.state
        paint_row_highlight(painter, rect, state, c, 8)
        inner = rect.adjusted(12, 8, -12, -8)
        font = painter.font()
        small = painter.font()
        small.setPixelSize(12)
        time_text = when(result.hit.message.sent_at)
        painter.setFont(small)
        painter.setPen(c.muted)
        time_width = painter.fontMetrics().horizontalAdvance(time_text) + 2
        painter.drawText(
            QRectF(inner.right() - time_width, inner.top(), time_width, 20),
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
            time_text,
        )
        title = painter.font()
        title.setPixelSize(14)
        title.setWeight(title.Weight.DemiBold)
        painter.setFont(title)
        painter.setPen(c.text)
        name_rect = QRectF(inner.left(), inner.top(), inner.width() - time_width - 8, 20)
        name = painter.fontMetrics().elidedText(
            result.conversation, Qt.TextElideMode.ElideRight, int(name_rect.width())
        )
        painter.drawText(
            name_rect, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name
        )
        doc = QTextDocument()
        body = painter.font()
        body.setPixelSize(13)
        body.setWeight(font.weight())
        doc.setDefaultFont(body)
        doc.setDocumentMargin(0)
        sender = html.escape(result.sender)
        doc.setHtml(
            f'<span style="color:{c.muted.name()}">{sender}:</span> '
            f'<span style="color:{c.text.name()}">'
            f"{snippet_html(result.hit.snippet, c.accent.name())}</span>"
        )
        doc.setTextWidth(inner.width())
        painter.translate(inner.left(), inner.top() + 24)
        line = QFontMetricsF(body).lineSpacing()
        clip = QRectF(0, 0, inner.width(), line * SNIPPET_LINES + 1)
        painter.setClipRect(clip)
        context = QAbstractTextDocumentLayout.PaintContext()
        context.clip = clip
        doc.documentLayout().draw(painter, context)
        painter.restore()


class SearchPanel(QWidget):
    """The search field and its results."""

    open_message = Signal(int, int)  # conversation id, message id
    closed = Signal()
    searched = Signal(str)  # the query whose results are shown

    def __init__(self, client: MessengerClient, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Search")
        self._client = client
        self._generation = 0
        layout = QVBoxLayout(self)
        layout.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.setSpacing(8)
        self.field = line_edit("Search messages", "Search messages")
        self.field.setClearButtonEnabled(True)
        for clear in self.field.findChildren(QToolButton):
            clear.setAccessibleName("Clear the search")
        self.field.textChanged.connect(self._typed)
        self.field.returnPressed.connect(self.open_current)
        self.field.installEventFilter(self)
        layout.addWidget(self.field)
        self.status = label("Search all your conversations.", "muted")
        self.status.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.status.setAccessibleName("Search status")
        layout.addWidget(self.status)
        self.error = error_label()
        layout.addWidget(self.error)
        self.model = ResultsModel(self)
        self.results = QListView()
        self.results.setAccessibleName("Search results")
        self.results.setModel(self.model)
        self.results.setItemDelegate(ResultDelegate(self.results))
        self.results.setUniformItemSizes(True)
        self.results.setMouseTracking(True)
        self.results.clicked.connect(self._clicked)
        self.results.activated.connect(self._clicked)
        self.results.hide()
        layout.addWidget(self.results, 1)
        layout.addStretch(0)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.search_now)

    def focus_search(self, text: str = "") -> None:
        """Put the cursor in the field (with ``text`` if given) and select it."""
        if text:
            self.field.setText(text)
        self.field.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.field.selectAll()

    def _typed(self, _: str) -> None:
        self._timer.start()

    def search_now(self) -> None:
        self._timer.stop()
        query = self.field.text().strip()
        self._generation += 1
        generation = self._generation
        show_error(self.error, None)
        if not query:
            self.model.set_results([])
            self.results.hide()
            self.status.setText("Search all your conversations.")
            self.status.show()
            return
        spawn(
            self._search(query),
            on_done=lambda results: self._show(generation, query, results),
            on_error=lambda sentence: self._failed(generation, sentence),
        )

    async def _search(self, query: str) -> list[Result]:
        hits = await self._client.search(query, limit=100)
        if not hits:
            return []
        views: dict[int, ConversationView] = {
            v.id: v for v in await self._client.conversations(archived=False)
        }
        views.update({v.id: v for v in await self._client.conversations(archived=True)})
        results = []
        for hit in hits:
            view = views.get(hit.message.conversation_id)
            conversation = view.name if view is not None else "Conversation"
            sender = "You" if hit.message.outgoing else hit.message.sender_account_id[:8]
            if view is not None and not hit.message.outgoing:
                for member in view.members:
                    if member.account_id == hit.message.sender_account_id:
                        sender = member.name
            results.append(Result(hit, conversation, sender))
        return results

    def _show(self, generation: int, query: str, results: list[Result]) -> None:
        if generation != self._generation:
            return  # a newer search is on its way
        self.model.set_results(results)
        if results:
            self.status.hide()
            self.results.show()
            self.results.setCurrentIndex(self.model.index(0))
        else:
            self.results.hide()
            self.status.setText(f"No messages match “{query}”.")
            self.status.show()
        self.searched.emit(query)

    def _failed(self, generation: int, sentence: str) -> None:
        if generation == self._generation:
            show_error(self.error, sentence)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.field and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            key = event.key()
            if key in (Qt.Key.Key_Down, Qt.Key.Key_Up) and self.model.results:
                row = self.results.currentIndex().row()
                step = 1 if key == Qt.Key.Key_Down else -1
                row = max(0, min(len(self.model.results) - 1, row + step))
                self.results.setCurrentIndex(self.model.index(row))
                return True
            if key == Qt.Key.Key_Escape:
                if self.field.text():
                    self.field.clear()
                else:
                    self.closed.emit()
                return True
        return False

    def open_current(self) -> None:
        if self._timer.isActive():
            self.search_now()
            return
        index = self.results.currentIndex()
        if index.isValid():
            self._clicked(index)

    def _clicked(self, index: QModelIndex) -> None:
        result = index.data(HIT_ROLE)
        if isinstance(result, Result):
            self.open_message.emit(result.conversation_id, result.message_id)

    def result_count(self) -> int:
        return len(self.model.results)
