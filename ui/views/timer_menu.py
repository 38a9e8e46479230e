"""The disappearing-messages timer: the header's button, its menu, a custom value.

docs/attachments.md §7. The timer is the group's agreed setting (a
GroupContext extension, RFC 9420 §12.1.7), so choosing one here awaits
``client.set_disappearing_timer`` and the header changes only when the
client reports the conversation changed -- every member then sees the
same value and a note saying who set it.

:class:`TimerButton` shows an hourglass, and the timer in short ("1h")
when one is on; its accessible name says it in words ("Disappearing
messages: 1 hour"). Its menu offers Off, 5 minutes, 1 hour, 1 day, 1 week
and "Custom…", which opens :class:`CustomTimerDialog` (a number and a
unit, from 10 seconds to 1 year). The menu pops up (never ``exec()``: a
nested loop under qasync would stall the app).
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QIntValidator, QKeyEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from messenger.client import DISAPPEARING_CHOICES, format_timer

from ..models.message_list import short_duration
from ..widgets.icons import themed_icon

#: The custom timer's range (seconds): 10 seconds to 1 year, as the client allows.
MIN_SECONDS = 10
MAX_SECONDS = 365 * 86_400
#: The custom dialog's units: (label, seconds).
UNITS: tuple[tuple[str, int], ...] = (
    ("seconds", 1),
    ("minutes", 60),
    ("hours", 3_600),
    ("days", 86_400),
    ("weeks", 604_800),
)


def timer_words(seconds: int) -> str:
    """ "Off", "5 minutes", "1 hour" (for menus and accessible names)."""
    text = format_timer(seconds)
    return text[:1].upper() + text[1:]


def timer_menu(parent: QWidget, current: int) -> QMenu:
    """The choices, the current one checked; each action's data is its seconds (-1: custom)."""
    menu = QMenu(parent)
    menu.setAccessibleName("Disappearing messages")
    group = QActionGroup(menu)
    group.setExclusive(True)
    title = menu.addAction("Disappearing messages")
    title.setEnabled(False)
    for seconds in DISAPPEARING_CHOICES:
        action = QAction(timer_words(seconds), menu)
        action.setCheckable(True)
        action.setChecked(seconds == current)
        action.setData(seconds)
        group.addAction(action)
        menu.addAction(action)
    menu.addSeparator()
    custom_label = "Custom…"
    if current and current not in DISAPPEARING_CHOICES:
        custom_label = f"Custom ({format_timer(current)})…"
    custom = QAction(custom_label, menu)
    custom.setCheckable(True)
    custom.setChecked(bool(current) and current not in DISAPPEARING_CHOICES)
    custom.setData(-1)
    group.addAction(custom)
    menu.addAction(custom)
    return menu


class NumberField(QLineEdit):
    """A whole number from ``low`` to ``high`` (Up and Down step it)."""

    valueChanged = Signal(int)

    def __init__(self, low: int, high: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._low, self._high = low, high
        self.setValidator(QIntValidator(low, high, self))
        self.setMaxLength(len(str(high)))
        self.textChanged.connect(lambda _text: self.valueChanged.emit(self.value()))

    def value(self) -> int:
        text = self.text().strip()
        return int(text) if text.isdigit() else 0

    def setValue(self, value: int) -> None:
        self.setText(str(max(self._low, min(self._high, value))))

    def maximum(self) -> int:
        return self._high

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            step = 1 if event.key() == Qt.Key.Key_Up else -1
            self.setValue(self.value() + step)
            return
        super().keyPressEvent(event)


class CustomTimerDialog(QDialog):
    """A number and a unit; :attr:`chosen` carries the seconds when accepted."""

    chosen = Signal(int)

    def __init__(self, current: int = 0, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Custom timer")
        self.setAccessibleName("Custom disappearing-message timer")
        self.setMinimumWidth(340)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(20, 18, 20, 16)
        layout.setSpacing(12)
        title = QLabel("Messages disappear after", self)
        title.setProperty("class", "subtitle")
        layout.addWidget(title)
        hint = QLabel("From 10 seconds to 1 year. Everyone here gets the same timer.", self)
        hint.setProperty("class", "caption")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        row = QHBoxLayout()
        self.number = NumberField(1, 999, self)
        self.number.setAccessibleName("Number")
        self.unit = QComboBox(self)
        self.unit.setAccessibleName("Unit")
        for label, _size in UNITS:
            self.unit.addItem(label)
        row.addWidget(self.number, 1)
        row.addWidget(self.unit, 1)
        layout.addLayout(row)
        self.error = QLabel("", self)
        self.error.setProperty("class", "error")
        self.error.setWordWrap(True)
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(self)
        self.ok = QPushButton("Set timer", self)
        self.ok.setProperty("class", "primary")
        self.ok.setDefault(True)
        cancel = QPushButton("Cancel", self)
        buttons.addButton(self.ok, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(cancel, QDialogButtonBox.ButtonRole.RejectRole)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self._show(current)
        self.number.valueChanged.connect(self._check)
        self.unit.currentIndexChanged.connect(self._check)
        self._check()

    def _show(self, current: int) -> None:
        if current <= 0:
            self.number.setValue(30)
            self.unit.setCurrentIndex(1)
            return
        for i in range(len(UNITS) - 1, -1, -1):
            size = UNITS[i][1]
            if current % size == 0 and current // size <= self.number.maximum():
                self.number.setValue(current // size)
                self.unit.setCurrentIndex(i)
                return
        self.number.setValue(min(self.number.maximum(), max(1, current // 60)))
        self.unit.setCurrentIndex(1)

    def seconds(self) -> int:
        return self.number.value() * UNITS[self.unit.currentIndex()][1]

    def _check(self) -> bool:
        seconds = self.seconds()
        ok = MIN_SECONDS <= seconds <= MAX_SECONDS
        self.error.setText("" if ok else "Choose from 10 seconds to 1 year.")
        self.error.setVisible(not ok)
        self.ok.setEnabled(ok)
        return ok

    def _accept(self) -> None:
        if self._check():
            self.chosen.emit(self.seconds())
            self.accept()


class TimerButton(QToolButton):
    """An hourglass with the timer in short; its menu chooses a timer (:attr:`timer_chosen`)."""

    #: The user chose a timer: seconds (0: off).
    timer_chosen = Signal(int)

    def __init__(self, parent: QWidget | None = None, *, wide: bool = False) -> None:
        super().__init__(parent)
        self.setObjectName("TimerButton")
        self.wide = wide
        self.setProperty("wide", wide)
        self.seconds = 0
        self.setIconSize(QSize(20, 20))
        self.setMinimumHeight(36)
        self.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.clicked.connect(self.show_menu)
        #: The menu or dialog open now (tests trigger their actions).
        self.menu_open: QMenu | None = None
        self.dialog: CustomTimerDialog | None = None
        self.set_seconds(0)

    def set_seconds(self, seconds: int) -> None:
        """Show the conversation's timer (0: off)."""
        self.seconds = seconds
        self.setIcon(themed_icon("hourglass"))
        if self.wide:
            self.setText(timer_words(seconds))
        else:
            self.setText(short_duration(seconds) if seconds else "")
        words = format_timer(seconds)
        self.setAccessibleName(f"Disappearing messages: {words}")
        self.setToolTip(
            f"Disappearing messages: {words}"
            if seconds
            else "Disappearing messages are off. Click to set a timer."
        )

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        return QSize(max(36, hint.width()), max(36, hint.height()))

    def show_menu(self) -> None:
        if self.menu_open is not None:
            self.menu_open.deleteLater()
        menu = timer_menu(self, self.seconds)
        menu.triggered.connect(self._triggered)
        self.menu_open = menu
        menu.popup(self.mapToGlobal(self.rect().bottomLeft()))

    def _triggered(self, action: QAction) -> None:
        value = action.data()
        if not isinstance(value, int):
            return
        if value < 0:
            self.open_custom()
        elif value != self.seconds:
            self.timer_chosen.emit(value)

    def open_custom(self) -> None:
        """The custom timer dialog (window-modal, opened without a nested loop)."""
        dialog = CustomTimerDialog(self.seconds, self.window())
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.chosen.connect(self.timer_chosen)
        dialog.finished.connect(dialog.deleteLater)
        self.dialog = dialog
        dialog.open()
