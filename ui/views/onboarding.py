"""First run: choose a server, create an anonymous account, set the passphrase.

One centred card per step (ui-design.md, "Screens besides the main
window"): **server** (a URL, or an invite link whose server part is used
and whose contact is added after sign-up; or "Run a server on this
computer"), **account** (an optional handle and name; an invite-code field
appears when the server refuses sign-up without one), **recovery
passphrase** (what it is for, a live strength check with the client's own
rule), **working** (progress while the store is made and the server's proof
of work is solved), **done** (the address, and the keyring's status in
plain words). Or **restore** a backup file into this profile. Or **link**
this computer to an account that already has a device (docs/devices.md §2):
the code the other device shows (or its whole ``messenger://link`` URI),
the server, a name for this computer, then the passphrase and the link's
stages (:class:`~ui.views.link_device.LinkAccountCard`).

Everything awaits the client through :func:`ui.tasks.spawn`; the window
never freezes. The view emits :attr:`OnboardingView.finished` with the
open :class:`~messenger.client.MessengerClient` that has an account.
"""

from __future__ import annotations

import asyncio
import math
import unicodedata
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent, QPainter, QPaintEvent, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from messenger.client import (
    AccountInfo,
    ClientError,
    HandleTakenError,
    InsecureServerAddressError,
    InvalidAddressError,
    InvalidServerAddressError,
    MessengerClient,
    NetworkError,
    ProfileExistsError,
    Profiles,
    SignupRefusedError,
    WeakPassphraseError,
    WrongBackupPassphraseError,
    WrongPassphraseError,
    read_backup_info,
    restore_backup,
)
from ui.resources import app_icon, icon_pixmap
from ui.tasks import spawn
from ui.theme import colors
from ui.widgets.progress import ProgressIndicator

#: The width of an onboarding card (ui-design.md: 420-480 px).
CARD_WIDTH = 460
#: The client's rule for a new passphrase (WeakPassphraseError below it).
MIN_PASSPHRASE_LENGTH = 8
#: A restore's progress: the backup passphrase checked, then the copy (the
#: client's fraction) up to the last step, opening the restored profile.
RESTORE_CHECKED = 0.15
RESTORE_COPIED = 0.95

KEYRING_YES = "Your key is kept in the system keyring, so the app opens without the passphrase."
KEYRING_NO = "There is no system keyring: you will type the passphrase each time the app starts."
ANONYMOUS = "No phone number or email. Your account is a key on this computer."


class LocalServerStarter(Protocol):
    """What "Run a server on this computer" needs (``ui.local_server``)."""

    async def start(self) -> str: ...


# -- small building blocks shared by the screens -------------------------------------------


#: What choosing plain http:// means, under its check box.
INSECURE_HTTP_NOTE = (
    "Only for a server on a network you trust, such as your home or office. Messages "
    "stay end-to-end encrypted, but anyone on the network can see that you use this "
    "server and when. This choice is kept for this account."
)


def label(text: str, cls: str = "", *, wrap: bool = True, parent: QWidget | None = None) -> QLabel:
    """A QLabel styled by the theme's ``class`` property."""
    widget = QLabel(text, parent)
    if cls:
        widget.setProperty("class", cls)
    widget.setWordWrap(wrap)
    widget.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
    return widget


def button(text: str, cls: str = "secondary", *, accessible: str | None = None) -> QPushButton:
    """A QPushButton styled by the theme's ``class`` property."""
    widget = QPushButton(text)
    widget.setProperty("class", cls)
    widget.setAccessibleName(accessible or text.replace("&", ""))
    widget.setCursor(Qt.CursorShape.PointingHandCursor)
    # Enter in a dialog presses only the button made default on purpose, never
    # whichever button happens to be first (a field's own Enter action stays its own).
    widget.setAutoDefault(False)
    return widget


def line_edit(accessible: str, placeholder: str = "", *, secret: bool = False) -> QLineEdit:
    widget = QLineEdit()
    widget.setAccessibleName(accessible)
    widget.setPlaceholderText(placeholder)
    if secret:
        widget.setEchoMode(QLineEdit.EchoMode.Password)
        widget.setInputMethodHints(
            Qt.InputMethodHint.ImhHiddenText
            | Qt.InputMethodHint.ImhNoPredictiveText
            | Qt.InputMethodHint.ImhSensitiveData
        )
    return widget


def error_label() -> QLabel:
    """An inline error line, hidden until it has something to say."""
    widget = label("", "error")
    widget.setAccessibleName("Error")
    widget.hide()
    return widget


def show_error(widget: QLabel, text: str | None) -> None:
    widget.setText(text or "")
    widget.setVisible(bool(text))


def busy_bar(accessible: str) -> QProgressBar:
    """An indeterminate progress bar (for work that reports no fraction)."""
    bar = QProgressBar()
    bar.setRange(0, 0)
    bar.setTextVisible(False)
    bar.setFixedHeight(6)
    bar.setAccessibleName(accessible)
    return bar


def centred_scroll(column: QVBoxLayout, parent: QWidget | None = None) -> QScrollArea:
    """A frameless scroll area that centres ``column`` (cards) in the window.

    The scroll area keeps a small, fixed minimum size, so a card that
    grows (an error line appears) never changes the window's size limits,
    and a small screen (1366x768) can still reach every button.
    """
    area = QScrollArea(parent)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setWidgetResizable(True)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
    inner = QWidget()
    inner.setObjectName("centredPage")
    outer = QVBoxLayout(inner)
    outer.setContentsMargins(16, 24, 16, 24)
    outer.addStretch(1)
    row = QHBoxLayout()
    row.addStretch(1)
    row.addLayout(column)
    row.addStretch(1)
    outer.addLayout(row)
    outer.addStretch(2)
    area.setWidget(inner)
    return area


def divider(text: str) -> QHBoxLayout:
    """A thin line, a word, a thin line ("or")."""
    row = QHBoxLayout()
    row.setSpacing(12)
    for index in range(3):
        if index == 1:
            row.addWidget(label(text, "caption", wrap=False))
            continue
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        line.setProperty("class", "caption")
        line.setStyleSheet("color: palette(mid);")
        row.addWidget(line, 1)
    return row


class Card(QFrame):
    """One onboarding step: a rounded surface with a title and a body."""

    def __init__(
        self,
        title: str,
        subtitle: str = "",
        parent: QWidget | None = None,
        *,
        picture: QPixmap | None = None,
    ) -> None:
        super().__init__(parent)
        self.setProperty("class", "card")
        self.setFixedWidth(CARD_WIDTH)
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Maximum)
        self.body = QVBoxLayout(self)
        self.body.setContentsMargins(32, 28, 32, 28)
        self.body.setSpacing(12)
        if picture is not None and not picture.isNull():
            image = QLabel()
            image.setPixmap(picture)
            image.setStyleSheet("background: transparent; border: none;")
            self.body.addWidget(image)
        self.title = label(title, "title")
        self.title.setAccessibleName(title)
        self.body.addWidget(self.title)
        if subtitle:
            self.body.addWidget(label(subtitle, "muted"))
        self.body.addSpacing(4)

    def buttons(self, *widgets: QWidget) -> QHBoxLayout:
        row = QHBoxLayout()
        row.setSpacing(8)
        row.addStretch(1)
        for widget in widgets:
            row.addWidget(widget)
        self.body.addSpacing(8)
        self.body.addLayout(row)
        return row


# -- the passphrase strength check ----------------------------------------------------------


def passphrase_strength(passphrase: str) -> int:
    """0 (refused: the client's length rule) to 4 (strong), from a rough entropy guess.

    The guess counts the character classes used and the length, and
    discounts repeated characters; it is advice, not a guarantee.
    """
    text = unicodedata.normalize("NFC", passphrase)
    if len(text) < MIN_PASSPHRASE_LENGTH:
        return 0
    pool = 0
    if any(c.islower() for c in text):
        pool += 26
    if any(c.isupper() for c in text):
        pool += 26
    if any(c.isdigit() for c in text):
        pool += 10
    if any(c.isspace() for c in text):
        pool += 1
    if any(not c.isalnum() and not c.isspace() for c in text):
        pool += 33
    if any(ord(c) > 127 for c in text):
        pool += 100
    distinct = len(set(text))
    effective = min(len(text), distinct * 2)
    bits = effective * math.log2(max(pool, 2))
    if bits < 40:
        return 1
    if bits < 60:
        return 2
    if bits < 80:
        return 3
    return 4


STRENGTH_WORDS = ("Too short", "Weak", "Fair", "Good", "Strong")


class StrengthMeter(QWidget):
    """Four segments and a word; the segments use the palette's accent."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._score = 0
        self._empty = True
        self.setFixedHeight(6)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setAccessibleName("Passphrase strength")

    def set_score(self, score: int, *, empty: bool = False) -> None:
        self._score = score
        self._empty = empty
        self.setAccessibleDescription("" if empty else STRENGTH_WORDS[score])
        self.update()

    def score(self) -> int:
        return self._score

    def sizeHint(self) -> QSize:
        return QSize(200, 6)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen)
        gap = 6.0
        width = (self.width() - 3 * gap) / 4
        theme = colors()
        on = theme.danger if self._score <= 1 else theme.accent
        off = theme.border
        for i in range(4):
            painter.setBrush(on if (not self._empty and i < self._score) else off)
            painter.drawRoundedRect(QRectF(i * (width + gap), 0, width, self.height()), 3, 3)
        painter.end()


class PassphraseFields(QWidget):
    """A new passphrase twice, with the strength meter and the client's rule live."""

    changed = Signal()

    def __init__(self, what: str = "Recovery passphrase", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        self.first = line_edit(what, what, secret=True)
        self.second = line_edit(f"Repeat the {what.lower()}", "Repeat it", secret=True)
        self.meter = StrengthMeter()
        self.verdict = label("", "caption")
        self.verdict.setAccessibleName("Passphrase strength")
        layout.addWidget(self.first)
        layout.addWidget(self.meter)
        layout.addWidget(self.verdict)
        layout.addWidget(self.second)
        self.first.textChanged.connect(self._update)
        self.second.textChanged.connect(self._update)
        self._update()

    def _update(self) -> None:
        text = self.first.text()
        score = passphrase_strength(text)
        self.meter.set_score(score, empty=not text)
        if not text:
            self.verdict.setText("At least 8 characters. A few unrelated words work well.")
        elif score == 0:
            self.verdict.setText(WeakPassphraseError.default_user_message)
        else:
            self.verdict.setText(f"Strength: {STRENGTH_WORDS[score].lower()}")
        self.changed.emit()

    def problem(self) -> str | None:
        """Why the passphrase cannot be used yet (None: it can)."""
        text = self.first.text()
        if passphrase_strength(text) == 0:
            return WeakPassphraseError.default_user_message
        if self.second.text() != text:
            return "The two passphrases are not the same."
        return None

    def passphrase(self) -> str:
        return self.first.text()

    def clear(self) -> None:
        self.first.clear()
        self.second.clear()


# -- the view ----------------------------------------------------------------------------------


def invite_server(text: str) -> str | None:
    """The server named by an invite link ``messenger://add?server=...`` (None: not one)."""
    value = text.strip()
    if not value.lower().startswith("messenger://"):
        return None
    server = parse_qs(urlsplit(value).query).get("server", [""])[0]
    return server or None


class OnboardingView(QWidget):
    """The first-run screens; :attr:`finished` carries the open client."""

    finished = Signal(object)  # MessengerClient

    def __init__(
        self,
        data_dir: Path | None,
        profile_name: str,
        local_server: LocalServerStarter,
        parent: QWidget | None = None,
        *,
        kdf: Any = None,
        client: MessengerClient | None = None,
        server_url: str | None = None,
    ) -> None:
        """``kdf``: scrypt parameters for the new store (tests pass cheap ones).

        ``server_url``: a server (or invite link) to offer in the first step,
        from ``--server``, ``--local-server`` or a ``messenger:`` link.

        ``client``: the open store of a profile whose first run stopped before
        sign-up (unlocked already); the passphrase step is then skipped.
        """
        super().__init__(parent)
        self.setAccessibleName("Welcome to Messenger")
        self._data_dir = data_dir
        self._profile_name = profile_name
        self._local_server = local_server
        self._kdf = kdf
        self._client: MessengerClient | None = client
        self._server_url = ""
        self._preset_server = (server_url or "").strip()
        self._invite_link: str | None = None
        #: The link code of the "Link to an existing account" path (None: sign-up).
        self._link_code: Any = None
        self._task: asyncio.Task[Any] | None = None
        self._cards: list[Card] = []
        self._column = QVBoxLayout()
        self._column.setSpacing(0)
        self._scroll_area = centred_scroll(self._column, self)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        outer.addWidget(self._scroll_area)
        self._build_server()
        self._build_account()
        self._build_passphrase()
        self._build_working()
        self._build_done()
        self._build_restore()
        self._build_link()
        self._show(self.server_card)

    # -- pages ---------------------------------------------------------------------------

    def _build_server(self) -> None:
        card = self.server_card = Card(
            "Welcome to Messenger",
            "Private conversations, end-to-end encrypted. First, choose the server "
            "that will pass your messages on. It cannot read them.",
            picture=app_icon().pixmap(QSize(56, 56)),
        )
        self.server_field = line_edit(
            "Server address or invite link", "https://chat.example.org or an invite link"
        )
        self.server_field.returnPressed.connect(self._server_next)
        self.server_error = error_label()
        card.body.addWidget(label("Server", "subtitle"))
        if self._preset_server:
            self.server_field.setText(self._preset_server)
        card.body.addWidget(self.server_field)
        card.body.addWidget(
            label("If someone sent you an invite link, paste it: you join their server.", "caption")
        )
        card.body.addWidget(self.server_error)
        # Shown only after the client refused a plain http:// server that is not
        # this computer: the user may choose it (a server on the local network).
        self.insecure_check = QCheckBox("Connect over plain http:// anyway")
        self.insecure_check.setAccessibleName("Connect over plain http:// anyway")
        self.insecure_check.setAccessibleDescription(INSECURE_HTTP_NOTE)
        self.insecure_note = label(INSECURE_HTTP_NOTE, "caption")
        self.insecure_check.hide()
        self.insecure_note.hide()
        self.server_field.textEdited.connect(self._forget_insecure_choice)
        card.body.addWidget(self.insecure_check)
        card.body.addWidget(self.insecure_note)
        self.server_busy = busy_bar("Starting the server")
        self.server_busy.hide()
        card.body.addWidget(self.server_busy)
        self.server_continue = button("Continue", "primary")
        self.server_continue.clicked.connect(self._server_next)
        card.buttons(self.server_continue)
        card.body.addSpacing(4)
        card.body.addLayout(divider("or"))
        self.local_button = button("Run a server on this computer")
        self.local_button.setToolTip("For trying Messenger out, or for a local network")
        self.local_button.clicked.connect(self._start_local)
        self.restore_button = button("Restore from a backup file")
        self.restore_button.clicked.connect(lambda: self._show(self.restore_card))
        self.link_button = button("Link to an existing account")
        self.link_button.setToolTip("You already use Messenger on another computer")
        self.link_button.clicked.connect(self._go_link)
        card.body.addWidget(self.link_button)
        card.body.addWidget(self.local_button)
        card.body.addWidget(self.restore_button)
        self._add(card)

    def _build_account(self) -> None:
        card = self.account_card = Card("Create your account", ANONYMOUS)
        self.server_note = label("", "caption")
        card.body.addWidget(self.server_note)
        self.name_field = line_edit("Your name (optional)", "Your name (optional)")
        card.body.addWidget(self.name_field)
        card.body.addWidget(label("Shown to the people you write to.", "caption"))
        self.handle_field = line_edit("Handle (optional)", "Handle (optional), e.g. alice")
        card.body.addWidget(self.handle_field)
        card.body.addWidget(
            label(
                "A handle lets people add you as handle@server. Leave it empty and share "
                "your invite link instead.",
                "caption",
            )
        )
        self.invite_label = label("Invite code", "subtitle")
        self.invite_field = line_edit("Invite code", "The invite code from the server's owner")
        self.invite_label.hide()
        self.invite_field.hide()
        card.body.addWidget(self.invite_label)
        card.body.addWidget(self.invite_field)
        self.account_error = error_label()
        card.body.addWidget(self.account_error)
        back = button("Back")
        back.clicked.connect(lambda: self._show(self.server_card))
        self.account_continue = button("Continue", "primary")
        self.account_continue.clicked.connect(self._account_next)
        for field in (self.name_field, self.handle_field, self.invite_field):
            field.returnPressed.connect(self._account_next)
        card.buttons(back, self.account_continue)
        self._add(card)

    def _build_passphrase(self) -> None:
        card = self.passphrase_card = Card(
            "Set a recovery passphrase",
            "It encrypts the messages kept on this computer, and it unlocks them when "
            "the system keyring cannot. Nobody can reset it for you, not even the server: "
            "write it down somewhere safe.",
        )
        self.passphrase_fields = PassphraseFields()
        self.passphrase_fields.second.returnPressed.connect(self._create)
        self.passphrase_fields.first.returnPressed.connect(self.passphrase_fields.second.setFocus)
        card.body.addWidget(self.passphrase_fields)
        self.passphrase_error = error_label()
        card.body.addWidget(self.passphrase_error)
        back = button("Back")
        back.clicked.connect(lambda: self._show(self._passphrase_back()))
        self.create_button = button("Create account", "primary")
        self.create_button.clicked.connect(self._create)
        card.buttons(back, self.create_button)
        self._add(card)

    def _build_working(self) -> None:
        card = self.working_card = Card("Creating your account…")
        self.working_text = label(
            "Solving the server's sign-up puzzle. It keeps mass-made accounts away and "
            "takes a few seconds, sometimes a minute.",
            "muted",
        )
        card.body.addWidget(self.working_text)
        self.signup_progress = ProgressIndicator("Creating your account", estimate=True)
        card.body.addWidget(self.signup_progress)
        # Shown while this computer is linked to an existing account.
        self.working_note = label(
            "Keep your other device open and online until this finishes. Your messages "
            "travel end-to-end encrypted: the server cannot read them.",
            "caption",
        )
        self.working_note.hide()
        card.body.addWidget(self.working_note)
        self._add(card)

    def _build_done(self) -> None:
        card = self.done_card = Card(
            "You're all set", picture=icon_pixmap("check", 40, color=colors().accent)
        )
        self.done_address = label("", "muted")
        self.done_address.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.done_keyring = label("", "muted")
        self.done_keyring.setAccessibleName("Keyring status")
        self.done_contact = label("", "muted")
        self.done_contact.hide()
        card.body.addWidget(self.done_address)
        card.body.addWidget(self.done_keyring)
        card.body.addWidget(self.done_contact)
        self.start_button = button("Start messaging", "primary")
        self.start_button.clicked.connect(self._finish)
        card.buttons(self.start_button)
        self._add(card)

    def _build_restore(self) -> None:
        card = self.restore_card = Card(
            "Restore from a backup",
            "A backup file holds your account and your messages, encrypted with the "
            "passphrase you chose when you made it.",
        )
        file_row = QHBoxLayout()
        self.backup_field = line_edit("Backup file", "Choose a backup file")
        self.browse_button = button("Choose…", accessible="Choose a backup file")
        self.browse_button.clicked.connect(self._browse)
        file_row.addWidget(self.backup_field, 1)
        file_row.addWidget(self.browse_button)
        card.body.addLayout(file_row)
        self.backup_passphrase = line_edit(
            "Backup passphrase", "The backup's passphrase", secret=True
        )
        card.body.addWidget(self.backup_passphrase)
        card.body.addWidget(label("New recovery passphrase for this computer", "subtitle"))
        self.restore_fields = PassphraseFields()
        card.body.addWidget(self.restore_fields)
        card.body.addWidget(
            label(
                "Afterwards, stop using the copy the backup was made from: two copies of "
                "one account would split its messages between them.",
                "caption",
            )
        )
        self.restore_error = error_label()
        card.body.addWidget(self.restore_error)
        self.restore_busy = ProgressIndicator("Restoring the backup")
        self.restore_busy.hide()
        card.body.addWidget(self.restore_busy)
        back = button("Back")
        back.clicked.connect(lambda: self._show(self.server_card))
        self.restore_start = button("Restore", "primary")
        self.restore_start.clicked.connect(self._restore)
        self.restore_fields.second.returnPressed.connect(self._restore)
        card.buttons(back, self.restore_start)
        self._add(card)

    def _build_link(self) -> None:
        from ui.views.link_device import JOINER_STAGES, LinkAccountCard, StageProgress

        card = self.link_card = LinkAccountCard(invite_server(self._preset_server) or "")
        if not card.server_field.text() and not self._preset_server.startswith("messenger:"):
            card.server_field.setText(self._preset_server)
        card.back_button.clicked.connect(lambda: self._show(self.server_card))
        card.continue_button.clicked.connect(self._link_next)
        for field in (card.code_field, card.server_field, card.name_field):
            field.returnPressed.connect(self._link_next)
        self.link_stages = StageProgress(self.signup_progress, self.working_text, JOINER_STAGES)
        self._add(card)

    # -- navigation ------------------------------------------------------------------------

    def _add(self, card: Card) -> None:
        card.hide()
        self._cards.append(card)
        self._column.addWidget(card)

    def current_card(self) -> Card:
        return self._current

    def use_link(self, link: str) -> bool:
        """A forwarded invite link fills the server step (False while work runs).

        A device link (``messenger://link?...``) opens "Link to an existing account".
        """
        from ui.views.link_device import is_device_link

        if self._busy() or self._current not in (
            self.server_card,
            self.account_card,
            self.link_card,
        ):
            return False
        if is_device_link(link):
            self.link_card.fill(link)
            show_error(self.link_card.error, None)
            self._go_link()
            self.link_card.continue_button.setFocus()
            return True
        self.server_field.setText(link)
        self.server_field.setCursorPosition(0)
        show_error(self.server_error, None)
        self._show(self.server_card)
        self.server_continue.setFocus()
        return True

    def _show(self, card: Card) -> None:
        self._current = card
        for other in self._cards:
            other.setVisible(other is card)
        first = {
            self.server_card: self.server_field,
            self.account_card: self.name_field,
            self.passphrase_card: self.passphrase_fields.first,
            self.restore_card: self.backup_field,
            self.done_card: self.start_button,
            self.link_card: self.link_card.code_field,
        }.get(card)
        if first is not None:
            first.setFocus()

    def _refit(self) -> None:
        """Nothing to do: the scroll area takes the card's new height."""

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape and not self._busy():
            back = {
                self.account_card: self.server_card,
                self.passphrase_card: self._passphrase_back(),
                self.restore_card: self.server_card,
                self.link_card: self.server_card,
            }.get(self.current_card())
            if back is not None:
                self._show(back)
                return
        super().keyPressEvent(event)

    def _take_error(self) -> BaseException | None:
        """The failed task's error; the task is dropped (its traceback refers to self)."""
        task, self._task = self._task, None
        return None if task is None or task.cancelled() else task.exception()

    def _busy(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- server ----------------------------------------------------------------------------

    def _forget_insecure_choice(self) -> None:
        """Another address: the choice to allow plain http:// was for the old one."""
        self.insecure_check.setChecked(False)
        self.insecure_check.hide()
        self.insecure_note.hide()

    def _server_next(self) -> None:
        text = self.server_field.text().strip()
        if not text:
            show_error(self.server_error, "Enter a server address, or paste an invite link.")
            self._refit()
            return
        server = invite_server(text)
        if text.lower().startswith("messenger://") and server is None:
            show_error(self.server_error, "This invite link has no server in it.")
            self._refit()
            return
        self._invite_link = text if server is not None else None
        self._server_url = server or text
        self._link_code = None
        show_error(self.server_error, None)
        self._go_account()

    def _go_account(self) -> None:
        self.create_button.setText("Create account")
        self.create_button.setAccessibleName("Create account")
        note = f"Server: {self._server_url}"
        if self._invite_link:
            note += ". The person who invited you becomes a contact."
        self.server_note.setText(note)
        self._show(self.account_card)

    def _start_local(self) -> None:
        if self._busy():
            return
        show_error(self.server_error, None)
        self.server_busy.show()
        self._set_enabled(self.server_card, False)
        self._refit()
        self._task = spawn(
            self._local_server.start(), on_done=self._local_started, on_error=self._local_failed
        )

    def _local_started(self, url: str) -> None:
        self.server_busy.hide()
        self._set_enabled(self.server_card, True)
        self._server_url = url
        self._invite_link = None
        self._link_code = None
        self.server_field.setText(url)
        self._go_account()

    def _local_failed(self, sentence: str) -> None:
        self._take_error()
        self.server_busy.hide()
        self._set_enabled(self.server_card, True)
        show_error(self.server_error, sentence)
        self._refit()

    # -- account and passphrase ---------------------------------------------------------------

    def _account_next(self) -> None:
        if self.invite_field.isVisible() and not self.invite_field.text().strip():
            show_error(self.account_error, "Enter the invite code.")
            self._refit()
            return
        show_error(self.account_error, None)
        if self._client is not None:  # the store exists: retry the sign-up only
            self._start_signup()
        else:
            self._show(self.passphrase_card)

    def _create(self) -> None:
        if self._busy():
            return
        problem = self.passphrase_fields.problem()
        show_error(self.passphrase_error, problem)
        self._refit()
        if problem is None:
            self._start_signup()

    def _start_signup(self) -> None:
        self.signup_progress.reset()
        self.working_note.setVisible(self._link_code is not None)
        if self._link_code is not None:
            self.link_stages.reset()
            self.working_card.title.setText("Linking this computer…")
            self.working_text.setText("Protecting the message store with your passphrase…")
        else:
            self.signup_progress.reset(estimate=True)
            self.working_card.title.setText("Creating your account…")
        self._show(self.working_card)
        self._task = spawn(self._signup(), on_done=self._signed_up, on_error=self._signup_failed)

    async def _open_store(self) -> MessengerClient:
        passphrase = self.passphrase_fields.passphrase()
        options: dict[str, Any] = {"data_dir": self._data_dir}
        if self._kdf is not None:
            options["kdf"] = self._kdf
        try:
            return await MessengerClient.create(self._profile_name, passphrase, **options)
        except ProfileExistsError:
            # An earlier first run stopped before sign-up: its store is protected by
            # the passphrase chosen then.
            try:
                return await MessengerClient.open(
                    self._profile_name, passphrase, data_dir=self._data_dir
                )
            except WrongPassphraseError:
                raise WrongPassphraseError(
                    "an earlier first run used another passphrase",
                    user_message="This profile was started before with another passphrase. "
                    "Enter that one.",
                ) from None

    async def _signup(self) -> AccountInfo:
        if self._client is None:
            self.working_text.setText("Protecting the message store with your passphrase…")
            self._client = await self._open_store()
        client = self._client
        existing = await client.account()
        if existing is not None:
            return existing
        if self._link_code is not None:
            return await self._link_account(client)
        self.working_text.setText(
            "Solving the server's sign-up puzzle. It keeps mass-made accounts away and "
            "takes a few seconds, sometimes a minute."
        )
        handle = self.handle_field.text().strip() or None
        invite = self.invite_field.text().strip() or None
        info = await client.create_account(
            self._server_url,
            handle,
            invite_code=invite,
            progress=self.signup_progress.set_fraction,
            allow_insecure_http=not self.insecure_check.isHidden()
            and self.insecure_check.isChecked(),
        )
        name = self.name_field.text().strip()
        if name:
            await client.set_display_name(name)
        return info

    def _signed_up(self, info: AccountInfo) -> None:
        assert self._client is not None
        self.signup_progress.finish()
        self.done_address.setText(
            f"Your address is {info.address}."
            if info.address
            else "You have no handle: people add you with your invite link, "
            "which you find under Contacts."
        )
        if self._link_code is not None:
            from ui.views.link_device import LINK_JOINED

            self.done_address.setText(LINK_JOINED)
        self.done_keyring.setText(KEYRING_YES if self._client.key_in_keyring else KEYRING_NO)
        self.passphrase_fields.clear()
        self._show(self.done_card)
        if self._invite_link:
            self.done_contact.setText("Adding the person who invited you…")
            self.done_contact.show()
            self._refit()
            self._task = spawn(
                self._client.add_contact(self._invite_link, check=True),
                on_done=lambda contact: self._contact_added(
                    contact.display_name or contact.handle or "your contact"
                ),
                on_error=self._contact_failed,
            )

    def _contact_added(self, name: str) -> None:
        self.done_contact.setText(f"{name} is now in your contacts.")
        self._refit()

    def _contact_failed(self, sentence: str) -> None:
        self._take_error()
        self.done_contact.setText(f"The invite link could not be used: {sentence}")
        self._refit()

    def _signup_failed(self, sentence: str) -> None:
        error = self._take_error()
        if self._link_code is not None and self._client is not None:
            self._show(self.link_card)
            show_error(self.link_card.error, sentence)
            self.link_card.code_field.setFocus()
        elif isinstance(error, SignupRefusedError) and error.code != "signup_closed":
            self.invite_label.show()
            self.invite_field.show()
            self._show(self.account_card)
            show_error(self.account_error, sentence)
            self.invite_field.setFocus()
        elif isinstance(error, HandleTakenError | InvalidAddressError):
            self._show(self.account_card)
            show_error(self.account_error, sentence)
            self.handle_field.setFocus()
            self.handle_field.selectAll()
        elif isinstance(error, InvalidServerAddressError | NetworkError):
            self._show(self.server_card)
            show_error(self.server_error, sentence)
            if isinstance(error, InsecureServerAddressError):
                self.insecure_check.show()
                self.insecure_note.show()
                self.insecure_check.setFocus()
        elif self._client is None:
            self._show(self.passphrase_card)
            show_error(self.passphrase_error, sentence)
        else:
            self._show(self.account_card)
            show_error(self.account_error, sentence)
        self._refit()

    def _finish(self) -> None:
        if self._client is None or self._busy():
            return
        client, self._client = self._client, None
        self.finished.emit(client)

    # -- link to an existing account (docs/devices.md §2) ------------------------------------

    def _go_link(self) -> None:
        if self._busy():
            return
        show_error(self.server_error, None)
        self._show(self.link_card)

    def _passphrase_back(self) -> Card:
        return self.link_card if self._link_code is not None else self.account_card

    def _link_next(self) -> None:
        """Check the form and the code's shape, then the passphrase (or the link)."""
        if self._busy():
            return
        from ui.views.link_device import parse_code

        card = self.link_card
        problem = card.problem()
        show_error(card.error, problem)
        if problem is not None:
            return
        try:
            code = parse_code(card.code_field.text(), card.server_field.text().strip())
        except ClientError as error:
            show_error(card.error, error.user_message)
            card.code_field.setFocus()
            card.code_field.selectAll()
            return
        self._link_code = code
        self._invite_link = None
        self._server_url = str(getattr(code, "server_url", "") or card.server_field.text())
        self.create_button.setText("Link this computer")
        self.create_button.setAccessibleName("Link this computer")
        if self._client is not None:  # the store exists already
            self._start_signup()
        else:
            self._show(self.passphrase_card)

    async def _link_account(self, client: MessengerClient) -> AccountInfo:
        self.working_text.setText("Connecting to your other device…")
        info: AccountInfo = await client.link_account(
            self._link_code,
            device_name=self.link_card.device_name(),
            progress=self.link_stages.report,
        )
        return info

    # -- restore ---------------------------------------------------------------------------

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Choose a backup file",
            str(Path.home()),
            "Messenger backups (*.msgbackup);;All files (*)",
        )
        if path:
            self.backup_field.setText(path)

    def _restore(self) -> None:
        if self._busy():
            return
        source = self.backup_field.text().strip()
        problem: str | None = None
        if not source:
            problem = "Choose the backup file."
        elif not self.backup_passphrase.text():
            problem = "Enter the backup's passphrase."
        else:
            problem = self.restore_fields.problem()
        show_error(self.restore_error, problem)
        if problem is not None:
            self._refit()
            return
        self.restore_busy.reset()
        self.restore_busy.show()
        self._set_enabled(self.restore_card, False)
        self._refit()
        self._task = spawn(
            self._restore_backup(Path(source)),
            on_done=self._restored,
            on_error=self._restore_failed,
        )

    async def _restore_backup(self, source: Path) -> MessengerClient:
        backup_passphrase = self.backup_passphrase.text()
        recovery = self.restore_fields.passphrase()
        await asyncio.to_thread(read_backup_info, source, backup_passphrase)
        # Checking the passphrase is the first step: the restore's own fraction
        # fills the rest, marshalled from its worker thread to this loop.
        self.restore_busy.set_fraction(RESTORE_CHECKED)
        loop = asyncio.get_running_loop()
        indicator = self.restore_busy

        def progress(fraction: float) -> None:
            share = RESTORE_CHECKED + (RESTORE_COPIED - RESTORE_CHECKED) * fraction
            loop.call_soon_threadsafe(indicator.set_fraction, share)

        options: dict[str, Any] = {"progress": progress}
        if self._kdf is not None:
            options["kdf"] = self._kdf
        profiles = Profiles(self._data_dir)
        await asyncio.to_thread(
            lambda: restore_backup(
                source, backup_passphrase, profiles, self._profile_name, recovery, **options
            )
        )
        client = await MessengerClient.open(self._profile_name, recovery, data_dir=self._data_dir)
        self.restore_busy.finish()
        if not client.has_account:
            await client.close()
            raise ClientError(
                "the backup has no account",
                user_message="This backup holds no account. Create a new one instead.",
            )
        return client

    def _restored(self, client: MessengerClient) -> None:
        self.restore_busy.hide()
        self._set_enabled(self.restore_card, True)
        self.backup_passphrase.clear()
        self.restore_fields.clear()
        self.finished.emit(client)

    def _restore_failed(self, sentence: str) -> None:
        self.restore_busy.hide()
        self._set_enabled(self.restore_card, True)
        error = self._take_error()
        show_error(self.restore_error, sentence)
        if isinstance(error, WrongBackupPassphraseError):
            self.backup_passphrase.setFocus()
            self.backup_passphrase.selectAll()
        self._refit()

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _set_enabled(card: Card, enabled: bool) -> None:
        for child in card.findChildren(QPushButton) + card.findChildren(QLineEdit):
            child.setEnabled(enabled)

    def error_text(self) -> str:
        """The error shown on the current card ("" if none), for tests and screen readers."""
        for widget in self.current_card().findChildren(QLabel):
            if widget.property("class") == "error" and widget.isVisibleTo(self):
                return widget.text()
        return ""


__all__ = [
    "ANONYMOUS",
    "KEYRING_NO",
    "KEYRING_YES",
    "LocalServerStarter",
    "OnboardingView",
    "PassphraseFields",
    "StrengthMeter",
    "passphrase_strength",
]
