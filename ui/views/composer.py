"""The composer: a rounded multi-line field, emoji button, send button.

ui-design.md, "Composer": the field grows to about six lines and then
scrolls; Enter sends, Shift+Enter starts a new line; the send button turns
accent-coloured when there is text; a reply or edit preview bar with a
close button sits above the field. Each conversation keeps its draft in
the client's store (``set_draft``/``draft``, so it survives restarts), and
typing notices go out through ``client.typing`` (started on the first key,
stopped after a pause or on send).

Files (docs/attachments.md §6): the attach button (Ctrl+Shift+A) opens a
file dialog for several files; a drop on the conversation or a paste of
files or an image adds them too. They wait in the strip above the field
(:mod:`ui.views.attachment_strip`) and go out on send, one
``client.send_file`` each, the text being the first one's caption.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from PySide6.QtCore import QMimeData, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QFontMetricsF, QImage, QKeyEvent, QKeySequence, QShortcut, QTextOption
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from messenger.client import ClientError, MessageView, MessengerClient

from .. import tasks, theme
from ..widgets.icons import themed_icon
from .attachment_strip import (
    AttachmentStrip,
    PendingFile,
    carries_attachments,
    local_files,
    pending_image,
    pending_path,
)
from .toast import report_to

MAX_LINES = 6
#: Stop the typing notice after this long without a key (ms).
TYPING_IDLE_MS = 5000
#: Save the draft this long after the last key (ms).
DRAFT_SAVE_MS = 800


def optional_class(module: str, name: str) -> Any:
    """A class from another helper's module, or None while it does not exist yet."""
    try:
        loaded = importlib.import_module(f"ui.views.{module}")
    except ImportError:
        return None
    return getattr(loaded, name, None)


class ComposerField(QPlainTextEdit):
    """The text field: Enter submits, Shift+Enter is a new line, Esc cancels."""

    submitted = Signal()
    cancelled = Signal()
    edit_last = Signal()
    #: Files or an image were pasted or dropped here: the ``QMimeData``.
    attachments_given = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ComposerField")
        self.setAccessibleName("Message")
        self.setPlaceholderText("Message")
        self.setTabChangesFocus(True)
        self.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.document().setDocumentMargin(4)
        self.textChanged.connect(self._fit)
        self._fit()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        mods = event.modifiers()
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            if mods & Qt.KeyboardModifier.ShiftModifier:
                self.insertPlainText("\n")
                return
            if not mods & ~Qt.KeyboardModifier.KeypadModifier:
                self.submitted.emit()
                return
        if key == Qt.Key.Key_Escape:
            self.cancelled.emit()
            event.ignore()
            return
        if key == Qt.Key.Key_Up and not self.toPlainText():
            self.edit_last.emit()
            return
        super().keyPressEvent(event)

    def canInsertFromMimeData(self, source: QMimeData) -> bool:
        return carries_attachments(source) or super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source: QMimeData) -> None:
        """A paste or drop of files or an image attaches them; text is inserted."""
        if carries_attachments(source):
            self.attachments_given.emit(source)
            return
        super().insertFromMimeData(source)

    def _fit(self) -> None:
        metrics = QFontMetricsF(self.font())
        line = metrics.lineSpacing()
        lines = max(1, min(MAX_LINES, round(self.document().size().height())))
        height = lines * line + 2 * self.document().documentMargin() + 14
        self.setFixedHeight(round(max(40.0, height)))

    def sizeHint(self) -> QSize:
        return QSize(200, self.height())


class Composer(QFrame):
    """Writes, replies to and edits messages of the open conversation."""

    #: A message was handed to the client (the view scrolls to the bottom).
    sent = Signal()
    #: The user pressed Up in an empty field: edit the last own message.
    edit_last_requested = Signal()

    def __init__(self, client: MessengerClient, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ComposerBar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._client = client
        self.conversation_id: int | None = None
        self.reply_to: MessageView | None = None
        self.editing: MessageView | None = None
        self._typing_sent = False
        self._draft_saved: str | None = None
        self._picker: Any = None

        outer = QVBoxLayout(self)
        outer.setContentsMargins(16, 8, 16, 12)
        outer.setSpacing(6)

        self.preview = QFrame(self)
        self.preview.setObjectName("ComposerPreview")
        self.preview.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        prow = QHBoxLayout(self.preview)
        prow.setContentsMargins(12, 6, 6, 6)
        texts = QVBoxLayout()
        texts.setSpacing(0)
        self.preview_title = QLabel(self.preview)
        self.preview_title.setProperty("class", "caption")
        self.preview_text = QLabel(self.preview)
        self.preview_text.setTextFormat(Qt.TextFormat.PlainText)
        texts.addWidget(self.preview_title)
        texts.addWidget(self.preview_text)
        prow.addLayout(texts, 1)
        self.preview_close = QToolButton(self.preview)
        self.preview_close.setIcon(themed_icon("close"))
        self.preview_close.setAccessibleName("Cancel reply or edit")
        self.preview_close.setToolTip("Cancel (Esc)")
        self.preview_close.clicked.connect(self.cancel_mode)
        prow.addWidget(self.preview_close)
        self.preview.hide()
        outer.addWidget(self.preview)
        self.strip = AttachmentStrip(self)
        self.strip.changed.connect(self._update_send)
        outer.addWidget(self.strip)
        #: The attach button's file dialog while it is open.
        self.file_dialog: QFileDialog | None = None

        row = QHBoxLayout()
        row.setSpacing(8)
        self.attach_button = QToolButton(self)
        self.attach_button.setIcon(themed_icon("attach", theme.colors().muted))
        self.attach_button.setIconSize(QSize(22, 22))
        self.attach_button.setFixedSize(40, 40)
        self.attach_button.setAccessibleName("Attach a file")
        self.attach_button.setToolTip("Attach a file (Ctrl+Shift+A)")
        self.attach_button.clicked.connect(self.choose_files)
        row.addWidget(self.attach_button, 0, Qt.AlignmentFlag.AlignBottom)
        attach_key = QShortcut(QKeySequence("Ctrl+Shift+A"), self)
        attach_key.setContext(Qt.ShortcutContext.WindowShortcut)
        attach_key.activated.connect(self.choose_files)
        self.emoji_button = QToolButton(self)
        self.emoji_button.setIcon(themed_icon("emoji", theme.colors().muted))
        self.emoji_button.setIconSize(QSize(22, 22))
        self.emoji_button.setFixedSize(40, 40)
        self.emoji_button.setAccessibleName("Insert emoji")
        self.emoji_button.setToolTip("Emoji")
        self.emoji_button.clicked.connect(self.open_emoji_picker)
        row.addWidget(self.emoji_button, 0, Qt.AlignmentFlag.AlignBottom)
        self.field = ComposerField(self)
        self.field.submitted.connect(self.submit)
        self.field.cancelled.connect(self.cancel_mode)
        self.field.edit_last.connect(self.edit_last_requested)
        self.field.textChanged.connect(self._text_changed)
        self.field.attachments_given.connect(self.add_mime)
        row.addWidget(self.field, 1)
        self.send_button = QToolButton(self)
        self.send_button.setObjectName("SendButton")
        self.send_button.setIcon(themed_icon("send", "#FFFFFF"))
        self.send_button.setIconSize(QSize(20, 20))
        self.send_button.setFixedSize(40, 40)
        self.send_button.setAccessibleName("Send")
        self.send_button.setToolTip("Send (Enter)")
        self.send_button.clicked.connect(self.submit)
        self.send_button.setEnabled(False)
        row.addWidget(self.send_button, 0, Qt.AlignmentFlag.AlignBottom)
        outer.addLayout(row)

        self._typing_timer = QTimer(self)
        self._typing_timer.setSingleShot(True)
        self._typing_timer.timeout.connect(self._stop_typing)
        self._draft_timer = QTimer(self)
        self._draft_timer.setSingleShot(True)
        self._draft_timer.timeout.connect(self.save_draft)

    # -- conversations and drafts ------------------------------------------------------------

    def set_conversation(self, conversation_id: int | None, draft: str | None = None) -> None:
        """Switch to ``conversation_id``: save the old draft, show the new one."""
        if conversation_id == self.conversation_id:
            return
        self.save_draft()
        self._stop_typing()
        self.conversation_id = conversation_id
        self.reply_to = self.editing = None
        self.preview.hide()
        self.strip.take()
        self.field.blockSignals(True)
        self.field.setPlainText(draft or "")
        self.field.blockSignals(False)
        self._draft_saved = draft or None
        self.field._fit()
        self._update_send()
        cursor = self.field.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        self.field.setTextCursor(cursor)

    def set_enabled_for(self, can_send: bool, reason: str = "") -> None:
        self.field.setReadOnly(not can_send)
        self.field.setPlaceholderText("Message" if can_send else reason)
        self._update_send()

    def text(self) -> str:
        return self.field.toPlainText()

    def save_draft(self) -> None:
        """Store the field's text as the draft of the current conversation."""
        self._draft_timer.stop()
        cid = self.conversation_id
        if cid is None or self.editing is not None:
            return
        text = self.field.toPlainText()
        value = text if text.strip() else None
        if value == self._draft_saved:
            return
        self._draft_saved = value
        self._run(lambda: self._client.set_draft(cid, value))

    def _run(self, make: Callable[[], Coroutine[Any, Any, Any]], *, quiet: bool = False) -> None:
        """Spawn ``make()`` unless the event loop is gone (a timer firing at exit)."""
        try:
            loop = asyncio.get_event_loop()
        except RuntimeError:
            return
        if loop.is_closed():
            return
        tasks.spawn(make(), on_error=_quiet if quiet else report_to(self))

    def shutdown(self) -> None:
        """Stop the timers (the window is closing); the draft is saved first."""
        self.save_draft()
        self._stop_typing()
        self._typing_timer.stop()
        self._draft_timer.stop()

    # -- typing ----------------------------------------------------------------------------

    def _text_changed(self) -> None:
        self._update_send()
        if self.conversation_id is None or self.editing is not None:
            return
        self._draft_timer.start(DRAFT_SAVE_MS)
        if self.field.toPlainText():
            if not self._typing_sent:
                self._typing_sent = True
                cid = self.conversation_id
                self._run(lambda: self._client.typing(cid, True), quiet=True)
            self._typing_timer.start(TYPING_IDLE_MS)
        else:
            self._stop_typing()

    def _stop_typing(self) -> None:
        self._typing_timer.stop()
        if self._typing_sent and self.conversation_id is not None:
            self._typing_sent = False
            cid = self.conversation_id
            self._run(lambda: self._client.typing(cid, False), quiet=True)
        self._typing_sent = False

    def _update_send(self) -> None:
        has_text = bool(self.field.toPlainText().strip()) or bool(self.strip.items)
        self.send_button.setEnabled(has_text and not self.field.isReadOnly())
        self.attach_button.setEnabled(not self.field.isReadOnly())

    # -- reply and edit ------------------------------------------------------------------

    def start_reply(self, view: MessageView) -> None:
        self.editing = None
        self.reply_to = view
        self.preview_title.setText(f"Replying to {view.sender_name}")
        self.preview_text.setText(_one_line(view.message.body or ""))
        self.preview.show()
        self.field.setFocus()

    def start_edit(self, view: MessageView) -> None:
        self.save_draft()
        self.reply_to = None
        self.editing = view
        self.preview_title.setText("Editing message")
        self.preview_text.setText(_one_line(view.message.body or ""))
        self.preview.show()
        self.field.blockSignals(True)
        self.field.setPlainText(view.message.body or "")
        self.field.blockSignals(False)
        self.field._fit()
        self._update_send()
        self.field.setFocus()
        cursor = self.field.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        self.field.setTextCursor(cursor)

    def cancel_mode(self) -> None:
        was_editing = self.editing is not None
        self.reply_to = self.editing = None
        self.preview.hide()
        if was_editing:
            self.field.blockSignals(True)
            self.field.setPlainText(self._draft_saved or "")
            self.field.blockSignals(False)
            self.field._fit()
            self._update_send()

    # -- sending ---------------------------------------------------------------------------

    def submit(self) -> None:
        cid = self.conversation_id
        text = self.field.toPlainText().strip()
        if cid is None or self.field.isReadOnly():
            return
        if self.strip.items and self.editing is None:
            files = self.strip.take()
            tasks.spawn(self._send_files(cid, files, text or None), on_error=report_to(self))
        elif not text:
            return
        elif self.editing is not None:
            target = self.editing
            if text != (target.message.body or ""):
                tasks.spawn(self._client.edit(cid, target.id, text), on_error=report_to(self))
        elif self.reply_to is not None:
            tasks.spawn(self._client.reply(cid, self.reply_to.id, text), on_error=report_to(self))
        else:
            tasks.spawn(self._client.send_text(cid, text), on_error=report_to(self))
        self._stop_typing()
        was_editing = self.editing is not None
        self.reply_to = self.editing = None
        self.preview.hide()
        self.field.blockSignals(True)
        self.field.clear()
        self.field.blockSignals(False)
        self.field._fit()
        self._update_send()
        if not was_editing:
            self._draft_saved = "\x00"  # force the cleared draft to be stored
            self.save_draft()
        self.sent.emit()

    async def _send_files(self, cid: int, files: list[PendingFile], caption: str | None) -> None:
        """Each file in turn (the caption with the first); a refusal is said and the rest go."""
        report = report_to(self)
        for i, item in enumerate(files):
            try:
                await self._client.send_file(
                    cid, item.source, name=item.name, caption=caption if i == 0 else None
                )
            except ClientError as error:
                report(error.user_message)

    # -- attachments -------------------------------------------------------------------------

    def choose_files(self) -> None:
        """The attach button: a file dialog for one or more files (opened, not exec'd)."""
        if self.conversation_id is None or self.field.isReadOnly():
            return
        if self.file_dialog is not None:
            self.file_dialog.raise_()
            return
        dialog = QFileDialog(self.window(), "Attach files")
        dialog.setFileMode(QFileDialog.FileMode.ExistingFiles)
        dialog.setDirectory(str(Path.home()))
        dialog.filesSelected.connect(lambda paths: self.add_paths([Path(p) for p in paths]))
        dialog.finished.connect(self._file_dialog_closed)
        self.file_dialog = dialog
        dialog.open()

    def _file_dialog_closed(self, _result: int) -> None:
        if self.file_dialog is not None:
            self.file_dialog.deleteLater()
        self.file_dialog = None

    def add_paths(self, paths: list[Path]) -> int:
        """Files to send with the next message; how many could be added."""
        if self.conversation_id is None or self.field.isReadOnly():
            return 0
        items = [item for item in map(pending_path, paths) if item is not None]
        if len(items) < len(paths):
            report_to(self)("Only files can be sent, and only ones that can be read.")
        added = self.strip.add(items)
        self.field.setFocus()
        return added

    def add_image(self, image: QImage) -> bool:
        """A pasted image, sent as PNG bytes named "Pasted image.png"."""
        item = pending_image(image)
        if item is None or self.conversation_id is None or self.field.isReadOnly():
            return False
        self.field.setFocus()
        return self.strip.add([item]) == 1

    def add_mime(self, mime: QMimeData) -> None:
        """A drop or a paste: its local files, else its image."""
        paths = local_files(mime)
        if paths:
            self.add_paths(paths)
        elif mime.hasImage():
            image = mime.imageData()
            if isinstance(image, QImage):
                self.add_image(image)

    # -- emoji -----------------------------------------------------------------------------

    def open_emoji_picker(self) -> None:
        picker_class = optional_class("emoji_picker", "EmojiPicker")
        if picker_class is None:
            return
        if self._picker is None:
            self._picker = picker_class(self.window())
            self._picker.picked.connect(self.insert_text)
        pos = self.emoji_button.mapToGlobal(self.emoji_button.rect().topLeft())
        self._picker.popup_at(pos)

    def insert_text(self, text: str) -> None:
        self.field.insertPlainText(text)
        self.field.setFocus()


def _quiet(sentence: str) -> None:
    """Typing notices that fail are not worth a toast."""


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 120 else line[:119] + "…"
