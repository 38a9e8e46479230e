"""Images of the timeline: thumbnails at once, full images decoded off the UI thread.

docs/attachments.md §5 and §6. An image message shows its thumbnail (a
JPEG of at most 48 KiB from the MLS message) as soon as it is laid out,
then the full image once the file is on this device: its plaintext comes
from ``client.attachment_bytes`` and is decoded in a worker thread by
:func:`decode_image`, which never trusts the header: it sets
``QImageReader.setAllocationLimit``, reads ``size()`` first and refuses
anything over :data:`MAX_PIXELS` or :data:`MAX_SIDE` before ``read()``,
and scales while decoding so that a 6000x4000 photo costs a bubble's worth
of memory. A malformed image is remembered as *broken*: the bubble then
shows the file card with "This image cannot be shown".

The decoded images are kept per message in a small LRU (:data:`CAPACITY`),
so scrolling back and forth paints from memory; :attr:`ImageCache.changed`
names the message whose picture changed (the model repaints its row).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QObject, QSize, Qt, Signal
from PySide6.QtGui import QImage, QImageReader, QPixmap

from messenger.client import (
    AttachmentNotDownloadedError,
    ClientError,
    ImageRejectedError,
    MessageView,
)

from .. import tasks

log = logging.getLogger(__name__)

#: Images larger than this are not decoded (docs/attachments.md §5).
MAX_PIXELS = 50_000_000
MAX_SIDE = 16_384
#: QImageReader's allocation limit (MiB) for one decoded image.
ALLOCATION_MB = 256
#: A thumbnail from the network is at most this many bytes.
MAX_THUMBNAIL_BYTES = 48 * 1024
#: The most plaintext read for an inline image.
MAX_INLINE_BYTES = 50 << 20
#: A thumbnail claiming more than this a side is not decoded (they are 320 px at most).
MAX_THUMBNAIL_SIDE = 1024
#: Full images kept decoded.
CAPACITY = 48

Loader = Callable[[int], Awaitable[bytes]]


def image_size(data: bytes) -> QSize | None:
    """The dimensions an image's header claims, or None when it is not a readable image."""
    reader, _buffer = _reader(data)
    size = reader.size()
    return size if size.isValid() else None


def _reader(data: bytes) -> tuple[QImageReader, QBuffer]:
    buffer = QBuffer()
    buffer.setData(QByteArray(data))
    buffer.open(QIODevice.OpenModeFlag.ReadOnly)
    reader = QImageReader(buffer)
    reader.setAutoTransform(True)
    return reader, buffer


def decode_image(data: bytes, fit: QSize | None = None, max_side: int = MAX_SIDE) -> QImage | None:
    """``data`` decoded (scaled down to fit ``fit``), or None if malformed or too large.

    Safe to call from a worker thread. The header's size is checked before
    any pixel is decoded, and Qt refuses allocations over :data:`ALLOCATION_MB`.
    """
    QImageReader.setAllocationLimit(ALLOCATION_MB)
    reader, buffer = _reader(data)
    try:
        size = reader.size()
        if not size.isValid() or size.width() <= 0 or size.height() <= 0:
            return None
        if size.width() > max_side or size.height() > max_side:
            return None
        if size.width() * size.height() > MAX_PIXELS:
            return None
        if fit is not None and (size.width() > fit.width() or size.height() > fit.height()):
            reader.setScaledSize(size.scaled(fit, Qt.AspectRatioMode.KeepAspectRatio))
        image = reader.read()
        return None if image.isNull() else image
    finally:
        buffer.close()


def fit_size(width: int, height: int, box: int) -> QSize:
    """``width`` x ``height`` scaled into ``box`` x ``box`` keeping the aspect (never up)."""
    if width <= 0 or height <= 0:
        return QSize(box, box * 3 // 4)
    scale = min(1.0, box / width, box / height)
    return QSize(max(1, round(width * scale)), max(1, round(height * scale)))


class ImageCache(QObject):
    """Thumbnails and full images of one timeline, by message id."""

    #: ``message_id``: its picture changed (a full image arrived, or it is broken).
    changed = Signal(int)

    def __init__(self, loader: Loader | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.loader = loader
        #: Pixels per logical pixel of the full images kept (2: sharp on HiDPI).
        self.scale = 2
        self._thumbs: collections.OrderedDict[int, QPixmap | None] = collections.OrderedDict()
        self._full: collections.OrderedDict[int, QPixmap] = collections.OrderedDict()
        self._broken: set[int] = set()
        #: Loads running or given up, by message id: the attachment's state then.
        self._asked: dict[int, str] = {}
        self.decodes = 0

    def thumbnail(self, view: MessageView) -> QPixmap | None:
        """The message's thumbnail (decoded once), or None."""
        mid = view.id
        if mid in self._thumbs:
            self._thumbs.move_to_end(mid)
            return self._thumbs[mid]
        attachment = view.attachment
        data = attachment.thumbnail if attachment is not None else b""
        pixmap = None
        if data and len(data) <= MAX_THUMBNAIL_BYTES:
            image = decode_image(data, QSize(640, 640), MAX_THUMBNAIL_SIDE)
            if image is not None:
                pixmap = QPixmap.fromImage(image)
        self._thumbs[mid] = pixmap
        if len(self._thumbs) > CAPACITY * 4:
            self._thumbs.popitem(last=False)
        return pixmap

    def broken(self, message_id: int) -> bool:
        """Whether the full image turned out malformed (show the file card)."""
        return message_id in self._broken

    def full(self, view: MessageView, display: QSize) -> QPixmap | None:
        """The decoded full image if ready; else starts decoding it (when readable)."""
        mid = view.id
        pixmap = self._full.get(mid)
        if pixmap is not None:
            self._full.move_to_end(mid)
            return pixmap
        attachment = view.attachment
        if attachment is None or not attachment.readable or mid in self._broken:
            return None
        state = str(attachment.state)
        if self._asked.get(mid) == state or self.loader is None:
            return None
        self._asked[mid] = state
        fit = QSize(display.width() * self.scale, display.height() * self.scale)
        tasks.spawn(self._load(mid, fit), on_error=lambda _sentence: None)
        return None

    def forget(self, message_id: int) -> None:
        """Drop everything of ``message_id`` (it expired or was deleted)."""
        self._thumbs.pop(message_id, None)
        self._full.pop(message_id, None)
        self._broken.discard(message_id)
        self._asked.pop(message_id, None)

    async def _load(self, message_id: int, fit: QSize) -> None:
        assert self.loader is not None
        try:
            data = await self.loader(message_id)
        except AttachmentNotDownloadedError:
            self._asked.pop(message_id, None)  # ask again when its state changes
            return
        except ImageRejectedError:
            self._mark_broken(message_id)
            return
        except ClientError as error:
            log.info("an inline image could not be read: %s", type(error).__name__)
            return
        self.decodes += 1
        image = await asyncio.to_thread(decode_image, data, fit)
        del data
        if image is None:
            self._mark_broken(message_id)
            return
        self._full[message_id] = QPixmap.fromImage(image)
        if len(self._full) > CAPACITY:
            evicted, _ = self._full.popitem(last=False)
            self._asked.pop(evicted, None)  # decoded again when it is painted
        self.changed.emit(message_id)

    def _mark_broken(self, message_id: int) -> None:
        self._broken.add(message_id)
        self.changed.emit(message_id)
