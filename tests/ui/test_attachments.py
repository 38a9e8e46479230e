"""Attachments in the GUI with the fake client (docs/attachments.md §6).

The composer's attach button, drag and drop, paste of files and images,
the pending strip and the errors; the timeline's file cards (progress,
download, cancel, retry, open, save) and inline images (thumbnail first,
then the full image, a malformed one falling back to the card); the
viewer from the keyboard; and what the bridge makes of a burst of
progress events.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QObject, QPoint, QPointF, QSize, Qt, QUrl, Slot
from PySide6.QtGui import (
    QColor,
    QDesktopServices,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QImage,
    QMouseEvent,
)
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget

from messenger.client import (
    AttachmentTooLargeError,
    MessageKind,
    TransferState,
    format_size,
)
from tests.ui.conftest import wait_until
from tests.ui.fake_client import ALICE, FakeClient, populate, scenic_image
from tests.ui.test_main_window import Harness, _now, open_chat
from ui import theme
from ui.bridge import Bridge
from ui.models.message_list import spoken_text
from ui.preferences import Theme
from ui.views.attachment_strip import PASTED_NAME
from ui.views.conversation import _safe_name
from ui.views.main_window import MainWindow
from ui.widgets.attachment_block import BROKEN_TEXT, IMAGE_BOX
from ui.widgets.image_cache import MAX_THUMBNAIL_BYTES, decode_image

pytestmark = [
    pytest.mark.usefixtures("loop"),
    pytest.mark.qt_log_ignore(
        "does not support raise",
        "does not support grabbing",
        "propagateSizeHints",
        # a malformed image is malformed: the decoder says so (the app logs it)
        "JPEG",
        "libpng",
    ),
]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def harness(tmp_path: Path, qapp: QApplication) -> Iterator[Harness]:
    theme.apply_theme(qapp, Theme.LIGHT)
    h = Harness(tmp_path)
    yield h
    h.close()


class UrlCatcher(QObject):
    """Stands in for the desktop's file opener (nothing is launched in a test)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[QUrl] = []

    @Slot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(url)


@pytest.fixture
def opened_urls() -> Iterator[list[QUrl]]:
    catcher = UrlCatcher()
    QDesktopServices.setUrlHandler("file", catcher, "open")
    yield catcher.urls
    QDesktopServices.unsetUrlHandler("file")


def row_of(window: MainWindow, message_id: int) -> int:
    return window.pane.model.row_of(message_id)


def view_of(window: MainWindow, message_id: int) -> Any:
    return window.pane.model.view_at(row_of(window, message_id))


def click_action(window: MainWindow, message_id: int, action: str) -> None:
    """Click the attachment button ``action`` of a message's row, where it was painted."""
    timeline = window.pane.timeline
    index = window.pane.model.index(row_of(window, message_id))
    timeline.scrollTo(index)
    layout = timeline.bubbles.layout_for(index)
    assert layout is not None and layout.attachment is not None
    rects = [r for r, a in layout.attachment.actions if a == action]
    assert rects, (action, [a for _, a in layout.attachment.actions])
    point = rects[0].center() + QPointF(timeline.visualRect(index).topLeft())
    local = point.toPoint()
    for kind in (QMouseEvent.Type.MouseButtonPress, QMouseEvent.Type.MouseButtonRelease):
        event = QMouseEvent(
            kind,
            QPointF(local),
            QPointF(timeline.viewport().mapToGlobal(local)),
            Qt.MouseButton.LeftButton,
            Qt.MouseButton.LeftButton
            if kind == QMouseEvent.Type.MouseButtonPress
            else Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(timeline.viewport(), event)


def files(tmp_path: Path, *names: str, size: int = 1000) -> list[Path]:
    paths = []
    for name in names:
        path = tmp_path / name
        path.write_bytes(b"x" * size)
        paths.append(path)
    return paths


# -- the composer ------------------------------------------------------------------------------


def test_attach_button_sends_each_file_with_the_text_as_the_first_caption(
    harness: Harness, run: Any, tmp_path: Path
) -> None:
    async def body() -> None:
        window, cid = await open_chat(harness)
        composer = window.pane.composer
        assert composer.attach_button.accessibleName() == "Attach a file"
        assert composer.attach_button.focusPolicy() & Qt.FocusPolicy.TabFocus
        composer.attach_button.click()
        dialog = composer.file_dialog
        assert dialog is not None and dialog.isVisible()
        report, photo = files(tmp_path, "report.pdf", "photo.png")
        photo.write_bytes(scenic_image(60, 40))
        dialog.filesSelected.emit([str(report), str(photo)])
        dialog.reject()
        assert [item.name for item in composer.strip.items] == ["report.pdf", "photo.png"]
        assert composer.strip.isVisible()
        assert composer.strip.chips[1].item.preview is not None  # a thumbnail for the image
        assert composer.strip.chips[0].size_label.text() == "1.0 KB"
        assert composer.send_button.isEnabled()  # files alone can be sent
        composer.field.setPlainText("The report and a photo")
        QTest.keyClick(composer.field, Qt.Key.Key_Return)
        await wait_until(lambda: len(harness.client.sent_files) == 2)
        sent = harness.client.sent_files
        assert [(c, n, cap) for c, n, _s, cap in sent] == [
            (cid, "report.pdf", "The report and a photo"),
            (cid, "photo.png", None),
        ]
        assert sent[0][2] == report
        assert not composer.strip.isVisible() and composer.text() == ""
        # the two file messages are in the timeline at once, uploading
        await wait_until(
            lambda: (
                [v.message.kind for v in window.pane.model.views()[-2:]]
                == [MessageKind.FILE, MessageKind.FILE]
            )
        )
        last = window.pane.model.views()[-1]
        assert last.attachment is not None
        assert last.attachment.state is TransferState.UPLOADING

    run(body())


def test_shortcut_opens_the_file_dialog_and_a_chip_can_be_removed(
    harness: Harness, run: Any, tmp_path: Path
) -> None:
    async def body() -> None:
        window, _cid = await open_chat(harness)
        composer = window.pane.composer
        composer.field.setFocus()
        QTest.keyClick(
            composer.field,
            Qt.Key.Key_A,
            Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
        )
        await wait_until(lambda: composer.file_dialog is not None)
        assert composer.file_dialog is not None
        composer.file_dialog.reject()
        await wait_until(lambda: composer.file_dialog is None)
        composer.add_paths(files(tmp_path, "a.txt", "b.txt"))
        chip = composer.strip.chips[0]
        assert chip.remove.accessibleName() == "Remove a.txt"
        chip.remove.click()
        assert [i.name for i in composer.strip.items] == ["b.txt"]
        composer.strip.chips[0].remove.click()
        assert not composer.strip.isVisible()
        assert not composer.send_button.isEnabled()
        # a directory or a missing file is not added, and the user is told
        added = composer.add_paths([tmp_path, tmp_path / "missing.bin"])
        assert added == 0
        assert window.toast.isVisible() and "Only files" in window.toast.text()
        assert harness.client.calls["send_file"] == 0

    run(body())


def _file_mime(*paths: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def test_dropping_files_shows_the_overlay_and_adds_them(
    harness: Harness, run: Any, tmp_path: Path
) -> None:
    async def body() -> None:
        window, _cid = await open_chat(harness)
        pane = window.pane
        (doc,) = files(tmp_path, "notes.txt")
        mime = _file_mime(doc)
        at = QPoint(pane.width() // 2, pane.height() // 2)
        enter = QDragEnterEvent(
            at, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier(0)
        )
        QApplication.sendEvent(pane, enter)
        assert enter.isAccepted()
        assert pane.drop_overlay.isVisible()
        assert pane.drop_overlay.accessibleName() == "Drop to send"
        drop = QDropEvent(
            QPointF(at),
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier(0),
        )
        QApplication.sendEvent(pane, drop)
        assert not pane.drop_overlay.isVisible()
        assert [i.name for i in pane.composer.strip.items] == ["notes.txt"]
        # a drag of text, or of a web link, is not a file: no overlay, nothing added
        for other in (QMimeData(), QMimeData()):
            other.setText("just text")
        web = QMimeData()
        web.setUrls([QUrl("https://example.org/evil.exe")])
        for refused in (other, web):
            enter = QDragEnterEvent(
                at,
                Qt.DropAction.CopyAction,
                refused,
                Qt.MouseButton.LeftButton,
                Qt.KeyboardModifier(0),
            )
            QApplication.sendEvent(pane, enter)
            assert not enter.isAccepted()
            assert not pane.drop_overlay.isVisible()
        assert len(pane.composer.strip.items) == 1

    run(body())


def test_paste_of_an_image_and_of_files(harness: Harness, run: Any, tmp_path: Path) -> None:
    async def body() -> None:
        window, cid = await open_chat(harness)
        composer = window.pane.composer
        image = QImage(64, 48, QImage.Format.Format_RGB32)
        image.fill(QColor("#3A76F0"))
        clipboard = QGuiApplication.clipboard()
        clipboard.setImage(image)
        composer.field.setFocus()
        composer.field.paste()
        assert [i.name for i in composer.strip.items] == [PASTED_NAME]
        source = composer.strip.items[0].source
        assert isinstance(source, bytes) and source.startswith(PNG_MAGIC)
        (doc,) = files(tmp_path, "minutes.txt")
        clipboard.setMimeData(_file_mime(doc))
        composer.field.paste()
        assert [i.name for i in composer.strip.items] == [PASTED_NAME, "minutes.txt"]
        clipboard.setText("plain words")
        composer.field.paste()
        assert composer.text() == "plain words"  # text is still pasted as text
        composer.submit()
        await wait_until(lambda: len(harness.client.sent_files) == 2)
        first = harness.client.sent_files[0]
        assert first[0] == cid and first[1] == PASTED_NAME and first[3] == "plain words"
        assert isinstance(first[2], bytes) and decode_image(first[2]) is not None

    run(body())


def test_a_file_too_large_is_refused_with_a_toast_and_the_others_still_go(
    harness: Harness, run: Any, tmp_path: Path
) -> None:
    async def body() -> None:
        window, _cid = await open_chat(harness)
        harness.client.max_file_bytes = 5000
        big, small = files(tmp_path, "big.iso", "small.txt", size=6000)
        small.write_bytes(b"ok")
        rows = window.pane.model.rowCount()
        window.pane.composer.add_paths([big, small])
        window.pane.composer.submit()
        await wait_until(lambda: window.toast.isVisible())
        assert window.toast.text() == AttachmentTooLargeError.default_user_message
        await wait_until(lambda: window.pane.model.rowCount() == rows + 1)
        assert [n for _c, n, _s, _cap in harness.client.sent_files] == ["small.txt"]

    run(body())


# -- file cards --------------------------------------------------------------------------------


def test_progress_updates_the_card_and_the_spoken_text(harness: Harness, run: Any) -> None:
    async def body() -> None:
        window, cid = await open_chat(harness)
        message = harness.client.receive_file(
            cid,
            ALICE,
            "trail.zip",
            b"z" * 1000,
            size=2_000_000,
            state=TransferState.DOWNLOADING,
        )
        await wait_until(lambda: row_of(window, message.id) >= 0)
        for done in (100_000, 500_000, 1_000_000):
            harness.client.report_progress(message.id, done)
        await wait_until(lambda: view_of(window, message.id).attachment.done == 1_000_000)
        view = view_of(window, message.id)
        spoken = spoken_text(view)
        assert "trail.zip, file, 2.0 MB, downloading 50%" in spoken
        index = window.pane.model.index(row_of(window, message.id))
        assert index.data(Qt.ItemDataRole.AccessibleTextRole) == spoken
        layout = window.pane.timeline.bubbles.layout_for(index)
        assert layout is not None and layout.attachment is not None
        assert layout.attachment.kind == "card"
        assert layout.attachment.detail == ["Downloading… 50% of 2.0 MB"]
        assert [a for _r, a in layout.attachment.actions] == ["cancel"]

    run(body())


def test_card_buttons_dispatch_download_cancel_retry_open_and_save(
    harness: Harness, run: Any, tmp_path: Path, opened_urls: list[QUrl]
) -> None:
    async def body() -> None:
        window, cid = await open_chat(harness)
        client = harness.client
        message = client.receive_file(cid, ALICE, "minutes.pdf", b"%PDF minutes")
        await wait_until(lambda: row_of(window, message.id) >= 0)
        click_action(window, message.id, "download")
        await wait_until(lambda: client.calls["download"] == 1)
        await wait_until(
            lambda: view_of(window, message.id).attachment.state is TransferState.DOWNLOADING
        )
        click_action(window, message.id, "cancel")
        await wait_until(
            lambda: view_of(window, message.id).attachment.state is TransferState.AVAILABLE
        )
        client.set_transfer(message.id, TransferState.FAILED, error="The file is damaged.")
        await wait_until(
            lambda: view_of(window, message.id).attachment.state is TransferState.FAILED
        )
        layout = window.pane.timeline.bubbles.layout_for(
            window.pane.model.index(row_of(window, message.id))
        )
        assert layout is not None and layout.attachment is not None
        assert layout.attachment.detail == ["The file is damaged."]
        assert layout.attachment.detail_error
        click_action(window, message.id, "retry")
        await wait_until(lambda: client.calls["retry_transfer"] == 1)
        client.set_transfer(message.id, TransferState.DOWNLOADED, done=12)
        await wait_until(
            lambda: view_of(window, message.id).attachment.state is TransferState.DOWNLOADED
        )
        click_action(window, message.id, "open")
        await wait_until(lambda: len(opened_urls) == 1)
        assert opened_urls[0].toLocalFile().endswith("minutes.pdf")
        click_action(window, message.id, "save")
        dialog = window.pane.save_dialog
        assert dialog is not None
        target = tmp_path / "saved.pdf"
        dialog.fileSelected.emit(str(target))
        dialog.reject()
        await wait_until(lambda: target.exists())
        assert target.read_bytes() == b"%PDF minutes"
        # the same from the keyboard: Enter on the row opens it; the menu has the rest
        timeline = window.pane.timeline
        timeline.setCurrentIndex(window.pane.model.index(row_of(window, message.id)))
        timeline.setFocus()
        QTest.keyClick(timeline, Qt.Key.Key_Return)
        await wait_until(lambda: len(opened_urls) == 2)
        menu = window.pane.menu_for(view_of(window, message.id))
        labels = [a.text() for a in menu.actions()]
        assert "Open" in labels and "Save as…" in labels
        assert "Edit" not in labels

    run(body())


def test_an_upload_can_be_cancelled_and_a_failed_one_retried(
    harness: Harness, run: Any, tmp_path: Path
) -> None:
    async def body() -> None:
        window, _cid = await open_chat(harness)
        client = harness.client
        window.pane.composer.add_paths(files(tmp_path, "slides.pdf"))
        window.pane.composer.submit()
        await wait_until(lambda: len(client.sent_files) == 1)
        mid = max(client.attachments_)
        await wait_until(lambda: row_of(window, mid) >= 0)
        client.set_transfer(mid, TransferState.UPLOAD_FAILED, error="The server has no room.")
        await wait_until(
            lambda: view_of(window, mid).attachment.state is TransferState.UPLOAD_FAILED
        )
        click_action(window, mid, "retry")
        await wait_until(lambda: client.calls["retry_transfer"] == 1)
        await wait_until(lambda: view_of(window, mid).attachment.state is TransferState.UPLOADING)
        rows = window.pane.model.rowCount()
        click_action(window, mid, "cancel")
        # a cancelled upload deletes the message: its row goes
        await wait_until(lambda: window.pane.model.rowCount() == rows - 1)
        assert row_of(window, mid) < 0

    run(body())


def test_a_failed_action_says_why_in_a_toast(harness: Harness, run: Any) -> None:
    from messenger.client import AttachmentUnavailableError

    async def body() -> None:
        window, cid = await open_chat(harness)
        client = harness.client
        message = client.receive_file(cid, ALICE, "gone.bin", b"x")
        await wait_until(lambda: row_of(window, message.id) >= 0)
        client.fail("download", AttachmentUnavailableError("404"))
        click_action(window, message.id, "download")
        await wait_until(lambda: window.toast.isVisible())
        assert window.toast.text() == AttachmentUnavailableError.default_user_message

    run(body())


# -- inline images ----------------------------------------------------------------------------


def test_an_image_shows_its_thumbnail_at_once_then_the_full_image(
    harness: Harness, run: Any
) -> None:
    async def body() -> None:
        window, cid = await open_chat(harness)
        client = harness.client
        thumb = scenic_image(320, 200, "JPEG")
        message = client.receive_file(
            cid,
            ALICE,
            "lake.png",
            scenic_image(1600, 1000),
            media_type="image/png",
            width=1600,
            height=1000,
            thumbnail=thumb,
        )
        await wait_until(lambda: row_of(window, message.id) >= 0)
        timeline = window.pane.timeline
        images = timeline.bubbles.images
        index = window.pane.model.index(row_of(window, message.id))
        layout = timeline.bubbles.layout_for(index)
        assert layout is not None and layout.attachment is not None
        assert layout.attachment.kind == "image"
        # fitted in 320x320 keeping the aspect
        assert layout.attachment.display == QSize(IMAGE_BOX, 200)
        assert images.thumbnail(view_of(window, message.id)) is not None
        assert [a for _r, a in layout.attachment.actions] == ["download"]
        timeline.viewport().repaint()
        assert client.calls["attachment_bytes"] == 0  # not on this device yet
        assert "lake.png, image, " in spoken_text(view_of(window, message.id))
        client.set_transfer(message.id, TransferState.DOWNLOADED, done=100)
        await wait_until(lambda: images._full.get(message.id) is not None)
        assert client.calls["attachment_bytes"] == 1
        full = images._full[message.id]
        # decoded at twice the bubble's size, not at the file's 1600x1000
        assert full.width() <= 2 * IMAGE_BOX and full.height() <= 2 * 200
        assert full.width() > 320
        # painting again reads from memory
        timeline.viewport().repaint()
        assert client.calls["attachment_bytes"] == 1 and images.decodes == 1

    run(body())


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (and no real pixels)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    crc = struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF)
    return PNG_MAGIC + struct.pack(">I", len(ihdr)) + chunk + crc


@pytest.mark.parametrize(
    "data",
    [b"\x89PNG but not really", _png_header(40_000, 40_000), _png_header(16_385, 10)],
    ids=["garbage", "bomb", "too-wide"],
)
def test_a_malformed_or_huge_image_falls_back_to_the_file_card(
    harness: Harness, run: Any, data: bytes
) -> None:
    async def body() -> None:
        window, cid = await open_chat(harness)
        client = harness.client
        message = client.receive_file(
            cid,
            ALICE,
            "evil.png",
            data,
            media_type="image/png",
            width=800,
            height=600,
            state=TransferState.DOWNLOADED,
            thumbnail=b"\xff\xd8 not a jpeg",
        )
        images = window.pane.timeline.bubbles.images
        await wait_until(lambda: images.broken(message.id))
        index = window.pane.model.index(row_of(window, message.id))
        layout = window.pane.timeline.bubbles.layout_for(index)
        assert layout is not None and layout.attachment is not None
        assert layout.attachment.kind == "card"
        assert layout.attachment.detail == [BROKEN_TEXT]
        # the row was laid out again at its new height
        await wait_until(lambda: window.pane.timeline.visualRect(index).height() == layout.height)
        # Enter opens the file with the system's viewer instead of the image viewer
        view = view_of(window, message.id)
        assert window.pane.timeline.default_attachment_action(view) == "open"

    run(body())


def test_decoding_checks_the_header_first() -> None:
    assert decode_image(_png_header(40_000, 40_000)) is None
    assert decode_image(b"") is None
    small = decode_image(scenic_image(600, 400), QSize(100, 100))
    assert small is not None and small.width() == 100 and small.height() <= 100


def test_claimed_sizes_and_thumbnails_from_the_network_are_bounded(
    harness: Harness, run: Any
) -> None:
    async def body() -> None:
        window, cid = await open_chat(harness)
        client = harness.client
        huge_thumb = scenic_image(320, 320, "PNG") + b"\0" * MAX_THUMBNAIL_BYTES
        tall = client.receive_file(
            cid,
            ALICE,
            "tall.png",
            b"",
            media_type="image/png",
            width=10,
            height=10**9,
            thumbnail=huge_thumb,
        )
        await wait_until(lambda: row_of(window, tall.id) >= 0)
        view = view_of(window, tall.id)
        images = window.pane.timeline.bubbles.images
        assert images.thumbnail(view) is None  # over 48 KiB: never decoded
        layout = window.pane.timeline.bubbles.layout_for(
            window.pane.model.index(row_of(window, tall.id))
        )
        assert layout is not None and layout.attachment is not None
        assert layout.attachment.rect.height() <= IMAGE_BOX
        assert layout.attachment.rect.width() <= IMAGE_BOX + 8

    run(body())


def test_file_names_from_the_network_are_never_paths() -> None:
    assert _safe_name("../../etc/passwd") == "passwd"
    assert _safe_name("..\\..\\Windows\\system.ini") == "system.ini"
    assert _safe_name("/abs/olute") == "olute"
    assert _safe_name(".hidden") == "hidden"
    assert _safe_name("a\nb\x00c<d>.txt") == "abcd.txt"
    assert _safe_name("") == "file" and _safe_name("../") == "file"
    assert len(_safe_name("x" * 1000)) == 120


def test_human_sizes() -> None:
    assert format_size(0) == "0 bytes" and format_size(1) == "1 byte"
    assert format_size(999) == "999 bytes"
    assert format_size(4_200_000) == "4.2 MB"
    assert format_size(48_000) == "48 KB"
    assert format_size(2_140_000_000) == "2.1 GB"


# -- the viewer --------------------------------------------------------------------------------


def test_the_viewer_works_from_the_keyboard(harness: Harness, run: Any) -> None:
    async def body() -> None:
        window, cid = await open_chat(harness)
        client = harness.client
        message = client.receive_file(
            cid,
            ALICE,
            "summit.png",
            scenic_image(800, 600),
            media_type="image/png",
            width=800,
            height=600,
            state=TransferState.DOWNLOADED,
            thumbnail=scenic_image(160, 120, "JPEG"),
        )
        await wait_until(lambda: row_of(window, message.id) >= 0)
        timeline = window.pane.timeline
        timeline.setCurrentIndex(window.pane.model.index(row_of(window, message.id)))
        timeline.setFocus()
        QTest.keyClick(timeline, Qt.Key.Key_Return)
        viewer = window.pane.viewer
        assert viewer is not None and viewer.isVisible()
        assert viewer.accessibleName() == "Image viewer: summit.png"
        assert viewer.geometry() == window.rect()
        await wait_until(lambda: viewer.full_loaded)
        assert viewer.canvas.pixmap is not None and viewer.canvas.pixmap.width() == 800
        QTest.keyClick(viewer, Qt.Key.Key_Plus)
        assert viewer.canvas.zoom > 1
        before = QPointF(viewer.canvas.pan)
        QTest.keyClick(viewer, Qt.Key.Key_Left)
        assert viewer.canvas.pan != before
        QTest.keyClick(viewer, Qt.Key.Key_Minus)
        assert viewer.canvas.zoom == 1 and viewer.canvas.pan == QPointF(0, 0)
        QTest.keyClick(viewer, Qt.Key.Key_Plus)
        QTest.keyClick(viewer, Qt.Key.Key_0)
        assert viewer.canvas.zoom == 1
        # every button has a name and takes the focus by Tab
        names = [
            b.accessibleName()
            for b in (
                viewer.zoom_out_button,
                viewer.zoom_in_button,
                viewer.save_button,
                viewer.close_button,
            )
        ]
        assert names == ["Zoom out", "Zoom in", "Save image", "Close image viewer"]
        assert all(
            b.focusPolicy() & Qt.FocusPolicy.TabFocus
            for b in (viewer.save_button, viewer.close_button)
        )
        QTest.keyClick(viewer, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
        assert window.pane.save_dialog is not None
        window.pane.save_dialog.reject()
        viewer.close_button.setFocus()  # Esc works from a focused button too
        QTest.keyClick(viewer.close_button, Qt.Key.Key_Escape)
        assert window.pane.viewer is None
        await wait_until(lambda: timeline.hasFocus())

    run(body())


def test_the_viewer_says_so_when_the_image_cannot_be_shown(harness: Harness, run: Any) -> None:
    async def body() -> None:
        window, cid = await open_chat(harness)
        message = harness.client.receive_file(
            cid,
            ALICE,
            "bad.png",
            _png_header(30_000, 30_000),
            media_type="image/png",
            width=100,
            height=100,
            state=TransferState.DOWNLOADED,
        )
        await wait_until(lambda: row_of(window, message.id) >= 0)
        window.pane.open_viewer(view_of(window, message.id))
        viewer = window.pane.viewer
        assert viewer is not None
        await wait_until(lambda: viewer.canvas.message == "This image cannot be shown")
        assert not viewer.full_loaded
        viewer.close_viewer()

    run(body())


# -- the bridge ----------------------------------------------------------------------------------


def test_the_bridge_keeps_only_the_newest_progress_and_drops_expired_views(run: Any) -> None:
    async def body() -> None:
        client = FakeClient()
        ids = populate(client, _now())
        bridge = Bridge(client)
        progress: list[tuple[int, int, int, int]] = []
        received: list[list[int]] = []
        expired: list[tuple[int, list[int]]] = []
        bridge.transfer_progress.connect(lambda *a: progress.append(a))
        bridge.messages_received.connect(lambda cid, views: received.append([v.id for v in views]))
        bridge.messages_expired.connect(lambda cid, mids: expired.append((cid, list(mids))))
        bridge.start()
        cid = ids["alice"]
        message = client.receive_file(
            cid, ALICE, "big.bin", b"", size=1000, state=TransferState.DOWNLOADING
        )
        for done in range(0, 1001, 10):
            client.report_progress(message.id, done)
        await wait_until(lambda: bool(progress))
        assert progress == [(cid, message.id, 1000, 1000)]
        gone = client.receive(cid, ALICE, "secret that disappears")
        client.expire(cid, [gone.id])
        await wait_until(lambda: bool(expired))
        assert expired == [(cid, [gone.id])]
        assert all(gone.id not in batch for batch in received)
        await bridge.stop()

    run(body())


def test_dropping_on_a_read_only_conversation_is_refused(
    harness: Harness, run: Any, tmp_path: Path
) -> None:
    async def body() -> None:
        window, _cid = await open_chat(harness)
        pane = window.pane
        pane.stop_sending("This device was removed.")
        (doc,) = files(tmp_path, "x.txt")
        at = QPoint(10, 10)
        mime = _file_mime(doc)  # kept: the event holds only a pointer to it
        enter = QDragEnterEvent(
            at,
            Qt.DropAction.CopyAction,
            mime,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier(0),
        )
        QApplication.sendEvent(pane, enter)
        assert not enter.isAccepted()
        assert pane.composer.add_paths([doc]) == 0
        assert not pane.composer.attach_button.isEnabled()
        await asyncio.sleep(0)

    run(body())


def test_every_new_control_has_a_name(harness: Harness, run: Any, tmp_path: Path) -> None:
    async def body() -> None:
        window, _cid = await open_chat(harness)
        pane = window.pane
        pane.composer.add_paths(files(tmp_path, "a.txt"))
        widgets: list[QWidget] = [
            pane.composer.attach_button,
            pane.header.timer,
            pane.composer.strip,
            pane.composer.strip.chips[0].remove,
        ]
        for widget in widgets:
            assert widget.accessibleName(), widget
            assert widget.isVisible()

    run(body())


def test_previews_and_notifications_name_the_file(harness: Harness, run: Any) -> None:
    from ui.app import notification_text
    from ui.models.conversation_list import preview_text
    from ui.preferences import NotificationContent

    async def body() -> None:
        window, cid = await open_chat(harness)
        bare = harness.client.receive_file(cid, ALICE, "route.gpx", b"<gpx/>")
        captioned = harness.client.receive_file(
            cid, ALICE, "lake.png", b"", caption="Look at this", media_type="image/png"
        )
        await wait_until(lambda: row_of(window, captioned.id) >= 0)
        bare_view, captioned_view = view_of(window, bare.id), view_of(window, captioned.id)
        assert preview_text(bare_view) == "📎 route.gpx"
        assert preview_text(captioned_view) == "📎 Look at this"
        full = notification_text(NotificationContent.FULL, bare_view, "Alice Martin")
        assert full == ("Alice Martin", "📎 route.gpx")
        hidden = notification_text(NotificationContent.SENDER, bare_view, "Alice Martin")
        assert "route.gpx" not in hidden[1]

    run(body())


def test_file_names_cannot_spoof_or_break_the_card(harness: Harness, run: Any) -> None:
    from ui.models.message_list import display_name

    assert display_name("photo\u202egpj.exe") == "photo\ufffdgpj.exe"
    assert display_name("a\nb\x00c") == "a\ufffdb\ufffdc"
    assert display_name("") == "file"
    assert len(display_name("y" * 5000)) == 255

    async def body() -> None:
        window, cid = await open_chat(harness)
        message = harness.client.receive_file(cid, ALICE, "invoice\u202efdp.exe", b"MZ")
        await wait_until(lambda: row_of(window, message.id) >= 0)
        spoken = spoken_text(view_of(window, message.id))
        assert "\u202e" not in spoken and "invoice\ufffdfdp.exe, file" in spoken

    run(body())


def test_a_thumbnail_claiming_a_huge_size_is_not_decoded() -> None:
    from ui.widgets.image_cache import ImageCache

    class View:
        id = 7
        attachment = type("A", (), {"thumbnail": _png_header(10_000, 4_000)})()

    cache = ImageCache()
    assert cache.thumbnail(View()) is None  # type: ignore[arg-type]


def test_tab_reaches_the_new_controls(harness: Harness, run: Any, tmp_path: Path) -> None:
    async def body() -> None:
        window, _cid = await open_chat(harness)
        pane = window.pane
        pane.composer.add_paths(files(tmp_path, "a.txt"))
        window.activateWindow()
        pane.composer.field.setFocus()
        await wait_until(lambda: pane.composer.field.hasFocus())
        wanted = {
            pane.composer.attach_button,
            pane.header.timer,
            pane.composer.strip.chips[0].remove,
        }
        seen = []
        for _ in range(80):
            QTest.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
            focused = QApplication.focusWidget()
            assert focused is not None
            seen.append(focused)
            if wanted <= set(seen):
                break
        assert wanted <= set(seen)
        assert all(w.accessibleName() for w in wanted)

    run(body())
