"""The quick reactions bar: six common reactions and "more" beside a bubble.

ui-design.md, "Message actions": hovering a message shows a small floating
row of reactions; the same row opens from the keyboard on the selected
message (``+``), where Left/Right move, Enter or Space picks and Esc goes
back to the message. A click toggles the user's own reaction (the
timeline decides add or remove from the message's current reactions);
"More reactions" opens the emoji picker.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPersistentModelIndex, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QEnterEvent, QFont, QKeyEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QToolButton, QWidget

from .. import theme
from ..widgets.icons import themed_icon

#: The six common reactions, in the order shown, with their spoken names.
QUICK_REACTIONS: tuple[tuple[str, str], ...] = (
    ("👍", "thumbs up"),
    ("❤️", "red heart"),
    ("😂", "face with tears of joy"),
    ("😮", "surprised face"),
    ("😢", "crying face"),
    ("🙏", "folded hands"),
)
BUTTON_PX = 32
#: Hide this long after the pointer left both the message and the bar (ms).
HIDE_DELAY_MS = 250


class QuickReactions(QFrame):
    """A floating row of reaction buttons over a timeline's viewport."""

    #: ``(row index, emoji)``: toggle the user's reaction on that message.
    picked = Signal(QPersistentModelIndex, str)
    #: ``row index``: open the emoji picker for that message.
    more_requested = Signal(QPersistentModelIndex)
    #: The bar closed from the keyboard (Esc): focus goes back to the list.
    dismissed = Signal()

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("QuickReactions")
        self.setAccessibleName("Quick reactions")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(0)
        self.buttons: list[QToolButton] = []
        font = QFont(theme.font(18))
        if theme.EMOJI_FAMILY:
            font.setFamilies([theme.EMOJI_FAMILY, *font.families()])
        for emoji, name in QUICK_REACTIONS:
            button = self._button(f"React with {name}")
            button.setText(emoji)
            button.setFont(font)
            button.clicked.connect(lambda _=False, e=emoji: self._pick(e))
            layout.addWidget(button)
        self.more = self._button("More reactions")
        self.more.setIcon(themed_icon("react"))
        self.more.setIconSize(QSize(18, 18))
        self.more.clicked.connect(self._more)
        layout.addWidget(self.more)
        self.index = QPersistentModelIndex()
        self._hide_timer = QTimer(self)
        self._hide_timer.setSingleShot(True)
        self._hide_timer.timeout.connect(self.hide)
        self.hide()

    def _button(self, name: str) -> QToolButton:
        button = QToolButton(self)
        button.setFixedSize(BUTTON_PX, BUTTON_PX)
        button.setAccessibleName(name)
        button.setToolTip(name[0].upper() + name[1:])
        button.setAutoRaise(True)
        button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        button.installEventFilter(self)
        self.buttons.append(button)
        return button

    def retheme(self) -> None:
        self.more.setIcon(themed_icon("react"))

    # -- showing ---------------------------------------------------------------------------

    def show_for(self, index: QPersistentModelIndex, bubble: QRect, own: bool) -> None:
        """Show beside ``bubble`` (viewport coordinates), or over its top edge."""
        self._hide_timer.stop()
        self.index = index
        self.adjustSize()
        parent = self.parentWidget()
        area = parent.rect() if parent is not None else QRect()
        size = self.sizeHint()
        gap = 6
        y = bubble.top() + min(8, max(0, bubble.height() - size.height()) // 2)
        if own and bubble.left() - gap - size.width() >= area.left() + 4:
            x = bubble.left() - gap - size.width()
        elif not own and bubble.right() + gap + size.width() <= area.right() - 4:
            x = bubble.right() + gap
        else:  # no room beside it: over the bubble's top edge, on its side
            x = bubble.right() - size.width() if own else bubble.left()
            y = bubble.top() - size.height() + 6
        x = max(area.left() + 4, min(x, area.right() - size.width() - 4))
        y = max(area.top() + 2, min(y, area.bottom() - size.height() - 2))
        self.setGeometry(QRect(x, y, size.width(), size.height()))
        self.show()
        self.raise_()

    def hide_soon(self) -> None:
        if self.isVisible() and not self.underMouse() and not self.has_focus():
            self._hide_timer.start(HIDE_DELAY_MS)

    def keep(self) -> None:
        self._hide_timer.stop()

    def has_focus(self) -> bool:
        return any(b.hasFocus() for b in self.buttons)

    def focus_first(self) -> None:
        self.buttons[0].setFocus(Qt.FocusReason.ShortcutFocusReason)

    # -- acting ----------------------------------------------------------------------------

    def _pick(self, emoji: str) -> None:
        index = self.index
        self.close_bar()
        if index.isValid():
            self.picked.emit(index, emoji)

    def _more(self) -> None:
        index = self.index
        self.close_bar()
        if index.isValid():
            self.more_requested.emit(index)

    def close_bar(self) -> None:
        """Hide now; if a button had the focus, give it back to the timeline."""
        had_focus = self.has_focus()
        self._hide_timer.stop()
        self.hide()
        if had_focus:
            self.dismissed.emit()

    # -- events ----------------------------------------------------------------------------

    def enterEvent(self, event: QEnterEvent) -> None:
        self.keep()
        super().enterEvent(event)

    def leaveEvent(self, event: QEvent) -> None:
        self.hide_soon()
        super().leaveEvent(event)

    def eventFilter(self, watched: object, event: QEvent) -> bool:
        if isinstance(event, QKeyEvent) and event.type() == QEvent.Type.KeyPress:
            for position, button in enumerate(self.buttons):
                if watched is button:
                    return self._key(position, event)
        return False

    def _key(self, position: int, event: QKeyEvent) -> bool:
        key = event.key()
        rtl = self.layoutDirection() is Qt.LayoutDirection.RightToLeft
        step = {Qt.Key.Key_Left: -1, Qt.Key.Key_Right: 1}.get(Qt.Key(key), 0)
        if rtl:
            step = -step
        if step:
            self.buttons[(position + step) % len(self.buttons)].setFocus()
            return True
        if key in (Qt.Key.Key_Home, Qt.Key.Key_End):
            self.buttons[0 if key == Qt.Key.Key_Home else -1].setFocus()
            return True
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space):
            self.buttons[position].click()
            return True
        if key in (Qt.Key.Key_Escape, Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_Tab):
            self.close_bar()
            return True
        return False
