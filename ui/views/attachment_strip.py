"""The files waiting to be sent: the strip above the composer's text field.

docs/attachments.md §6. Files come from the attach button's file dialog,
from a drop on the conversation, or from the clipboard (a copied file, or
an image, sent as PNG bytes named "Pasted image.png"). Each waits in the
strip as a chip -- a thumbnail for an image, a file badge otherwise, the
name, the size, and a remove button -- until the message is sent: then
each file goes out with ``client.send_file``, the text being the caption
of the first. Nothing is read here but an image's preview (decoded with
the same limits as the timeline); the client reads and checks the file
when it is sent (too large: ``AttachmentTooLargeError``, shown as a toast).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QImage, QImageWriter, QPixmap
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from messenger.client import format_size

from ..widgets.icons import themed_icon
from ..widgets.image_cache import decode_image

PASTED_NAME = "Pasted image.png"
#: Image files up to this size get a preview in the strip (bigger: a badge).
PREVIEW_MAX_BYTES = 12 << 20
#: At most this many files wait at once.
MAX_PENDING = 32
CHIP_PREVIEW = 40
_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp"})


@dataclasses.dataclass(frozen=True, slots=True)
class PendingFile:
    """One file to send: a path, or the bytes of a pasted image."""

    source: Path | bytes
    name: str
    size: int
    preview: QPixmap | None = None


def pending_path(path: Path) -> PendingFile | None:
    """A regular file as a pending file (None: not a readable regular file)."""
    try:
        if not path.is_file():
            return None
        size = path.stat().st_size
    except OSError:
        return None
    preview = None
    if path.suffix.lower() in _IMAGE_SUFFIXES and size <= PREVIEW_MAX_BYTES:
        try:
            data = path.read_bytes()
        except OSError:
            return None
        image = decode_image(data, QSize(CHIP_PREVIEW * 2, CHIP_PREVIEW * 2))
        if image is not None:
            preview = QPixmap.fromImage(image)
    return PendingFile(path, path.name, size, preview)


def pending_image(image: QImage) -> PendingFile | None:
    """A pasted image as PNG bytes named :data:`PASTED_NAME` (None: an empty image)."""
    if image.isNull():
        return None
    array = QByteArray()
    buffer = QBuffer(array)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not QImageWriter(buffer, QByteArray(b"PNG")).write(image):
        return None
    buffer.close()
    data = bytes(array.data())
    thumb = image.scaled(
        CHIP_PREVIEW * 2,
        CHIP_PREVIEW * 2,
        Qt.AspectRatioMode.KeepAspectRatio,
        Qt.TransformationMode.SmoothTransformation,
    )
    return PendingFile(data, PASTED_NAME, len(data), QPixmap.fromImage(thumb))


def local_files(mime: QMimeData) -> list[Path]:
    """The local files a drop or a paste carries (other URLs are ignored)."""
    if not mime.hasUrls():
        return []
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


def carries_attachments(mime: QMimeData) -> bool:
    """Whether a drop or a paste would add files (local files, or an image)."""
    return bool(local_files(mime)) or mime.hasImage()


class PendingChip(QFrame):
    """One waiting file: preview or badge, name, size, remove."""

    remove_requested = Signal(object)

    def __init__(self, item: PendingFile, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.item = item
        self.setObjectName("PendingChip")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setFixedHeight(56)
        self.setMaximumWidth(260)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 8, 4, 8)
        row.setSpacing(10)
        self.preview = QLabel(self)
        self.preview.setFixedSize(CHIP_PREVIEW, CHIP_PREVIEW)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        if item.preview is not None:
            self.preview.setPixmap(
                item.preview.scaled(
                    CHIP_PREVIEW,
                    CHIP_PREVIEW,
                    Qt.AspectRatioMode.KeepAspectRatioByExpanding,
                    Qt.TransformationMode.SmoothTransformation,
                ).copy(0, 0, CHIP_PREVIEW, CHIP_PREVIEW)
            )
        else:
            self.preview.setObjectName("PendingBadge")
            suffix = PurePosixPath(item.name).suffix.lstrip(".").upper()
            self.preview.setText(suffix if 1 <= len(suffix) <= 4 else "FILE")
        row.addWidget(self.preview)
        texts = QVBoxLayout()
        texts.setSpacing(0)
        self.name = QLabel(self)
        self.name.setTextFormat(Qt.TextFormat.PlainText)
        metrics = self.name.fontMetrics()
        self.name.setText(metrics.elidedText(item.name, Qt.TextElideMode.ElideMiddle, 150))
        self.name.setToolTip(item.name)
        self.size_label = QLabel(format_size(item.size), self)
        self.size_label.setProperty("class", "caption")
        texts.addWidget(self.name)
        texts.addWidget(self.size_label)
        row.addLayout(texts, 1)
        self.remove = QToolButton(self)
        self.remove.setIcon(themed_icon("close"))
        self.remove.setIconSize(QSize(14, 14))
        self.remove.setFixedSize(28, 28)
        self.remove.setAccessibleName(f"Remove {item.name}")
        self.remove.setToolTip("Remove")
        self.remove.clicked.connect(lambda: self.remove_requested.emit(self.item))
        row.addWidget(self.remove, 0, Qt.AlignmentFlag.AlignTop)
        self.setAccessibleName(f"{item.name}, {format_size(item.size)}")


class AttachmentStrip(QScrollArea):
    """The pending files as a row of chips (hidden while there are none)."""

    #: The list of pending files changed (the send button follows).
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("AttachmentStrip")
        self.setAccessibleName("Files to send")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setFixedHeight(68)
        inner = QWidget(self)
        inner.setObjectName("AttachmentStripInner")
        self._row = QHBoxLayout(inner)
        self._row.setContentsMargins(0, 2, 0, 2)
        self._row.setSpacing(8)
        self._row.addStretch(1)
        self.setWidget(inner)
        self.items: list[PendingFile] = []
        self.chips: list[PendingChip] = []
        self.hide()

    def add(self, items: Iterable[PendingFile]) -> int:
        """Add files (at most :data:`MAX_PENDING` wait); how many were added."""
        added = 0
        for item in items:
            if len(self.items) >= MAX_PENDING:
                break
            self.items.append(item)
            chip = PendingChip(item, self.widget())
            chip.remove_requested.connect(self.remove)
            self._row.insertWidget(self._row.count() - 1, chip)
            self.chips.append(chip)
            added += 1
        self._update()
        return added

    def remove(self, item: PendingFile) -> None:
        for i, chip in enumerate(self.chips):
            if chip.item is item:
                del self.chips[i]
                del self.items[i]
                chip.hide()
                chip.deleteLater()
                break
        self._update()

    def take(self) -> list[PendingFile]:
        """Every pending file, and the strip emptied (they are being sent)."""
        items = list(self.items)
        for chip in self.chips:
            chip.hide()
            chip.deleteLater()
        self.items, self.chips = [], []
        self._update()
        return items

    def _update(self) -> None:
        self.setVisible(bool(self.items))
        self.changed.emit()
