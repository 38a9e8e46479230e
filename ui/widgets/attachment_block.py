"""The attachment inside a bubble: an inline image or a file card.

docs/attachments.md §6 and ui-design.md, "Bubbles". An image is shown at
once from its thumbnail, scaled to fit :data:`IMAGE_BOX` keeping its
aspect, with rounded corners; the full image replaces it when it is on
this device (:mod:`ui.widgets.image_cache`). While an image is not
readable, a pill in its middle says what can be done ("Download 2.1 MB",
a progress ring with "Cancel", "Retry", "No longer available"). Any other
file -- and an image that turns out malformed -- is a card: a file-type
badge, the name (elided), the size or the state, a thin progress bar
while it moves, and its actions as small buttons (Download, Open, Save,
Cancel, Retry).

:func:`measure` computes the geometry once (the bubble delegate caches it
with the row); :func:`paint` draws it; the action rectangles are what the
timeline hit-tests, so what is clicked is what was drawn.
"""

from __future__ import annotations

import dataclasses
from pathlib import PurePosixPath

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen

from messenger.client import AttachmentView, MessageView, TransferState, format_size

from .. import theme
from ..models.message_list import display_name
from .image_cache import ImageCache, fit_size

#: Inline images fit in this square (logical px).
IMAGE_BOX = 320
#: The smallest side an inline image is given (very thin images are letterboxed).
IMAGE_MIN = 96
IMAGE_RADIUS = 14.0
CARD_W = 280
CARD_TOP_H = 44
ACTION_H = 26
ACTION_GAP = 8
DETAIL_LINE_H = 16
BROKEN_TEXT = "This image cannot be shown"
GONE_TEXT = "No longer available"

#: The actions of a file card by state (own files and received ones).
_CARD_ACTIONS: dict[TransferState, tuple[str, ...]] = {
    TransferState.UPLOADING: ("cancel",),
    TransferState.UPLOAD_FAILED: ("retry", "cancel"),
    TransferState.SENT: ("open", "save"),
    TransferState.AVAILABLE: ("download",),
    TransferState.DOWNLOADING: ("cancel",),
    TransferState.DOWNLOADED: ("open", "save"),
    TransferState.FAILED: ("retry",),
    TransferState.GONE: (),
}
ACTION_LABELS = {
    "download": "Download",
    "open": "Open",
    "save": "Save…",
    "cancel": "Cancel",
    "retry": "Retry",
    "view": "View",
}


@dataclasses.dataclass(slots=True)
class AttachmentBlock:
    """Where an attachment goes in its row (relative to the row's top-left)."""

    kind: str  # "image" or "card"
    rect: QRectF
    display: QSize
    actions: list[tuple[QRectF, str]] = dataclasses.field(default_factory=list)
    broken: bool = False
    #: A card's second line(s): the size, the progress, or the error (at most two lines).
    detail: list[str] = dataclasses.field(default_factory=list)
    detail_error: bool = False


def transferring(attachment: AttachmentView) -> bool:
    return attachment.state in (TransferState.UPLOADING, TransferState.DOWNLOADING)


def fraction(attachment: AttachmentView) -> float:
    if attachment.size <= 0:
        return 0.0
    return max(0.0, min(1.0, attachment.done / attachment.size))


def shows_image(view: MessageView, images: ImageCache) -> bool:
    """Whether the attachment is drawn as an image (else as a card)."""
    a = view.attachment
    if a is None or not a.is_image or images.broken(view.id):
        return False
    return (a.width > 0 and a.height > 0) or images.thumbnail(view) is not None


def image_display(view: MessageView, images: ImageCache) -> QSize:
    """The on-screen size of an inline image: its size fitted into :data:`IMAGE_BOX`."""
    a = view.attachment
    assert a is not None
    width, height = a.width, a.height
    if width <= 0 or height <= 0:
        thumb = images.thumbnail(view)
        if thumb is not None:
            width, height = thumb.width(), thumb.height()
    size = fit_size(width, height, IMAGE_BOX)
    return QSize(max(IMAGE_MIN, size.width()), max(IMAGE_MIN, size.height()))


def card_actions(view: MessageView, broken: bool) -> tuple[str, ...]:
    a = view.attachment
    assert a is not None
    return _CARD_ACTIONS.get(a.state, ())


def image_action(attachment: AttachmentView) -> str | None:
    """What the pill in the middle of a not-yet-readable image does."""
    return {
        TransferState.AVAILABLE: "download",
        TransferState.DOWNLOADING: "cancel",
        TransferState.UPLOADING: "cancel",
        TransferState.FAILED: "retry",
        TransferState.UPLOAD_FAILED: "retry",
    }.get(attachment.state)


def image_pill_text(attachment: AttachmentView) -> str:
    state = attachment.state
    if state is TransferState.AVAILABLE:
        return f"Download  {format_size(attachment.size)}"
    if transferring(attachment):
        return f"{round(fraction(attachment) * 100)}%  Cancel"
    if state in (TransferState.FAILED, TransferState.UPLOAD_FAILED):
        return "Retry"
    if state is TransferState.GONE:
        return GONE_TEXT
    return ""


def image_pill(attachment: AttachmentView, rect: QRectF, fonts: Fonts) -> QRectF | None:
    """Where the pill in the middle of an image goes (room for a ring while it moves)."""
    text = image_pill_text(attachment)
    if not text:
        return None
    w = fonts.m_action.horizontalAdvance(text) + 28 + (22 if transferring(attachment) else 0)
    return QRectF(rect.center().x() - w / 2, rect.center().y() - 17, w, 34)


def measure(
    view: MessageView, images: ImageCache, x: float, y: float, max_width: float, fonts: Fonts
) -> AttachmentBlock:
    """The block at ``(x, y)`` (the bubble's inner top-left for a card, its edge for an image)."""
    a = view.attachment
    assert a is not None
    if shows_image(view, images):
        display = image_display(view, images)
        rect = QRectF(x, y, display.width(), display.height())
        block = AttachmentBlock("image", rect, display)
        action = image_action(a)
        pill = image_pill(a, rect, fonts)
        if pill is not None and action is not None:
            block.actions.append((pill, action))
        if a.readable:
            block.actions.append((rect, "view"))
        return block
    broken = a.is_image and images.broken(view.id)
    width = min(max_width, CARD_W)
    actions = card_actions(view, broken)
    text, is_error = card_detail(a, broken)
    detail = wrap_lines(text, fonts.m_detail, width - 52, 2 if is_error else 1)
    extra = DETAIL_LINE_H * (len(detail) - 1)
    height = CARD_TOP_H + extra + (ACTION_GAP + ACTION_H if actions else 0)
    rect = QRectF(x, y, width, height)
    block = AttachmentBlock("card", rect, QSize(round(width), round(height)), broken=broken)
    block.detail = detail
    block.detail_error = is_error
    ax = x + 52
    for action in actions:
        w = fonts.m_action.horizontalAdvance(ACTION_LABELS[action]) + 24
        top = y + CARD_TOP_H + extra + ACTION_GAP
        block.actions.append((QRectF(ax, top, w, ACTION_H), action))
        ax += w + 6
    return block


def wrap_lines(text: str, metrics: QFontMetricsF, width: float, most: int) -> list[str]:
    """``text`` in at most ``most`` lines of ``width``, the last one elided if need be."""
    lines: list[str] = []
    words = text.split()
    while words and len(lines) < most:
        line = words.pop(0)
        while words and metrics.horizontalAdvance(f"{line} {words[0]}") <= width:
            line = f"{line} {words.pop(0)}"
        lines.append(line)
    if words:
        lines[-1] = f"{lines[-1]} {' '.join(words)}"
    if lines:
        lines[-1] = metrics.elidedText(lines[-1], Qt.TextElideMode.ElideRight, width)
    return lines or [""]


@dataclasses.dataclass(slots=True)
class Fonts:
    name: QFont
    detail: QFont
    action: QFont
    badge: QFont
    m_name: QFontMetricsF
    m_detail: QFontMetricsF
    m_action: QFontMetricsF

    @classmethod
    def create(cls) -> Fonts:
        name = theme.font(theme.FONT_PX, QFont.Weight.DemiBold)
        detail = theme.font(theme.CAPTION_PX)
        action = theme.font(theme.CAPTION_PX, QFont.Weight.DemiBold)
        badge = theme.font(9, QFont.Weight.Bold)
        return cls(
            name,
            detail,
            action,
            badge,
            QFontMetricsF(name),
            QFontMetricsF(detail),
            QFontMetricsF(action),
        )


def file_label(attachment: AttachmentView) -> str:
    """The badge on a card: the file's extension ("PDF"), else "FILE"."""
    suffix = PurePosixPath(attachment.name).suffix.lstrip(".")
    if 1 <= len(suffix) <= 4 and suffix.isalnum():
        return suffix.upper()
    return "FILE"


def card_detail(attachment: AttachmentView, broken: bool) -> tuple[str, bool]:
    """The card's second line and whether it is an error."""
    size = format_size(attachment.size)
    state = attachment.state
    if broken:
        return BROKEN_TEXT, True
    if transferring(attachment):
        verb = "Sending" if state is TransferState.UPLOADING else "Downloading"
        return f"{verb}… {round(fraction(attachment) * 100)}% of {size}", False
    if state in (TransferState.FAILED, TransferState.UPLOAD_FAILED):
        return attachment.error or "The transfer failed.", True
    if state is TransferState.GONE:
        return GONE_TEXT, False
    return f"{size} · {file_label(attachment)}", False


def paint(
    painter: QPainter,
    block: AttachmentBlock,
    view: MessageView,
    images: ImageCache,
    own: bool,
    fonts: Fonts,
) -> None:
    a = view.attachment
    assert a is not None
    if block.kind == "image":
        _paint_image(painter, block, view, images, fonts)
    else:
        _paint_card(painter, block, a, own, fonts)


def _paint_image(
    painter: QPainter, block: AttachmentBlock, view: MessageView, images: ImageCache, fonts: Fonts
) -> None:
    a = view.attachment
    assert a is not None
    c = theme.colors()
    rect = block.rect
    path = QPainterPath()
    path.addRoundedRect(rect, IMAGE_RADIUS, IMAGE_RADIUS)
    painter.save()
    painter.setClipPath(path)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
    pixmap = images.full(view, block.display) or images.thumbnail(view)
    if pixmap is None:
        painter.fillRect(rect, c.chip)
    else:
        # cover the rectangle (a letterboxed thin image is cropped in the middle)
        source = QRectF(pixmap.rect())
        scale = max(rect.width() / source.width(), rect.height() / source.height())
        sw, sh = rect.width() / scale, rect.height() / scale
        source = QRectF(source.center().x() - sw / 2, source.center().y() - sh / 2, sw, sh)
        painter.drawPixmap(rect, pixmap, source)
    painter.restore()
    text = image_pill_text(a)
    pill = image_pill(
        a,
        QRectF(
            rect.center().x() - block.display.width() / 2,
            rect.top(),
            block.display.width(),
            rect.height(),
        ),
        fonts,
    )
    if pill is None:
        return
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(0, 0, 0, 150))
    painter.drawRoundedRect(pill, 17, 17)
    if transferring(a):
        # a ring of progress at the pill's left end
        center = QPointF(pill.left() + 20, pill.center().y())
        pill = pill.adjusted(24, 0, 0, 0)
        painter.setPen(QPen(QColor(255, 255, 255, 90), 2.2))
        painter.drawEllipse(center, 8, 8)
        pen = QPen(QColor("#FFFFFF"), 2.2)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        painter.setPen(pen)
        span = -round(fraction(a) * 360 * 16)
        painter.drawArc(QRectF(center.x() - 8, center.y() - 8, 16, 16), 90 * 16, span)
    painter.setFont(fonts.action)
    painter.setPen(QColor("#FFFFFF"))
    painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, text)


def _paint_card(
    painter: QPainter, block: AttachmentBlock, a: AttachmentView, own: bool, fonts: Fonts
) -> None:
    c = theme.colors()
    rect = block.rect
    ink = c.text_on_accent if own else c.text
    muted = c.own_meta if own else c.muted
    # the file-type badge: a rounded page with the extension
    badge = QRectF(rect.left(), rect.top() + 2, 40, 40)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(255, 255, 255, 56) if own else theme_tint(c))
    painter.drawRoundedRect(badge, 10, 10)
    painter.setFont(fonts.badge)
    painter.setPen(c.text_on_accent if own else c.accent if not theme.is_dark() else c.link)
    painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, file_label(a))
    text_x = rect.left() + 52
    text_w = rect.right() - text_x
    painter.setFont(fonts.name)
    painter.setPen(ink)
    name = fonts.m_name.elidedText(display_name(a.name), Qt.TextElideMode.ElideMiddle, text_w)
    painter.drawText(QRectF(text_x, rect.top(), text_w, 22), Qt.AlignmentFlag.AlignVCenter, name)
    painter.setFont(fonts.detail)
    painter.setPen((QColor("#FFE0E0") if own else c.danger) if block.detail_error else muted)
    for i, line in enumerate(block.detail):
        painter.drawText(
            QRectF(text_x, rect.top() + 22 + i * DETAIL_LINE_H, text_w, 18),
            Qt.AlignmentFlag.AlignVCenter,
            line,
        )
    if transferring(a):
        track = QRectF(text_x, rect.top() + CARD_TOP_H - 2, text_w, 3)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(255, 255, 255, 70) if own else c.border)
        painter.drawRoundedRect(track, 1.5, 1.5)
        done = QRectF(track.left(), track.top(), max(3.0, track.width() * fraction(a)), 3)
        painter.setBrush(QColor("#FFFFFF") if own else c.accent)
        painter.drawRoundedRect(done, 1.5, 1.5)
    for action_rect, action in block.actions:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(255, 255, 255, 46) if own else theme_tint(c))
        painter.drawRoundedRect(action_rect, ACTION_H / 2, ACTION_H / 2)
        painter.setFont(fonts.action)
        painter.setPen(c.text_on_accent if own else (c.link if theme.is_dark() else c.accent))
        painter.drawText(action_rect, Qt.AlignmentFlag.AlignCenter, ACTION_LABELS[action])


def theme_tint(c: theme.Colors) -> QColor:
    """A light wash of the accent for badges and buttons on a neutral bubble."""
    tint = QColor(c.accent)
    tint.setAlphaF(0.22 if theme.is_dark() else 0.12)
    return tint


def hourglass_path(center: QPointF, size: float) -> QPainterPath:
    """A small hourglass (the countdown of a disappearing message)."""
    h = size / 2
    w = size * 0.36
    path = QPainterPath()
    path.moveTo(center.x() - w, center.y() - h)
    path.lineTo(center.x() + w, center.y() - h)
    path.lineTo(center.x(), center.y())
    path.lineTo(center.x() + w, center.y() + h)
    path.lineTo(center.x() - w, center.y() + h)
    path.lineTo(center.x(), center.y())
    path.closeSubpath()
    return path
