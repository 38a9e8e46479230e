"""Link a device: the existing device's side, and what the new device's side shares.

docs/devices.md §2. On the existing device, :class:`LinkDeviceDialog`
opens a link mailbox (``client.start_link()``) and shows its one-time code
twice: as a QR code of the ``messenger://link?server=...&code=...`` URI
(large, on a white tile in both themes) and as the short code to type, in a
selectable monospace label with a copy button, next to the server address
and a countdown to expiry. When the new device answers, the dialog asks
"Link “Desktop”?" -- a shoulder-surfer who photographed the code still
needs this click -- with a "Transfer message history" check box, then shows
the stages with a determinate bar, then "Desktop is linked". Expiry,
decline and errors show the client's sentence and "Try again". Cancel at
any time closes the link.

The new device's side is a path of the onboarding
(:mod:`ui.views.onboarding`); the helpers it uses live here:
:func:`device_link_parts` (a pasted URI fills the server),
:func:`default_device_name`, and :class:`StageProgress` (stages to one
monotonic fraction and a sentence).

The client's objects (``DeviceLink``, ``LinkOffer``, ``LinkProgress``) are
read through the small protocols below, so a fake client serves the tests
exactly as the real one serves the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
import socket
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QKeyEvent
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from messenger.client import LinkExpiredError
from ui.resources import icon_pixmap
from ui.tasks import spawn
from ui.theme import colors, notifier
from ui.views.onboarding import Card, busy_bar, button, error_label, label, line_edit
from ui.views.safety_number import mono_style
from ui.widgets.progress import ProgressIndicator
from ui.widgets.qr_code import QrCode

__all__ = [
    "LINK_ACCOUNT_INTRO",
    "DeviceLinkLike",
    "LinkAccountCard",
    "LinkDeviceDialog",
    "LinkingClient",
    "StageProgress",
    "countdown_text",
    "default_device_name",
    "device_link_parts",
]

QR_SIZE = 248
#: How long "Copied" stays on the copy button.
COPIED_MS = 1500

QR_DESCRIPTION = (
    "A QR code holding the link code and the server address. If the new device "
    "cannot scan it, type the code shown next to it instead."
)
STEPS = (
    "On the new computer, open Messenger and choose “Link to an existing account”.",
    "Scan this code, or type the code below and the server address.",
)
OFFER_WARNING = (
    "Only link a computer you set up yourself just now. It will read and send "
    "messages as you, in every conversation."
)
HISTORY_NOTE = "Your conversations and messages so far are copied to it, end-to-end encrypted."
EXPIRED_TEXT = "No device used the code in time. Try again for a new one."
DONE_TEXT = (
    "It now gets every new message of your conversations. You can see and remove "
    "your devices under Settings → Devices."
)

#: The share of the whole link each stage covers (start, end), for one bar.
STAGE_SPANS: dict[str, tuple[float, float]] = {
    "WAITING_FOR_DEVICE": (0.0, 0.03),
    "WAITING_FOR_APPROVAL": (0.03, 0.06),
    "REGISTERING": (0.06, 0.15),
    "TRANSFERRING_HISTORY": (0.15, 0.85),
    "JOINING_CONVERSATIONS": (0.85, 0.99),
    "DONE": (1.0, 1.0),
}
#: What each stage says on the existing device.
CREATOR_STAGES: dict[str, str] = {
    "WAITING_FOR_DEVICE": "Waiting for the new device…",
    "WAITING_FOR_APPROVAL": "Waiting for your approval…",
    "REGISTERING": "Registering the new device with the server…",
    "TRANSFERRING_HISTORY": "Sending your message history…",
    "JOINING_CONVERSATIONS": "Adding the new device to your conversations…",
    "DONE": "Done",
}
#: What each stage says on the new device.
JOINER_STAGES: dict[str, str] = {
    "WAITING_FOR_DEVICE": "Connecting to your other device…",
    "WAITING_FOR_APPROVAL": "Confirm on your other device that you want to link this one.",
    "REGISTERING": "Registering this computer with the server…",
    "TRANSFERRING_HISTORY": "Receiving your message history…",
    "JOINING_CONVERSATIONS": "Joining your conversations…",
    "DONE": "Done",
}


# -- what the dialog needs from the client ---------------------------------------------------


class LinkCodeLike(Protocol):
    @property
    def text(self) -> str: ...

    @property
    def uri(self) -> str: ...


class LinkOfferLike(Protocol):
    @property
    def device_name(self) -> str: ...


class LinkProgressLike(Protocol):
    @property
    def stage(self) -> Any: ...  # a LinkStage member

    @property
    def fraction(self) -> float | None: ...


class DeviceLinkLike(Protocol):
    """The client's ``DeviceLink``: one open link mailbox of the existing device."""

    @property
    def code(self) -> LinkCodeLike: ...

    @property
    def expires_at(self) -> int: ...

    async def wait_offer(self) -> Any: ...  # LinkOffer

    async def approve(
        self, *, history: bool = ..., progress: Callable[[Any], None] | None = ...
    ) -> Any: ...

    async def decline(self) -> Any: ...

    async def cancel(self) -> Any: ...


class LinkingClient(Protocol):
    async def start_link(self) -> Any: ...  # DeviceLink

    async def account(self) -> Any: ...  # AccountInfo | None


# -- helpers shared with the onboarding ----------------------------------------------------


def device_link_parts(text: str) -> tuple[str, str] | None:
    """``(server, code)`` of a ``messenger://link?server=...&code=...`` URI, else None.

    Only splits the URI to fill the form; the client parses and checks the code.
    """
    value = text.strip()
    if not value.lower().startswith("messenger://link"):
        return None
    try:
        parts = urlsplit(value)
        query = parse_qs(parts.query, max_num_fields=8)
    except ValueError:
        return None
    if parts.netloc.lower() != "link":
        return None
    server = query.get("server", [""])[0].strip()
    code = query.get("code", [""])[0].strip()
    if not server or not code:
        return None
    return server, code


def parse_code(text: str, server_url: str) -> Any:
    """The client's ``LinkCode`` of typed or pasted ``text`` (``LinkCodeError`` if malformed)."""
    from messenger.client import parse_link_code

    return parse_link_code(text, server_url=server_url)


def is_device_link(text: str) -> bool:
    return device_link_parts(text) is not None


def default_device_name() -> str:
    """A name for this computer: its host name, or its system ("Linux computer")."""
    with contextlib.suppress(OSError):
        host = socket.gethostname().split(".")[0].strip()
        if host and host.lower() not in ("localhost", "localhost6"):
            return host[:40]
    system = platform.system() or "My"
    return f"{system} computer"


def countdown_text(remaining_ms: int) -> str:
    """ "Expires in 9:41" (minutes:seconds), or "The code has expired"."""
    if remaining_ms <= 0:
        return "The code has expired"
    seconds = (remaining_ms + 999) // 1000
    return f"Expires in {seconds // 60}:{seconds % 60:02d}"


class StageProgress:
    """Turns ``LinkProgress`` reports into one sentence and one fraction that never goes back."""

    def __init__(self, indicator: ProgressIndicator, text: QLabel, texts: dict[str, str]) -> None:
        self._indicator = indicator
        self._text = text
        self._texts = texts
        self.stage = ""
        self.fraction = 0.0

    def reset(self) -> None:
        self.stage = ""
        self.fraction = 0.0
        self._indicator.reset(estimate=False)

    def report(self, progress: Any) -> None:
        """The client's ``progress`` callback (a ``LinkProgress``)."""
        stage = str(getattr(progress.stage, "name", progress.stage))
        start, end = STAGE_SPANS.get(stage, (self.fraction, self.fraction))
        within = progress.fraction
        share = start if within is None else start + (end - start) * min(max(within, 0.0), 1.0)
        self.stage = stage
        self._text.setText(self._texts.get(stage, ""))
        if stage == "DONE":
            self.fraction = 1.0
            self._indicator.finish()
            return
        self.fraction = max(self.fraction, share)
        self._indicator.set_fraction(self.fraction)


LINK_ACCOUNT_INTRO = (
    "Use this computer with the account you already have. On your other device, open "
    "Settings → Devices → Link a device: it shows a code."
)
LINK_JOINED = (
    "This computer is now a device of your account. Your conversations and contacts "
    "are here, and new messages arrive on every device."
)


class LinkAccountCard(Card):
    """The new device's form: the code (or the whole URI), the server, this computer's name."""

    def __init__(self, server_url: str = "", parent: QWidget | None = None) -> None:
        super().__init__("Link to your account", LINK_ACCOUNT_INTRO, parent)
        self.body.addWidget(label("Link code", "subtitle"))
        self.code_field = line_edit(
            "Link code", "XXXX-XXXX-XXXX-XXXX-XXXX-XXXX, or paste the messenger://link address"
        )
        self.code_field.setStyleSheet(mono_style().replace("font-size: 18px;", "font-size: 15px;"))
        self.code_field.setMaxLength(2048)
        self.code_field.textChanged.connect(self._code_changed)
        self.body.addWidget(self.code_field)
        self.body.addWidget(
            label("Letters and digits in any case; dashes and spaces do not matter.", "caption")
        )
        self.body.addWidget(label("Server", "subtitle"))
        self.server_field = line_edit("Server address", "https://chat.example.org")
        self.server_field.setText(server_url)
        self.body.addWidget(self.server_field)
        self.body.addWidget(label("Name of this computer", "subtitle"))
        self.name_field = line_edit("Name of this computer", "e.g. Work laptop")
        self.name_field.setMaxLength(64)
        self.name_field.setText(default_device_name())
        self.body.addWidget(self.name_field)
        self.body.addWidget(label("Shown in your list of devices, only to you.", "caption"))
        self.error = error_label()
        self.body.addWidget(self.error)
        self.back_button = button("Back")
        self.continue_button = button("Continue", "primary", accessible="Continue linking")
        self.buttons(self.back_button, self.continue_button)

    def _code_changed(self, text: str) -> None:
        parts = device_link_parts(text)
        if parts is None:
            return
        server, code = parts
        self.server_field.setText(server)
        self.code_field.blockSignals(True)
        self.code_field.setText(code)
        self.code_field.blockSignals(False)

    def fill(self, link: str) -> None:
        """A ``messenger://link`` URI (forwarded, pasted): the code and the server."""
        self.code_field.setText(link)
        self.code_field.setCursorPosition(0)

    def problem(self) -> str | None:
        """What is missing in the form (None: nothing)."""
        if not self.code_field.text().strip():
            return "Enter the link code your other device shows."
        if not self.server_field.text().strip():
            return "Enter the server address your other device uses."
        if not " ".join(self.name_field.text().split()):
            return "Give this computer a name."
        return None

    def device_name(self) -> str:
        return " ".join(self.name_field.text().split())


# -- the existing device's dialog -----------------------------------------------------------


class LinkDeviceDialog(QDialog):
    """Show a link code, approve the device that answers, follow the link to its end."""

    #: ``device name``: the device was linked.
    linked = Signal(str)

    def __init__(
        self,
        client: LinkingClient,
        parent: QWidget | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``clock``: seconds since the epoch (tests pass their own)."""
        super().__init__(parent)
        self.setWindowTitle("Link a device")
        self.setAccessibleName("Link a device")
        self.setModal(True)
        self.setMinimumSize(640, 440)
        self.resize(720, 480)
        self._client = client
        self._clock = clock
        self._link: Any = None
        self._task: asyncio.Task[Any] | None = None
        self._finished = False
        self._closed = False
        self.device_name = ""
        self.server_url = ""

        outer = QVBoxLayout(self)
        outer.setContentsMargins(28, 24, 28, 20)
        outer.setSpacing(12)
        self.pages = QStackedWidget()
        outer.addWidget(self.pages, 1)
        bottom = QHBoxLayout()
        bottom.addStretch(1)
        self.cancel_button = button("Cancel", accessible="Cancel linking")
        self.cancel_button.clicked.connect(self.reject)
        bottom.addWidget(self.cancel_button)
        outer.addLayout(bottom)

        self._build_starting()
        self._build_waiting()
        self._build_offer()
        self._build_progress()
        self._build_done()
        self._build_failed()

        notifier().changed.connect(self._retheme)
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self._tick)
        self.start()

    # -- pages -------------------------------------------------------------------------------

    def _page(self) -> QVBoxLayout:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(12)
        self.pages.addWidget(page)
        return layout

    def _centred(self, icon: str, color: Any) -> QVBoxLayout:
        layout = self._page()
        layout.setContentsMargins(56, 0, 56, 0)  # sentences in a readable measure
        layout.addStretch(1)
        picture = QLabel()
        picture.setPixmap(icon_pixmap(icon, 48, color=color, scale=self.devicePixelRatioF()))
        picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(picture)
        return layout

    def _build_starting(self) -> None:
        layout = self._page()
        layout.addStretch(1)
        title = label("Preparing a link code…", "subtitle")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(title)
        self.starting_bar = busy_bar("Preparing a link code")
        layout.addWidget(self.starting_bar)
        layout.addStretch(1)
        self.starting_page = layout.parentWidget()

    def _build_waiting(self) -> None:
        layout = self._page()
        self.waiting_page = layout.parentWidget()
        row = QHBoxLayout()
        row.setSpacing(28)
        self.qr = QrCode(
            size=QR_SIZE, accessible="Link code as a QR code", description=QR_DESCRIPTION
        )
        tile = QVBoxLayout()
        tile.addWidget(self.qr)
        tile.addStretch(1)
        row.addLayout(tile)
        column = QVBoxLayout()
        column.setSpacing(10)
        column.addWidget(label("Link a new device", "title"))
        for number, text in enumerate(STEPS, 1):
            step = label(f"{number}.  {text}", "muted")
            column.addWidget(step)
        column.addSpacing(6)
        column.addWidget(label("Link code", "caption"))
        code_row = QHBoxLayout()
        code_row.setSpacing(8)
        self.code_label = QLabel()
        self.code_label.setObjectName("LinkCode")
        self.code_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.code_label.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.code_label.setAccessibleName("Link code")
        self._style_code()
        code_row.addWidget(self.code_label, 1)
        self.copy_button = button("Copy", accessible="Copy the link code")
        self.copy_button.clicked.connect(self.copy_code)
        code_row.addWidget(self.copy_button, 0, Qt.AlignmentFlag.AlignTop)
        column.addLayout(code_row)
        column.addWidget(label("Server", "caption"))
        self.server_label = label("")
        self.server_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.server_label.setAccessibleName("Server address")
        column.addWidget(self.server_label)
        column.addStretch(1)
        waiting = QHBoxLayout()
        waiting.setSpacing(10)
        self.waiting_text = label("Waiting for the new device…", "muted", wrap=False)
        self.waiting_text.setAccessibleName("Status")
        waiting.addWidget(self.waiting_text)
        waiting.addStretch(1)
        self.countdown = label("", "caption", wrap=False)
        self.countdown.setAccessibleName("Time left")
        waiting.addWidget(self.countdown)
        column.addLayout(waiting)
        self.waiting_bar = busy_bar("Waiting for the new device")
        column.addWidget(self.waiting_bar)
        row.addLayout(column, 1)
        layout.addLayout(row, 1)

    def _build_offer(self) -> None:
        layout = self._centred("laptop", colors().accent)
        self.offer_page = layout.parentWidget()
        self.offer_title = label("", "title")
        self.offer_title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.offer_title)
        warning = label(OFFER_WARNING, "muted")
        warning.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(warning)
        box = QFrame()
        box.setProperty("class", "card")
        inner = QVBoxLayout(box)
        inner.setContentsMargins(16, 12, 16, 12)
        self.history_check = QCheckBox("Transfer message history")
        self.history_check.setAccessibleName("Transfer message history")
        self.history_check.setAccessibleDescription(HISTORY_NOTE)
        self.history_check.setChecked(True)
        inner.addWidget(self.history_check)
        note = label(HISTORY_NOTE, "caption")
        note.setContentsMargins(26, 0, 0, 0)
        inner.addWidget(note)
        centre = QHBoxLayout()
        centre.addStretch(1)
        box.setFixedWidth(440)
        centre.addWidget(box)
        centre.addStretch(1)
        layout.addLayout(centre)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.decline_button = button("Decline", accessible="Decline the new device")
        self.decline_button.clicked.connect(self.decline)
        self.approve_button = button("Link", "primary", accessible="Link the new device")
        self.approve_button.clicked.connect(self.approve)
        buttons.addWidget(self.decline_button)
        buttons.addWidget(self.approve_button)
        buttons.addStretch(1)
        layout.addSpacing(6)
        layout.addLayout(buttons)
        layout.addStretch(1)

    def _build_progress(self) -> None:
        layout = self._centred("laptop", colors().accent)
        self.progress_page = layout.parentWidget()
        self.progress_title = label("", "title")
        self.progress_title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.progress_title)
        self.stage_text = label("", "muted")
        self.stage_text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.stage_text.setAccessibleName("Step")
        layout.addWidget(self.stage_text)
        self.progress = ProgressIndicator("Linking the device")
        holder = QHBoxLayout()
        holder.addStretch(1)
        self.progress.setFixedWidth(420)
        holder.addWidget(self.progress)
        holder.addStretch(1)
        layout.addLayout(holder)
        keep = label("Keep both computers on and online until this finishes.", "caption")
        keep.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(keep)
        layout.addStretch(1)
        self.stages = StageProgress(self.progress, self.stage_text, CREATOR_STAGES)

    def _build_done(self) -> None:
        layout = self._centred("check", colors().accent)
        self.done_page = layout.parentWidget()
        self.done_title = label("", "title")
        self.done_title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.done_title)
        text = label(DONE_TEXT, "muted")
        text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(text)
        row = QHBoxLayout()
        row.addStretch(1)
        self.done_button = button("Done", "primary")
        self.done_button.clicked.connect(self.accept)
        row.addWidget(self.done_button)
        row.addStretch(1)
        layout.addSpacing(6)
        layout.addLayout(row)
        layout.addStretch(1)

    def _build_failed(self) -> None:
        layout = self._centred("alert", colors().danger)
        self.failed_page = layout.parentWidget()
        self.failed_title = label("The device was not linked", "title")
        self.failed_title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.failed_title)
        self.failed_text = label("", "muted")
        self.failed_text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.failed_text.setAccessibleName("Error")
        layout.addWidget(self.failed_text)
        row = QHBoxLayout()
        row.addStretch(1)
        self.retry_button = button("Try again", "primary", accessible="Try again with a new code")
        self.retry_button.clicked.connect(self.start)
        row.addWidget(self.retry_button)
        row.addStretch(1)
        layout.addSpacing(6)
        layout.addLayout(row)
        layout.addStretch(1)

    # -- state ------------------------------------------------------------------------------

    def state(self) -> str:
        """``starting``, ``waiting``, ``offer``, ``progress``, ``done`` or ``failed``."""
        return {
            self.starting_page: "starting",
            self.waiting_page: "waiting",
            self.offer_page: "offer",
            self.progress_page: "progress",
            self.done_page: "done",
            self.failed_page: "failed",
        }[self.pages.currentWidget()]

    def _show(self, page: QWidget | None, focus: QWidget | None = None) -> None:
        assert page is not None
        self.pages.setCurrentWidget(page)
        closing = page in (self.done_page, self.failed_page)
        self.cancel_button.setText("Close" if closing else "Cancel")
        self.cancel_button.setAccessibleName("Close" if closing else "Cancel linking")
        self.cancel_button.setVisible(page is not self.done_page)
        default = {
            self.offer_page: self.approve_button,
            self.done_page: self.done_button,
            self.failed_page: self.retry_button,
        }.get(page)
        for candidate in (self.approve_button, self.done_button, self.retry_button):
            candidate.setDefault(candidate is default)
        if focus is not None:
            focus.setFocus()
        elif default is not None:
            default.setFocus()

    def _run(self, coro: Any, on_done: Callable[[Any], None]) -> None:
        self._task = spawn(coro, on_done=on_done, on_error=self._failed)

    # -- steps ------------------------------------------------------------------------------

    def start(self) -> None:
        """Open a new link and show its code (also "Try again")."""
        if self._task is not None and not self._task.done():
            return
        self._close_link()
        self._finished = False
        self._closed = False
        self.device_name = ""
        self.copy_button.setText("Copy")
        self._show(self.starting_page)
        self._run(self._open(), self._opened)

    async def _open(self) -> Any:
        if not self.server_url:
            info = await self._client.account()
            if info is not None:
                self.server_url = str(info.server_url)
        return await self._client.start_link()

    def _retheme(self, _dark: bool) -> None:
        self._style_code()

    def _style_code(self) -> None:
        c = colors()
        self.code_label.setStyleSheet(
            mono_style().replace("font-size: 18px;", "font-size: 19px;")
            + f" font-weight: 600; background: {c.input.name()}; border-radius: 10px;"
            " padding: 10px 14px; line-height: 150%;"
        )

    def code_text(self) -> str:
        """The code as shown: two lines of three groups (copy gives it on one line)."""
        return self.code_label.text().replace("\n", "-")

    def _opened(self, link: Any) -> None:
        self._link = link
        groups = str(link.code.text).split("-")
        half = (len(groups) + 1) // 2
        self.code_label.setText("-".join(groups[:half]) + "\n" + "-".join(groups[half:]))
        self.code_label.setAccessibleDescription(" ".join(groups))
        self.qr.set_text(link.code.uri)
        parts = device_link_parts(link.code.uri)
        if parts is not None:
            self.server_url = parts[0]
        self.server_label.setText(self.server_url)
        self._tick()
        self._timer.start()
        self._show(self.waiting_page, self.copy_button)
        self._run(link.wait_offer(), self._offered)

    def remaining_ms(self) -> int:
        if self._link is None:
            return 0
        return int(self._link.expires_at) - int(self._clock() * 1000)

    def _tick(self) -> None:
        remaining = self.remaining_ms()
        self.countdown.setText(countdown_text(remaining))
        if remaining <= 0:
            self._timer.stop()

    def _offered(self, offer: Any) -> None:
        self._timer.stop()
        self.device_name = str(offer.device_name or "") or "New device"
        self.offer_title.setText(f"Link “{self.device_name}”?")
        self.offer_title.setAccessibleName(f"Link {self.device_name}?")
        self.history_check.setChecked(True)
        self._show(self.offer_page)
        QApplication.alert(self)  # the offer needs the user: flash the taskbar entry

    def approve(self) -> None:
        if self._link is None or self.state() != "offer":
            return
        self.progress_title.setText(f"Linking “{self.device_name}”…")
        self.stages.reset()
        self.stage_text.setText(CREATOR_STAGES["REGISTERING"])
        self._show(self.progress_page, self.cancel_button)
        self._run(
            self._link.approve(history=self.history_check.isChecked(), progress=self.stages.report),
            self._linked,
        )

    def _linked(self, _: object) -> None:
        self._finished = True
        self._link = None
        self.stages.report(_Done())
        self.done_title.setText(f"{self.device_name} is linked")
        self._show(self.done_page)
        self.linked.emit(self.device_name)

    def decline(self) -> None:
        if self._link is None or self.state() != "offer":
            return
        link, self._link = self._link, None
        spawn(link.decline(), on_error=lambda _sentence: None)
        self._show_failed(
            f"You declined “{self.device_name}”. The code no longer works.",
            title="Not linked",
        )

    def copy_code(self) -> None:
        text = self.code_text()
        if not text:
            return
        QGuiApplication.clipboard().setText(text)
        self.copy_button.setText("Copied")
        QTimer.singleShot(COPIED_MS, self.copy_button, lambda: self.copy_button.setText("Copy"))

    def _failed(self, sentence: str) -> None:
        if self._closed:
            return  # the dialog was closed: the link's end is not news
        task, self._task = self._task, None
        error = (
            task.exception() if task is not None and task.done() and not task.cancelled() else None
        )
        self._timer.stop()
        self._close_link()
        if isinstance(error, LinkExpiredError) and self.state() == "waiting":
            # The client's sentence speaks to the new device; this one made the code.
            self._show_failed(EXPIRED_TEXT, title="The code expired")
            return
        self._show_failed(sentence)

    def _show_failed(self, sentence: str, *, title: str = "The device was not linked") -> None:
        self.failed_title.setText(title)
        self.failed_text.setText(sentence)
        self._show(self.failed_page)

    def _close_link(self) -> None:
        """Close the open link, if any (the code stops working)."""
        link, self._link = self._link, None
        if link is not None and not self._finished:
            spawn(link.cancel(), on_error=lambda _sentence: None)

    def error_text(self) -> str:
        return self.failed_text.text() if self.state() == "failed" else ""

    # -- closing ------------------------------------------------------------------------------

    def _stop(self) -> None:
        self._closed = True
        self._timer.stop()
        task, self._task = self._task, None
        if self._link is not None and not self._finished:
            # The link's cancel() ends its own wait or approval, then closes the mailbox.
            self._close_link()
        elif task is not None and not task.done():
            task.cancel()

    def reject(self) -> None:
        self._stop()
        super().reject()

    def accept(self) -> None:
        self._stop()
        super().accept()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.state() == "offer":
            if self.decline_button.hasFocus():
                self.decline()
            else:
                self.approve()
            return
        super().keyPressEvent(event)


class _Done:
    """A final progress report (the approve call returned)."""

    stage = "DONE"
    fraction = 1.0
