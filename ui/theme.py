"""The app's look: light and dark palettes, fonts, one application stylesheet.

Colours follow ui-design.md ("Colour, type, spacing"); the accent #2C6BED
keeps white text at 4.7:1 (WCAG AA). :func:`apply_theme` sets a
:class:`QPalette` and one stylesheet for the whole application; with
:attr:`Theme.SYSTEM` it follows ``styleHints().colorSchemeChanged``
(offscreen and on bare X11 the scheme is Unknown, which reads as light).

Other modules style themselves through widget properties the stylesheet
knows (``class="primary"``, ``"card"``, ``"title"``, ... -- see
:data:`STYLE_CLASSES`), or read :func:`colors` when they paint by hand; they
repaint on :attr:`ThemeNotifier.changed`.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontDatabase, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

from .preferences import Theme

log = logging.getLogger(__name__)

#: The text font (bundled, OFL) and the colour emoji font (bundled, OFL).
TEXT_FAMILY = "Inter"
EMOJI_FAMILY = "Noto Color Emoji"

#: Type scale in pixels (ui-design.md, "Type").
FONT_PX = 14
PREVIEW_PX = 13
CAPTION_PX = 12
SMALL_PX = 11

#: The ``class`` property values the stylesheet styles (ui_contract.md, U1).
STYLE_CLASSES = (
    "primary",
    "secondary",
    "danger",
    "card",
    "title",
    "subtitle",
    "muted",
    "caption",
    "error",
    "toggle",
)


@dataclasses.dataclass(frozen=True, slots=True)
class Colors:
    """The named colours of one theme."""

    window: QColor
    sidebar: QColor
    surface: QColor
    bubble_own: QColor
    bubble_other: QColor
    text: QColor
    text_on_accent: QColor
    muted: QColor
    accent: QColor
    danger: QColor
    border: QColor
    selection: QColor
    hover: QColor
    #: Time and ticks inside an own (accent) bubble.
    own_meta: QColor
    #: Links inside others' bubbles and in plain text.
    link: QColor
    #: Day pills and reaction chips.
    chip: QColor
    #: The connection banner's background when offline/reconnecting.
    warning: QColor
    #: Inputs (search field, composer).
    input: QColor
    #: A briefly highlighted message (jump to a reply's original).
    highlight: QColor


def _c(value: str) -> QColor:
    return QColor(value)


_LIGHT = Colors(
    window=_c("#FFFFFF"),
    sidebar=_c("#F6F7F9"),
    surface=_c("#FFFFFF"),
    bubble_own=_c("#2C6BED"),
    bubble_other=_c("#EEF0F3"),
    text=_c("#1B1C1F"),
    text_on_accent=_c("#FFFFFF"),
    muted=_c("#62676F"),
    accent=_c("#2C6BED"),
    danger=_c("#C62828"),
    border=_c("#E3E5E8"),
    selection=_c("#DCE6FB"),
    hover=_c("#ECEEF1"),
    own_meta=_c("#DCE6FC"),
    link=_c("#1F5BD6"),
    chip=_c("#F1F2F4"),
    warning=_c("#FFF4D6"),
    input=_c("#EEF0F3"),
    highlight=_c("#FFE9A8"),
)

_DARK = Colors(
    window=_c("#17181B"),
    sidebar=_c("#1E2024"),
    surface=_c("#23262B"),
    bubble_own=_c("#2C6BED"),
    bubble_other=_c("#2A2D33"),
    text=_c("#E8EAED"),
    text_on_accent=_c("#FFFFFF"),
    muted=_c("#9AA0A6"),
    accent=_c("#2C6BED"),
    danger=_c("#F26B6B"),
    border=_c("#2E3137"),
    selection=_c("#2A3550"),
    hover=_c("#26292E"),
    own_meta=_c("#DCE6FC"),
    link=_c("#8AB4F8"),
    chip=_c("#2A2D33"),
    warning=_c("#4A3B12"),
    input=_c("#2A2D33"),
    highlight=_c("#5A4A16"),
)


def palette_colors(dark: bool) -> Colors:
    """The named colours of the dark or the light theme."""
    return _DARK if dark else _LIGHT


class ThemeNotifier(QObject):
    """Emits :attr:`changed` (``dark: bool``) after the theme was applied."""

    changed = Signal(bool)


_notifier: ThemeNotifier | None = None
_dark = False
_choice = Theme.SYSTEM
_following_system = False


def notifier() -> ThemeNotifier:
    """The one :class:`ThemeNotifier` (created on first use)."""
    global _notifier
    if _notifier is None:
        _notifier = ThemeNotifier()
    return _notifier


def is_dark() -> bool:
    """Whether the dark palette is in use now."""
    return _dark


def colors() -> Colors:
    """The colours of the theme in use now."""
    return palette_colors(_dark)


def _system_is_dark() -> bool:
    hints = QGuiApplication.styleHints()
    return bool(hints.colorScheme() == Qt.ColorScheme.Dark)


def _resolve(theme: Theme) -> bool:
    if theme == Theme.DARK:
        return True
    if theme == Theme.LIGHT:
        return False
    return _system_is_dark()


def apply_theme(app: QApplication, theme: Theme) -> None:
    """Use ``theme`` for the whole application (palette + stylesheet).

    With :attr:`Theme.SYSTEM` the app follows the OS colour scheme from now
    on; with Light or Dark it stops following.
    """
    global _dark, _choice, _following_system
    _choice = theme
    if not _following_system:
        QGuiApplication.styleHints().colorSchemeChanged.connect(_on_scheme_changed)
        _following_system = True
    _apply(app, _resolve(theme))


def _on_scheme_changed(_scheme: Qt.ColorScheme) -> None:
    app = QApplication.instance()
    if _choice == Theme.SYSTEM and isinstance(app, QApplication):
        _apply(app, _system_is_dark())


def _apply(app: QApplication, dark: bool) -> None:
    global _dark
    _dark = dark
    c = palette_colors(dark)
    app.setStyle("Fusion")
    app.setPalette(_palette(c))
    app.setStyleSheet(stylesheet(c))
    notifier().changed.emit(dark)


def _palette(c: Colors) -> QPalette:
    p = QPalette()
    role = QPalette.ColorRole
    p.setColor(role.Window, c.window)
    p.setColor(role.WindowText, c.text)
    p.setColor(role.Base, c.surface)
    p.setColor(role.AlternateBase, c.sidebar)
    p.setColor(role.Text, c.text)
    p.setColor(role.PlaceholderText, c.muted)
    p.setColor(role.Button, c.surface)
    p.setColor(role.ButtonText, c.text)
    p.setColor(role.BrightText, c.text_on_accent)
    p.setColor(role.Highlight, c.accent)
    p.setColor(role.HighlightedText, c.text_on_accent)
    p.setColor(role.Link, c.link)
    p.setColor(role.LinkVisited, c.link)
    p.setColor(role.ToolTipBase, c.surface)
    p.setColor(role.ToolTipText, c.text)
    p.setColor(role.Mid, c.border)
    p.setColor(role.Midlight, c.hover)
    p.setColor(role.Light, c.window)
    p.setColor(role.Dark, c.border)
    p.setColor(role.Shadow, c.border)
    disabled = QColor(c.muted)
    for r in (role.WindowText, role.Text, role.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, r, disabled)
    return p


def _rgba(color: QColor, alpha: float) -> str:
    return f"rgba({color.red()}, {color.green()}, {color.blue()}, {alpha:.2f})"


def stylesheet(c: Colors) -> str:
    """The application-wide stylesheet for the colours ``c``."""
    accent_hover = c.accent.lighter(110).name()
    accent_pressed = c.accent.darker(110).name()
    danger_hover = c.danger.darker(108).name()
    return f"""
QWidget {{
    color: {c.text.name()};
    font-family: "{TEXT_FAMILY}";
    font-size: {FONT_PX}px;
}}
QMainWindow, QDialog {{ background: {c.window.name()}; }}
QToolTip {{
    background: {c.surface.name()}; color: {c.text.name()};
    border: 1px solid {c.border.name()}; border-radius: 6px; padding: 4px 8px;
}}
QLabel[class="title"] {{ font-size: 20px; font-weight: 600; }}
QLabel[class="subtitle"] {{ font-size: 15px; font-weight: 600; }}
QLabel[class="muted"] {{ font-size: {PREVIEW_PX}px; color: {c.muted.name()}; }}
QLabel[class="caption"] {{ font-size: {CAPTION_PX}px; color: {c.muted.name()}; }}
QLabel[class="error"] {{ font-size: {PREVIEW_PX}px; color: {c.danger.name()}; }}
QFrame[class="card"] {{
    background: {c.surface.name()};
    border: 1px solid {c.border.name()};
    border-radius: 16px;
}}
QPushButton {{
    background: {c.input.name()}; color: {c.text.name()};
    border: none; border-radius: 8px; padding: 8px 16px; min-height: 20px;
    font-weight: 500;
}}
QPushButton:hover {{ background: {c.hover.name()}; }}
QPushButton:focus {{ outline: none; border: 2px solid {_rgba(c.accent, 0.55)}; }}
QPushButton:disabled {{ color: {c.muted.name()}; }}
QPushButton[class="primary"] {{
    background: {c.accent.name()}; color: {c.text_on_accent.name()}; font-weight: 600;
}}
QPushButton[class="primary"]:hover {{ background: {accent_hover}; }}
QPushButton[class="primary"]:pressed {{ background: {accent_pressed}; }}
QPushButton[class="primary"]:disabled {{
    background: {_rgba(c.accent, 0.45)}; color: {_rgba(c.text_on_accent, 0.8)};
}}
QPushButton[class="secondary"] {{
    background: transparent; color: {c.accent.name() if not _is_dark_colors(c) else c.link.name()};
    border: 1px solid {c.border.name()};
}}
QPushButton[class="secondary"]:hover {{ background: {c.hover.name()}; }}
QPushButton[class="secondary"]:pressed {{ background: {c.selection.name()}; }}
QPushButton[class="secondary"]:checked {{
    background: {c.selection.name()}; color: {c.text.name()};
    border: 1px solid {c.accent.name()}; font-weight: 600;
}}
QPushButton[class="secondary"]:disabled {{
    color: {c.muted.name()}; border: 1px solid {_rgba(c.border, 0.6)};
}}
QPushButton[class="danger"] {{ background: {c.danger.name()}; color: #FFFFFF; font-weight: 600; }}
QPushButton[class="danger"]:hover {{ background: {danger_hover}; }}
QPushButton[class="danger"]:pressed {{ background: {c.danger.darker(120).name()}; }}
QPushButton[class="danger"]:disabled {{
    background: {_rgba(c.danger, 0.4)}; color: {_rgba(QColor("#FFFFFF"), 0.8)};
}}
QRadioButton {{ spacing: 8px; }}
QRadioButton::indicator {{
    width: 14px; height: 14px; border-radius: 9px;
    border: 2px solid {c.muted.name()}; background: transparent;
}}
QRadioButton::indicator:hover {{ border-color: {c.accent.name()}; }}
QRadioButton::indicator:checked {{
    border: 2px solid {c.accent.name()};
    background: qradialgradient(cx: 0.5, cy: 0.5, radius: 0.5, fx: 0.5, fy: 0.5,
        stop: 0 {c.accent.name()}, stop: 0.55 {c.accent.name()},
        stop: 0.6 transparent, stop: 1 transparent);
}}
QRadioButton::indicator:disabled {{ border-color: {_rgba(c.muted, 0.5)}; }}
QToolButton {{
    background: transparent; border: none; border-radius: 8px; padding: 6px;
}}
QToolButton:hover {{ background: {c.hover.name()}; }}
QToolButton:pressed {{ background: {c.selection.name()}; }}
QToolButton:focus {{ outline: none; border: 2px solid {_rgba(c.accent, 0.55)}; }}
QLineEdit, QPlainTextEdit, QTextEdit, QSpinBox, QComboBox {{
    background: {c.input.name()}; color: {c.text.name()};
    border: 1px solid transparent; border-radius: 8px; padding: 6px 10px;
    selection-background-color: {c.accent.name()}; selection-color: #FFFFFF;
}}
QLineEdit:focus, QPlainTextEdit:focus, QTextEdit:focus, QSpinBox:focus, QComboBox:focus {{
    border: 1px solid {c.accent.name()};
}}
QComboBox::drop-down {{ border: none; width: 24px; }}
QComboBox QAbstractItemView {{
    background: {c.surface.name()}; border: 1px solid {c.border.name()};
    selection-background-color: {c.selection.name()}; selection-color: {c.text.name()};
}}
QCheckBox {{ spacing: 10px; }}
QListView, QListWidget, QTreeView {{
    background: transparent; border: none; outline: none;
}}
QListWidget::item {{ border-radius: 8px; padding: 8px 10px; }}
QListWidget::item:hover {{ background: {c.hover.name()}; }}
QListWidget::item:selected {{ background: {c.selection.name()}; color: {c.text.name()}; }}
QScrollBar:vertical {{ background: transparent; width: 10px; margin: 2px; }}
QScrollBar::handle:vertical {{
    background: {_rgba(c.muted, 0.35)}; border-radius: 3px; min-height: 32px;
}}
QScrollBar::handle:vertical:hover {{ background: {_rgba(c.muted, 0.6)}; }}
QScrollBar::add-line, QScrollBar::sub-line {{ height: 0; width: 0; }}
QScrollBar::add-page, QScrollBar::sub-page {{ background: transparent; }}
QScrollBar:horizontal {{ background: transparent; height: 10px; margin: 2px; }}
QScrollBar::handle:horizontal {{
    background: {_rgba(c.muted, 0.35)}; border-radius: 3px; min-width: 32px;
}}
QMenu {{
    background: {c.surface.name()}; border: 1px solid {c.border.name()};
    border-radius: 10px; padding: 6px;
}}
QMenu::item {{ padding: 7px 24px 7px 12px; border-radius: 6px; }}
QMenu::item:selected {{ background: {c.hover.name()}; }}
QMenu::item:disabled {{ color: {c.muted.name()}; font-size: {CAPTION_PX}px; }}
QMenu::separator {{ height: 1px; background: {c.border.name()}; margin: 4px 8px; }}
QProgressBar {{
    background: {c.input.name()}; border: none; border-radius: 4px; height: 8px;
    text-align: center; color: transparent;
}}
QProgressBar::chunk {{ background: {c.accent.name()}; border-radius: 4px; }}
QSplitter::handle {{ background: {c.border.name()}; }}
QTabWidget::pane {{ border: none; }}
QTabBar::tab {{
    background: transparent; padding: 8px 14px; border-bottom: 2px solid transparent;
    color: {c.muted.name()};
}}
QTabBar::tab:selected {{ color: {c.text.name()}; border-bottom: 2px solid {c.accent.name()}; }}
#Sidebar, #SidebarHeader {{ background: {c.sidebar.name()}; }}
#SidebarHeader QLineEdit {{ background: {c.input.name() if _is_dark_colors(c) else "#E9EBEE"}; }}
#ConversationHeader {{
    background: {c.window.name()}; border-bottom: 1px solid {c.border.name()};
}}
#Timeline {{ background: {c.window.name()}; }}
#ComposerBar {{ background: {c.window.name()}; border-top: 1px solid {c.border.name()}; }}
#ComposerField {{
    background: {c.input.name()}; border: 1px solid transparent; border-radius: 18px;
    padding: 6px 10px;
}}
#ComposerField:focus {{ border: 1px solid {_rgba(c.accent, 0.6)}; }}
#ComposerPreview {{
    background: {c.sidebar.name()}; border-left: 3px solid {c.accent.name()};
    border-radius: 6px;
}}
#SendButton {{
    background: {c.accent.name()}; border-radius: 18px; color: #FFFFFF;
}}
#SendButton:hover {{ background: {accent_hover}; }}
#SendButton:disabled {{ background: {c.input.name()}; }}
#Banner {{ background: {c.warning.name()}; }}
#RestartBar {{
    background: {_rgba(c.danger, 0.12)}; border-bottom: 1px solid {_rgba(c.danger, 0.3)};
}}
#Banner[state="error"] {{ background: {_rgba(c.danger, 0.18)}; }}
#Toast {{
    background: {"#2B2D31" if not _is_dark_colors(c) else "#3A3D44"};
    border-radius: 10px;
}}
#Toast QLabel {{ color: #FFFFFF; }}
#Toast QPushButton {{
    background: transparent; color: #9EC0FF; font-weight: 600; padding: 4px 8px;
}}
#EmptyState QLabel {{ color: {c.muted.name()}; }}
#AttachmentStrip, #AttachmentStripInner {{ background: transparent; }}
#PendingChip {{ background: {c.input.name()}; border-radius: 12px; }}
#PendingChip QLabel {{ background: transparent; }}
#PendingBadge {{
    background: {_rgba(c.accent, 0.22 if _is_dark_colors(c) else 0.12)};
    color: {c.link.name() if _is_dark_colors(c) else c.accent.name()};
    border-radius: 8px; font-size: 10px; font-weight: 700;
}}
#TimerButton {{ padding: 6px 8px; font-size: {CAPTION_PX}px; font-weight: 600; }}
#TimerButton[wide="true"] {{
    border: 1px solid {c.border.name()}; padding: 6px 12px; font-size: {PREVIEW_PX}px;
}}
"""


def _is_dark_colors(c: Colors) -> bool:
    return c is _DARK


def _fonts_dir() -> Path:
    try:
        from . import resources

        return resources.fonts_dir()
    except ImportError:  # U3's module is not there yet
        return Path(__file__).resolve().parent.parent / "resources" / "fonts"


def load_fonts() -> list[str]:
    """Register the bundled fonts; use Inter for text and Noto for emoji.

    Returns the families that were registered. Fonts missing from
    ``resources/fonts`` fall back to the system's (and are logged).
    """
    families: list[str] = []
    directory = _fonts_dir()
    if directory.is_dir():
        for path in sorted(directory.rglob("*")):
            if path.suffix.lower() not in (".ttf", ".otf", ".ttc"):
                continue
            font_id = QFontDatabase.addApplicationFont(str(path))
            if font_id < 0:
                log.warning("could not load the bundled font %s", path.name)
                continue
            families.extend(QFontDatabase.applicationFontFamilies(font_id))
    else:
        log.info("no bundled fonts directory; using the system's fonts")
    available = set(QFontDatabase.families())
    if EMOJI_FAMILY in available:
        QFontDatabase.setApplicationEmojiFontFamilies([EMOJI_FAMILY])
    app = QGuiApplication.instance()
    if isinstance(app, QGuiApplication):
        font = QFont(TEXT_FAMILY if TEXT_FAMILY in available else app.font().family())
        font.setPixelSize(FONT_PX)
        font.setHintingPreference(QFont.HintingPreference.PreferNoHinting)
        app.setFont(font)
    return sorted(set(families))


def font(pixel_size: int = FONT_PX, weight: QFont.Weight = QFont.Weight.Normal) -> QFont:
    """The text font at ``pixel_size`` and ``weight`` (for painting by hand)."""
    f = QFont(TEXT_FAMILY)
    f.setPixelSize(pixel_size)
    f.setWeight(weight)
    f.setHintingPreference(QFont.HintingPreference.PreferNoHinting)
    return f
