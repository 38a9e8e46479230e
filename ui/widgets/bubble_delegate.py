"""The timeline's painter: message bubbles, day pills, notes, reactions.

ui-design.md, "Timeline" and "Bubbles": own messages on the right in the
accent colour, others' on the left in a neutral surface; consecutive
messages of one sender within a few minutes form a group (name and avatar
once, 2 px apart; 10 px between groups); a day pill above the first
message of each day; time, "edited" and the delivery state inside the
bubble's bottom-right corner; a reply quote with a coloured bar at the top;
reaction chips overlapping the bottom edge; a muted outline for deleted
messages; up to three emoji alone render large without a bubble; system
notes are centred muted text. Links are shown as links and never fetched.

Every row's geometry is computed once into a :class:`RowLayout` and kept
in a bounded cache keyed by message id, checked against the view record,
its grouping and the width (architecture guide: variable-height rows
without a cache take 10-19 s for 100k messages). Paint and hit-testing use
the same layout, so what is clicked is what was drawn.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import html
import re
import time
import unicodedata
from collections.abc import Callable, Sequence

from PySide6.QtCore import (
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPointF,
    QRectF,
    QSize,
    Qt,
)
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QColor,
    QFont,
    QFontMetricsF,
    QPainter,
    QPainterPath,
    QPalette,
    QPen,
    QTextDocument,
    QTextLayout,
    QTextOption,
)
from PySide6.QtWidgets import QAbstractItemView, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from messenger.client import MessageKind, MessageStatus, MessageView, ReactionSummary

from .. import theme
from ..models.message_list import (
    Grouping,
    GroupingRole,
    HighlightRole,
    ViewRole,
    clock_text,
    day_text,
    remaining_text,
)
from . import attachment_block
from .attachment_block import AttachmentBlock, hourglass_path
from .avatar import avatar_color, paint_avatar
from .image_cache import ImageCache

Index = QModelIndex | QPersistentModelIndex

SIDE = 16
AVATAR = 28
AVATAR_GAP = 8
PAD_X = 12
PAD_Y = 8
RADIUS = 18.0
TAIL = 5.0
GAP_GROUP = 12
GAP_IN_GROUP = 2
DAY_H = 44
NAME_H = 20
QUOTE_H = 44
META_H = 16
CHIP_H = 24
CHIP_OVERLAP = 6
BIG_EMOJI_PX = 40
MAX_BUBBLE = 560
DELETED_TEXT = "This message was deleted"
#: Room for the hourglass before a countdown, and after it.
COUNTDOWN_GAP = 20
#: Rows laid out per loop tick by :meth:`BubbleDelegate.prepare` (~2 ms).
PREPARE_SLICE = 8

_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+[^\s<>\"'.,;:!?)\]}]", re.IGNORECASE)


def linkify(text: str) -> str:
    """``text`` as HTML with URLs as links (escaped; newlines kept)."""
    out: list[str] = []
    pos = 0
    for match in _URL.finditer(text):
        out.append(html.escape(text[pos : match.start()]))
        url = match.group(0)
        href = url if "://" in url else "https://" + url
        out.append(f'<a href="{html.escape(href, quote=True)}">{html.escape(url)}</a>')
        pos = match.end()
    out.append(html.escape(text[pos:]))
    return "".join(out).replace("\n", "<br>")


def has_link(text: str) -> bool:
    return _URL.search(text) is not None


def emoji_only(text: str, limit: int = 3) -> bool:
    """Whether ``text`` is 1..``limit`` emoji and nothing else (then shown large)."""
    text = text.strip()
    if not text or len(text) > 40:
        return False
    count = 0
    joined = False
    regional = 0
    for ch in text:
        code = ord(ch)
        cat = unicodedata.category(ch)
        if ch == "\u200d":
            joined = True
            continue
        if cat in ("Mn", "Me", "Sk") or 0xE0020 <= code <= 0xE007F or ch == "\ufe0f":
            continue
        if 0x1F1E6 <= code <= 0x1F1FF:
            regional += 1
            if regional % 2 == 1:
                count += 1
            continue
        if cat == "So" or (ch in "0123456789#*" and "\u20e3" in text):
            if not joined:
                count += 1
            joined = False
            continue
        return False
    return 0 < count <= limit


@dataclasses.dataclass(slots=True)
class RowLayout:
    """Where everything of one row goes, relative to the row's top-left."""

    height: int
    kind: str  # "note", "message"
    day: str | None = None
    day_rect: QRectF | None = None
    bubble: QRectF | None = None
    name_pos: QPointF | None = None
    avatar: QRectF | None = None
    quote: QRectF | None = None
    text_origin: QPointF | None = None
    doc: QTextDocument | None = None
    plain: QTextLayout | None = None
    meta_rect: QRectF | None = None
    meta_inside: bool = True
    chips: list[tuple[QRectF, ReactionSummary]] = dataclasses.field(default_factory=list)
    retry_rect: QRectF | None = None
    big_emoji: bool = False
    deleted: bool = False
    own: bool = False
    note_rect: QRectF | None = None
    #: A file message's image or file card.
    attachment: AttachmentBlock | None = None
    #: The time sits on the image (an image without a caption).
    meta_overlay: bool = False
    #: No bubble is painted (an image alone is its own bubble).
    frameless: bool = False
    grouping: Grouping = dataclasses.field(default_factory=lambda: Grouping(True, True, False))


@dataclasses.dataclass(frozen=True, slots=True)
class _Key:
    view: MessageView
    width: int
    grouping: Grouping
    group_chat: bool
    dark: bool
    #: An image attachment is drawn as an image (not as a card: none, or malformed).
    image: bool


class BubbleDelegate(QStyledItemDelegate):
    """Paints one message row; the geometry of each row is cached."""

    def __init__(self, view: QAbstractItemView, parent: QObject | None = None) -> None:
        super().__init__(parent or view)
        self._view = view
        self._cache: collections.OrderedDict[int, tuple[_Key, RowLayout]] = (
            collections.OrderedDict()
        )
        self.capacity = 2000
        self.layouts_computed = 0
        self.group_chat = False
        #: Unix ms for the countdowns (None: the wall clock).
        self.clock: Callable[[], int] | None = None
        #: Thumbnails and full images (the view gives it the client's loader).
        self.images = ImageCache(parent=self)
        self._fonts()

    def _fonts(self) -> None:
        self.f_text = theme.font(theme.FONT_PX)
        self.f_name = theme.font(13, QFont.Weight.DemiBold)
        self.f_meta = theme.font(theme.SMALL_PX)
        self.f_day = theme.font(theme.CAPTION_PX, QFont.Weight.DemiBold)
        self.f_note = theme.font(theme.CAPTION_PX)
        self.f_quote_name = theme.font(theme.CAPTION_PX, QFont.Weight.DemiBold)
        self.f_quote = theme.font(13)
        self.f_chip = theme.font(13)
        self.f_big = theme.font(BIG_EMOJI_PX)
        self.f_deleted = theme.font(theme.FONT_PX)
        self.f_deleted.setItalic(True)
        self.m_meta = QFontMetricsF(self.f_meta)
        self.m_chip = QFontMetricsF(self.f_chip)
        self.m_quote = QFontMetricsF(self.f_quote)
        self.m_day = QFontMetricsF(self.f_day)
        self.f_attachment = attachment_block.Fonts.create()

    def clear_cache(self) -> None:
        self._cache.clear()

    def height_changed(self, index: Index) -> bool:
        """Whether the row's height differs from the one last laid out (then relayout)."""
        found = self._row(index)
        if found is None:
            return False
        view, grouping = found
        old = self._cache.get(view.id)
        if old is None:
            return False
        return old[1].height != self._layout(view, grouping, self._width()).height

    def _row(self, index: Index) -> tuple[MessageView, Grouping] | None:
        model = index.model()
        fast = getattr(model, "row_data", None)
        if fast is not None:
            found = fast(index.row())
            return found if isinstance(found, tuple) else None
        view = index.data(ViewRole)
        grouping = index.data(GroupingRole)
        if isinstance(view, MessageView) and isinstance(grouping, Grouping):
            return view, grouping
        return None

    def forget(self, message_id: int) -> None:
        """Drop the layout and pictures of a message that expired (nothing of it is kept)."""
        self._cache.pop(message_id, None)
        self.images.forget(message_id)

    def now_ms(self) -> int:
        """The time countdowns are painted at (tests set :attr:`clock`)."""
        return self.clock() if self.clock is not None else int(time.time() * 1000)

    # -- geometry ------------------------------------------------------------------------

    def _width(self) -> int:
        return max(240, self._view.viewport().width())

    def layout_for(self, index: Index) -> RowLayout | None:
        model = index.model()
        fast = getattr(model, "row_data", None)
        if fast is not None:
            found = fast(index.row())
            if found is None:
                return None
            view, grouping = found
        else:
            view = index.data(ViewRole)
            grouping = index.data(GroupingRole)
        if not isinstance(view, MessageView) or not isinstance(grouping, Grouping):
            return None
        return self._layout(view, grouping, self._width())

    def _layout(self, view: MessageView, grouping: Grouping, width: int) -> RowLayout:
        """The cached layout of ``view`` with ``grouping`` at ``width``, computed on a miss."""
        dark = theme.is_dark()
        image = view.attachment is not None and attachment_block.shows_image(view, self.images)
        hit = self._cache.get(view.id)
        if hit is not None:
            old = hit[0]
            if (
                old.view is view
                and old.width == width
                and old.grouping == grouping
                and old.group_chat == self.group_chat
                and old.dark == dark
                and old.image == image
            ):
                return hit[1]
        key = _Key(view, width, grouping, self.group_chat, dark, image)
        row = self._compute(key)
        self._cache[view.id] = (key, row)
        if len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return row

    async def prepare(self, rows: Sequence[tuple[MessageView, Grouping]]) -> None:
        """Lay ``rows`` out ahead of their insertion, :data:`PREPARE_SLICE` per loop tick.

        A page of older messages then goes into the view with its heights
        known: the view's relayout reads the cache instead of laying out 50
        texts at once (issue 10: no UI stall over 50 ms while paging).
        """
        for start in range(0, len(rows), PREPARE_SLICE):
            if start:
                await asyncio.sleep(0)
            width = self._width()
            for view, grouping in rows[start : start + PREPARE_SLICE]:
                self._layout(view, grouping, width)

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        # called for every row at each relayout: the cache hit is the fast path
        width = self._width()
        model = index.model()
        fast = getattr(model, "row_data", None)
        found = fast(index.row()) if fast is not None else None
        row = self.layout_for(index) if found is None else self._layout(found[0], found[1], width)
        if row is None:
            return QSize(0, 0)
        return QSize(width, row.height)

    def _doc(
        self, text: str, font: QFont, width: float, *, rich: bool, on_accent: bool = False
    ) -> QTextDocument:
        doc = QTextDocument()
        doc.setDocumentMargin(0)
        doc.setDefaultFont(font)
        option = QTextOption()
        option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        option.setTextDirection(Qt.LayoutDirection.LayoutDirectionAuto)
        doc.setDefaultTextOption(option)
        if rich:
            c = theme.colors()
            link = c.text_on_accent if on_accent else c.link
            doc.setDefaultStyleSheet(f"a {{ color: {link.name()}; text-decoration: underline; }}")
            doc.setHtml(linkify(text))
        else:
            doc.setPlainText(text)
        doc.setTextWidth(width)
        return doc

    def _compute(self, key: _Key) -> RowLayout:
        self.layouts_computed += 1
        view, width, g = key.view, key.width, key.grouping
        m = view.message
        y = 0.0
        day_label = day_text(m.sent_at) if g.day else None
        day_rect = None
        if day_label is not None:
            tw = self.m_day.horizontalAdvance(day_label) + 24
            day_rect = QRectF((width - tw) / 2, 12, tw, 24)
            y += DAY_H
        if m.kind is MessageKind.SYSTEM:
            y += 4
            note = self._doc(m.body or "", self.f_note, min(width - 2 * SIDE - 48, 480), rich=False)
            option = note.defaultTextOption()
            option.setAlignment(Qt.AlignmentFlag.AlignHCenter)
            note.setDefaultTextOption(option)
            w = note.idealWidth()
            h = note.size().height()
            rect = QRectF((width - w) / 2, y + 4, w, h)
            return RowLayout(
                height=round(y + h + 12),
                kind="note",
                day=day_label,
                day_rect=day_rect,
                doc=note,
                note_rect=rect,
                text_origin=rect.topLeft(),
            )
        y += GAP_GROUP if g.first else GAP_IN_GROUP
        own = m.outgoing
        group_other = key.group_chat and not own
        left = SIDE + (AVATAR + AVATAR_GAP if group_other else 0)
        max_bubble = min(MAX_BUBBLE, int((width - left - SIDE) * 0.78), int(width * 0.65) + 40)
        max_bubble = max(160, max_bubble)
        name_pos = None
        if group_other and g.first:
            name_pos = QPointF(left + PAD_X, y + 13)
            y += NAME_H
        deleted = m.deleted
        body = DELETED_TEXT if deleted else (m.body or "")
        attached = view.attachment is not None and not deleted
        big = not deleted and not attached and view.reply_to is None and emoji_only(body)
        meta_w = self._meta_width(view)
        inner_max = max_bubble - 2 * PAD_X
        block: AttachmentBlock | None = None
        if attached:
            block = attachment_block.measure(view, self.images, 0, 0, inner_max, self.f_attachment)
            if block.kind == "image":
                inner_max = max(120, block.display.width() + 8 - 2 * PAD_X)
        doc: QTextDocument | None = None
        plain: QTextLayout | None = None
        rich = not deleted and not big and has_link(body)
        if attached and not body:
            text_w = text_h = last_line = 0.0
        elif rich:
            # links need the document (anchors for hit-testing); they are rare
            doc = self._doc(body, self.f_text, inner_max, rich=True, on_accent=own)
            text_w = doc.idealWidth()
            text_h = doc.size().height()
            last_line = _last_line_width(doc)
        else:
            font = self.f_big if big else (self.f_deleted if deleted else self.f_text)
            plain, text_w, text_h, last_line = _plain_layout(body, font, inner_max)
        meta_inside = True
        meta_overlay = False
        #: A card without a caption: the time goes at the end of its buttons' row.
        meta_in_card = False
        if block is not None and not body:
            meta_overlay = block.kind == "image"
            meta_in_card = (
                block.kind == "card"
                and bool(block.actions)
                and max(r.right() for r, _ in block.actions) + meta_w + 12 <= block.rect.width()
            )
            inner_w = meta_w
            content_h = 0.0 if meta_overlay or meta_in_card else META_H - 2.0
            meta_inside = meta_overlay or meta_in_card
        elif big:
            inner_w = max(text_w, meta_w)
            content_h = text_h + META_H
        elif last_line + meta_w + 10 <= inner_max and _single_direction_ltr(body):
            inner_w = max(text_w, last_line + meta_w + 10)
            content_h = text_h
        else:
            inner_w = max(text_w, meta_w)
            content_h = text_h + META_H - 2
            meta_inside = False
        quote_rect = None
        quote_h = 0.0
        if view.reply_to is not None:
            quote_w = min(
                inner_max,
                max(
                    inner_w,
                    min(inner_max, self.m_quote.horizontalAdvance(view.reply_to.body or "") + 24),
                    140,
                ),
            )
            inner_w = max(inner_w, quote_w)
            quote_h = QUOTE_H + 6
        #: An image alone (no caption, no quote) is drawn without a bubble around it.
        frameless = meta_overlay and not quote_h
        pad = 0 if frameless else 4
        if block is not None:
            if block.kind == "image":
                inner_w = max(inner_w, block.display.width() + 2 * pad - 2 * PAD_X)
            else:
                inner_w = max(inner_w, block.rect.width())
        bubble_w = inner_w + 2 * PAD_X
        bubble_h = content_h + 2 * PAD_Y + quote_h
        text_top = y + PAD_Y + quote_h
        if block is not None:
            # the attachment sits above the caption (an image almost edge to edge)
            image = block.kind == "image"
            top = y + (pad if image and not quote_h else PAD_Y + quote_h)
            after = top + block.rect.height()
            text_top = after + (6 if image else 8)
            if meta_overlay:
                bottom = after + pad
            elif meta_in_card:
                bottom = after + PAD_Y
            else:
                bottom = text_top + content_h + PAD_Y
            bubble_h = bottom - y
        x = width - SIDE - bubble_w if own else left
        bubble = QRectF(x, y, bubble_w, bubble_h)
        if block is not None:
            if block.kind == "image":
                dx, dy = x + pad, y + (pad if not quote_h else PAD_Y + quote_h)
                block.rect = QRectF(dx, dy, bubble_w - 2 * pad, block.rect.height())
                dx += (block.rect.width() - block.display.width()) / 2
            else:
                dx, dy = x + PAD_X, y + PAD_Y + quote_h
                block.rect.translate(dx, dy)
            block.actions = [
                (QRectF(block.rect) if action == "view" else rect.translated(dx, dy), action)
                for rect, action in block.actions
            ]
        if quote_h:
            quote_rect = QRectF(x + PAD_X - 4, y + PAD_Y, inner_w + 8, QUOTE_H)
        text_origin = QPointF(x + PAD_X, text_top)
        if big:
            text_origin = QPointF(x + bubble_w - PAD_X - text_w if own else x + PAD_X, y + 2)
        meta_rect = QRectF(
            x + bubble_w - PAD_X - meta_w, y + bubble_h - PAD_Y - META_H + 1, meta_w, META_H
        )
        if meta_in_card and block is not None:
            action_row = block.actions[-1][0]
            meta_rect.moveTop(action_row.center().y() - META_H / 2)
        if meta_overlay and block is not None:
            meta_rect = QRectF(
                block.rect.right() - meta_w - 10, block.rect.bottom() - META_H - 6, meta_w, META_H
            )
        y += bubble_h
        chips: list[tuple[QRectF, ReactionSummary]] = []
        if view.reactions:
            cx = x + (12 if not own else 0)
            placed: list[tuple[float, ReactionSummary]] = []
            for reaction in view.reactions[:8]:
                label = reaction.emoji + (f" {reaction.count}" if reaction.count > 1 else "")
                cw = self.m_chip.horizontalAdvance(label) + 18
                placed.append((cw, reaction))
            total = sum(w for w, _ in placed) + 4 * (len(placed) - 1)
            if own:
                cx = x + bubble_w - 12 - total
            for cw, reaction in placed:
                chips.append((QRectF(cx, y - CHIP_OVERLAP, cw, CHIP_H), reaction))
                cx += cw + 4
            y += CHIP_H - CHIP_OVERLAP + 2
        retry = None
        if own and m.status is MessageStatus.FAILED:
            retry = QRectF(x + bubble_w - 150, y + 2, 150, 18)
            y += 22
        avatar = None
        if group_other and g.last:
            avatar = QRectF(SIDE, bubble.bottom() - AVATAR, AVATAR, AVATAR)
        return RowLayout(
            height=round(y + (4 if g.last else 0)),
            kind="message",
            day=day_label,
            day_rect=day_rect,
            bubble=bubble,
            name_pos=name_pos,
            avatar=avatar,
            quote=quote_rect,
            text_origin=text_origin,
            doc=doc,
            plain=plain,
            meta_rect=meta_rect,
            meta_inside=meta_inside,
            chips=chips,
            retry_rect=retry,
            attachment=block,
            meta_overlay=meta_overlay,
            frameless=frameless,
            big_emoji=big,
            deleted=deleted,
            own=own,
            grouping=g,
        )

    def _meta_width(self, view: MessageView) -> float:
        m = view.message
        text = clock_text(m.sent_at)
        if m.edited_at is not None and not m.deleted:
            text = "edited  " + text
        w = self.m_meta.horizontalAdvance(text)
        if m.outgoing:
            w += 24
        if m.expires_at is not None or m.expires_after:
            # the countdown's room is fixed, so that it ticks without a relayout
            w += self.m_meta.horizontalAdvance("00m") + COUNTDOWN_GAP
        return w

    # -- painting ------------------------------------------------------------------------

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        row = self.layout_for(index)
        view = index.data(ViewRole)
        if row is None or not isinstance(view, MessageView):
            return
        c = theme.colors()
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
        top = option.rect.topLeft()
        painter.translate(top)
        if index.data(HighlightRole):
            painter.fillRect(
                QRectF(0, 0, option.rect.width(), row.height),
                _alpha(c.highlight, 0.55),
            )
        if row.day_rect is not None and row.day:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(c.chip)
            painter.drawRoundedRect(row.day_rect, 12, 12)
            painter.setFont(self.f_day)
            painter.setPen(c.muted)
            painter.drawText(row.day_rect, Qt.AlignmentFlag.AlignCenter, row.day)
        if row.kind == "note":
            self._draw_doc(painter, row, c.muted)
            painter.restore()
            return
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        self._paint_message(painter, row, view, c, selected)
        painter.restore()

    def _draw_doc(self, painter: QPainter, row: RowLayout, color: QColor) -> None:
        if row.plain is not None and row.text_origin is not None:
            painter.setPen(color)
            row.plain.draw(painter, row.text_origin)
            return
        if row.doc is None or row.text_origin is None:
            return
        painter.save()
        painter.translate(row.text_origin)
        context = QAbstractTextDocumentLayout.PaintContext()
        palette = QPalette()
        palette.setColor(QPalette.ColorRole.Text, color)
        context.palette = palette
        row.doc.documentLayout().draw(painter, context)
        painter.restore()

    def _paint_message(
        self,
        painter: QPainter,
        row: RowLayout,
        view: MessageView,
        c: theme.Colors,
        selected: bool,
    ) -> None:
        assert row.bubble is not None
        m = view.message
        own = row.own
        g = row.grouping
        # sender name and avatar (groups)
        if row.name_pos is not None:
            painter.setFont(self.f_name)
            painter.setPen(_name_color(m.sender_account_id, c))
            painter.drawText(row.name_pos, view.sender_name)
        if row.avatar is not None:
            paint_avatar(painter, row.avatar, view.sender_name, m.sender_account_id)
        # the bubble
        if row.big_emoji or row.frameless:
            text_color = c.text
            meta_color = c.muted
        elif row.deleted:
            painter.setPen(QPen(c.border, 1.2))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPath(_bubble_path(row.bubble.adjusted(0.5, 0.5, -0.5, -0.5), own, g))
            text_color = c.muted
            meta_color = c.muted
        else:
            fill = c.bubble_own if own else c.bubble_other
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(fill)
            painter.drawPath(_bubble_path(row.bubble, own, g))
            text_color = c.text_on_accent if own else c.text
            meta_color = c.own_meta if own else c.muted
        if selected:
            painter.setPen(QPen(_alpha(c.accent, 0.9 if not own else 0.6), 2))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            ring = row.bubble.adjusted(-3, -3, 3, 3)
            painter.drawRoundedRect(ring, RADIUS + 2, RADIUS + 2)
        # reply quote
        if row.quote is not None and view.reply_to is not None:
            self._paint_quote(painter, row.quote, view, own, c)
        if row.attachment is not None:
            attachment_block.paint(
                painter, row.attachment, view, self.images, own, self.f_attachment
            )
        self._draw_doc(painter, row, text_color)
        # time, edited, ticks (on an image without a caption: on a dark pill)
        if row.meta_rect is not None:
            if row.meta_overlay:
                painter.setPen(Qt.PenStyle.NoPen)
                painter.setBrush(QColor(0, 0, 0, 120))
                pill = row.meta_rect.adjusted(-7, -1, 5, 1)
                painter.drawRoundedRect(pill, pill.height() / 2, pill.height() / 2)
                meta_color = QColor("#FFFFFF")
            self._paint_meta(painter, row.meta_rect, view, meta_color, c)
        # reactions
        for rect, reaction in row.chips:
            painter.setPen(QPen(c.window, 2))
            painter.setBrush(_alpha(c.accent, 0.22) if reaction.mine else c.chip)
            if reaction.mine and theme.is_dark():
                painter.setBrush(QColor("#2A3A5E"))
            elif reaction.mine:
                painter.setBrush(QColor("#DCE6FB"))
            painter.drawRoundedRect(rect, CHIP_H / 2, CHIP_H / 2)
            painter.setFont(self.f_chip)
            painter.setPen(c.text)
            label = reaction.emoji + (f" {reaction.count}" if reaction.count > 1 else "")
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, label)
        # failed: retry
        if row.retry_rect is not None:
            painter.setFont(self.f_meta)
            painter.setPen(c.danger)
            painter.drawText(
                row.retry_rect,
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                "Not sent.  Click to retry",
            )

    def _paint_quote(
        self, painter: QPainter, rect: QRectF, view: MessageView, own: bool, c: theme.Colors
    ) -> None:
        original = view.reply_to
        assert original is not None
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(255, 255, 255, 46) if own else _alpha(c.window, 0.6))
        painter.drawRoundedRect(rect, 8, 8)
        bar = _name_color(original.sender_account_id, c)
        if own:
            bar = QColor("#FFFFFF")
        painter.setBrush(bar)
        painter.drawRoundedRect(QRectF(rect.left(), rect.top(), 3, rect.height()), 1.5, 1.5)
        who = "You" if original.outgoing else self._sender_of(original.sender_account_id, view)
        painter.setFont(self.f_quote_name)
        painter.setPen(c.text_on_accent if own else bar)
        painter.drawText(QRectF(rect.left() + 10, rect.top() + 4, rect.width() - 14, 16), 0, who)
        body = "This message was deleted" if original.deleted else (original.body or "")
        body = " ".join(body.split())
        painter.setFont(self.f_quote)
        painter.setPen(c.own_meta if own else c.muted)
        elided = self.m_quote.elidedText(body, Qt.TextElideMode.ElideRight, rect.width() - 16)
        painter.drawText(
            QRectF(rect.left() + 10, rect.top() + 22, rect.width() - 14, 18), 0, elided
        )

    def _sender_of(self, account_id: str, view: MessageView) -> str:
        if view.message.sender_account_id == account_id:
            return view.sender_name
        names = getattr(self._view, "member_names", None)
        if isinstance(names, dict):
            name = names.get(account_id)
            if isinstance(name, str):
                return name
        return account_id[:8]

    def _paint_meta(
        self, painter: QPainter, rect: QRectF, view: MessageView, color: QColor, c: theme.Colors
    ) -> None:
        m = view.message
        text = clock_text(m.sent_at)
        if m.edited_at is not None and not m.deleted:
            text = "edited  " + text
        painter.setFont(self.f_meta)
        painter.setPen(color)
        countdown = remaining_text(view, self.now_ms())
        if countdown is not None:
            # an hourglass and the time left, at the meta's left end
            painter.save()
            pen = QPen(color, 1.1)
            pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
            painter.setPen(pen)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawPath(hourglass_path(QPointF(rect.left() + 4, rect.top() + 8.5), 9))
            painter.restore()
            painter.drawText(
                QRectF(rect.left() + 11, rect.top(), 40, 16),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                countdown,
            )
        text_rect = QRectF(rect.left(), rect.top(), rect.width() - (24 if m.outgoing else 0), 16)
        painter.drawText(
            text_rect, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, text
        )
        if m.outgoing:
            center = QPointF(rect.right() - 7, rect.top() + 8.5)
            _paint_status(painter, center, m.status, color, c)

    # -- hit testing ---------------------------------------------------------------------

    def hit(self, index: Index, pos: QPointF) -> tuple[str, object]:
        """What is under ``pos`` (relative to the row): a link, the quote, a chip, retry."""
        row = self.layout_for(index)
        if row is None:
            return ("none", None)
        if row.quote is not None and row.quote.contains(pos):
            return ("quote", None)
        for rect, reaction in row.chips:
            if rect.contains(pos):
                return ("reaction", reaction)
        if row.retry_rect is not None and row.retry_rect.contains(pos):
            return ("retry", None)
        if row.attachment is not None:
            for rect, action in row.attachment.actions:
                if rect.contains(pos):
                    return ("attachment", action)
        if row.doc is not None and row.text_origin is not None:
            anchor = row.doc.documentLayout().anchorAt(pos - row.text_origin)
            if anchor:
                return ("link", anchor)
        if row.bubble is not None and row.bubble.contains(pos):
            return ("bubble", None)
        return ("none", None)


def _plain_layout(text: str, font: QFont, width: float) -> tuple[QTextLayout, float, float, float]:
    """Plain text laid out in lines of at most ``width``: layout, width, height, last line.

    Lighter than a QTextDocument (the common case has no links). Right-to-left
    paragraphs are laid out again at their own width so that they align to
    the bubble's right edge, not to the widest possible line.
    """
    layout = QTextLayout(text.replace("\n", "\u2028"), font)
    option = QTextOption()
    option.setWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
    option.setTextDirection(Qt.LayoutDirection.LayoutDirectionAuto)
    layout.setTextOption(option)
    widest, height, last = _lines(layout, width)
    if not _single_direction_ltr(text):
        widest, height, last = _lines(layout, min(width, float(int(widest) + 1)))
    return layout, widest, height, last


def _lines(layout: QTextLayout, width: float) -> tuple[float, float, float]:
    layout.beginLayout()
    y = 0.0
    widest = 0.0
    last = 0.0
    while True:
        line = layout.createLine()
        if not line.isValid():
            break
        line.setLineWidth(width)
        line.setPosition(QPointF(0, y))
        y += line.height()
        last = line.naturalTextWidth()
        widest = max(widest, last)
    layout.endLayout()
    return widest, y, last


def _last_line_width(doc: QTextDocument) -> float:
    block = doc.lastBlock()
    layout = block.layout()
    if layout is None or layout.lineCount() == 0:
        return 0.0
    return float(layout.lineAt(layout.lineCount() - 1).naturalTextWidth())


def _single_direction_ltr(text: str) -> bool:
    """Whether the meta may share the last line (not for right-to-left text)."""
    for ch in text:
        bidi = unicodedata.bidirectional(ch)
        if bidi in ("R", "AL"):
            return False
        if bidi == "L":
            return True
    return True


def _alpha(color: QColor, alpha: float) -> QColor:
    result = QColor(color)
    result.setAlphaF(alpha)
    return result


def _name_color(account_id: str, c: theme.Colors) -> QColor:
    color = avatar_color(account_id)
    return color.lighter(160) if theme.is_dark() else color


def _bubble_path(rect: QRectF, own: bool, g: Grouping) -> QPainterPath:
    """A rounded bubble; the corner on the sender's side is small at a group's end."""
    r = RADIUS
    small = TAIL
    tl = tr = bl = br = r
    # The sender's side: small at the bottom (joins the next bubble, or the
    # group's tail), and at the top unless this bubble starts the group.
    if own:
        br = small
        tr = r if g.first else small
    else:
        bl = small
        tl = r if g.first else small
    limit = min(rect.width(), rect.height()) / 2
    tl, tr, bl, br = (min(x, limit) for x in (tl, tr, bl, br))
    path = QPainterPath()
    x, y, w, h = rect.x(), rect.y(), rect.width(), rect.height()
    path.moveTo(x + tl, y)
    path.lineTo(x + w - tr, y)
    path.quadTo(x + w, y, x + w, y + tr)
    path.lineTo(x + w, y + h - br)
    path.quadTo(x + w, y + h, x + w - br, y + h)
    path.lineTo(x + bl, y + h)
    path.quadTo(x, y + h, x, y + h - bl)
    path.lineTo(x, y + tl)
    path.quadTo(x, y, x + tl, y)
    path.closeSubpath()
    return path


def _check(painter: QPainter, center: QPointF, size: float) -> None:
    path = QPainterPath()
    path.moveTo(center.x() - size * 0.45, center.y() + size * 0.02)
    path.lineTo(center.x() - size * 0.12, center.y() + size * 0.34)
    path.lineTo(center.x() + size * 0.48, center.y() - size * 0.32)
    painter.drawPath(path)


def _paint_status(
    painter: QPainter, center: QPointF, status: MessageStatus, color: QColor, c: theme.Colors
) -> None:
    """Clock (pending), circled tick (sent), two (delivered), two filled (read), "!"."""
    painter.save()
    pen = QPen(color, 1.3)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    painter.setPen(pen)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    r = 6.0
    if status is MessageStatus.PENDING:
        painter.drawEllipse(center, r, r)
        painter.drawLine(center, QPointF(center.x(), center.y() - 3.2))
        painter.drawLine(center, QPointF(center.x() + 2.4, center.y() + 1.2))
    elif status is MessageStatus.SENT:
        painter.drawEllipse(center, r, r)
        _check(painter, center, 6.0)
    elif status in (MessageStatus.DELIVERED, MessageStatus.READ):
        # Two circled ticks, the second overlapping the first; filled when read.
        filled = status is MessageStatus.READ
        for dx in (-5.0, 1.0):
            p = QPointF(center.x() + dx, center.y())
            painter.setPen(QPen(color, 1.3))
            painter.setBrush(color if filled else c.bubble_own)
            painter.drawEllipse(p, r, r)
            ink = QPen(c.bubble_own if filled else color, 1.4)
            ink.setCapStyle(Qt.PenCapStyle.RoundCap)
            ink.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
            painter.setPen(ink)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            _check(painter, p, 6.0)
    elif status is MessageStatus.FAILED:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(c.danger)
        painter.drawEllipse(center, r + 0.5, r + 0.5)
        painter.setPen(QPen(QColor("#FFFFFF"), 1.6))
        painter.drawLine(QPointF(center.x(), center.y() - 3), QPointF(center.x(), center.y() + 0.8))
        painter.drawPoint(QPointF(center.x(), center.y() + 2.8))
    painter.restore()
