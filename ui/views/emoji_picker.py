"""The emoji picker: a popup grid with categories, skin tones and a filter.

A curated set of a few hundred emoji in nine categories, as Unicode strings
in this module; their names (for the filter and for screen readers) come
from :mod:`unicodedata`, flags from their two regional-indicator letters
and a small table of country names. People and hands take the skin tone
chosen in the tone row (Unicode's Fitzpatrick modifiers, UTS #51 §2.4).

Keyboard: type to filter, Down/Tab into the grid, arrows to move, Enter
picks (:attr:`EmojiPicker.picked`), Esc closes.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QPoint,
    QRectF,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QFont, QGuiApplication, QKeyEvent, QPainter
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QHBoxLayout,
    QLayout,
    QListView,
    QListWidget,
    QListWidgetItem,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ui.theme import colors
from ui.views.onboarding import label, line_edit
from ui.widgets.row_highlight import paint_row_highlight

VS16: Final = "\ufe0f"
ZWJ: Final = "\u200d"
TONES: Final = ("", "\U0001f3fb", "\U0001f3fc", "\U0001f3fd", "\U0001f3fe", "\U0001f3ff")
TONE_NAMES: Final = ("Default", "Light", "Medium-light", "Medium", "Medium-dark", "Dark")
EMOJI_ROLE = Qt.ItemDataRole.UserRole
CELL = 40
EMOJI_PX = 24
TAB_PX = 18


def _split(text: str) -> tuple[str, ...]:
    return tuple(text.split())


SMILEYS = _split(
    "😀 😃 😄 😁 😆 😅 🤣 😂 🙂 🙃 🫠 😉 😊 😇 🥰 😍 🤩 😘 😗 ☺️ 😚 😙 🥲 😋 😛 😜 🤪 😝 "
    "🤑 🤗 🤭 🫢 🫣 🤫 🤔 🫡 🤐 🤨 😐 😑 😶 🫥 😏 😒 🙄 😬 🤥 😌 😔 😪 🤤 😴 😷 🤒 🤕 "
    "🤢 🤮 🤧 🥵 🥶 🥴 😵 🤯 🤠 🥳 🥸 😎 🤓 🧐 😕 🫤 😟 🙁 😮 😯 😲 😳 🥺 🥹 😦 😧 😨 "
    "😰 😥 😢 😭 😱 😖 😣 😞 😓 😩 😫 🥱 😤 😡 😠 🤬 😈 👿 💀 ☠️ 💩 🤡 👹 👺 👻 👽 👾 🤖 "
    "😺 😸 😹 😻 😼 😽 🙀 😿 😾 🙈 🙉 🙊 💋 💌 💘 💝 💖 💗 💓 💞 💕 💟 ❣️ 💔 ❤️ 🧡 💛 "
    "💚 💙 💜 🤎 🖤 🤍 💯 💢 💥 💫 💦 💨 🕳️ 💬 💭 💤"
)
#: Emoji that take a skin tone (Emoji_Modifier_Base), as shown without one.
PEOPLE_TONED = _split(
    "👋 🤚 🖐️ ✋ 🖖 👌 🤌 🤏 ✌️ 🤞 🫰 🤟 🤘 🤙 👈 👉 👆 👇 ☝️ 🫵 👍 👎 ✊ 👊 🤛 🤜 👏 🙌 "
    "🫶 👐 🤲 🤝 🙏 ✍️ 💅 🤳 💪 🦵 🦶 👂 🦻 👃 👶 🧒 👦 👧 🧑 👱 👨 🧔 👩 🧓 👴 👵 🙍 🙎 🙅 "
    "🙆 💁 🙋 🧏 🙇 🤦 🤷 👮 🕵️ 💂 🥷 👷 🤴 👸 👳 👲 🧕 🤵 👰 🤰 🤱 👼 🎅 🤶 🦸 🦹 🧙 🧚 "
    "🧛 🧜 🧝 💆 💇 🚶 🧍 🧎 🏃 💃 🕺 🧗 🏇 🏂 🏄 🚣 🏊 ⛹️ 🏋️ 🚴 🚵 🤸 🤽 🤾 🤹 🧘 🛀 🛌"
)
PEOPLE_PLAIN = _split("🦾 🦿 🧠 🫀 🫁 🦷 🦴 👀 👁️ 👅 👄 👣 🗣️ 👤 👥 🫂 👪")
NATURE = _split(
    "🐶 🐱 🐭 🐹 🐰 🦊 🐻 🐼 🐨 🐯 🦁 🐮 🐷 🐸 🐵 🐔 🐧 🐦 🐤 🦆 🦅 🦉 🦇 🐺 🐗 🐴 🦄 🐝 "
    "🪱 🐛 🦋 🐌 🐞 🐜 🪲 🕷️ 🦂 🐢 🐍 🦎 🦖 🦕 🐙 🦑 🦐 🦞 🦀 🐡 🐠 🐟 🐬 🐳 🐋 🦈 🐊 🐅 "
    "🐆 🦓 🦍 🐘 🦛 🦏 🐪 🐫 🦒 🦘 🐃 🐄 🐎 🐖 🐏 🐑 🦙 🐐 🦌 🐕 🐩 🐈 🐓 🦃 🦚 🦜 🦢 🦩 "
    "🕊️ 🐇 🦝 🦨 🦡 🦫 🦦 🦥 🐁 🐀 🐿️ 🦔 🌵 🎄 🌲 🌳 🌴 🌱 🌿 ☘️ 🍀 🎍 🍃 🍂 🍁 🍄 🌾 💐 "
    "🌷 🌹 🥀 🌺 🌸 🌼 🌻 🌞 🌝 🌛 🌚 🌕 🌙 🌎 🪐 💫 ⭐ 🌟 ✨ ⚡ ☄️ 💥 🔥 🌪️ 🌈 ☀️ ⛅ "
    "☁️ 🌧️ ⛈️ 🌩️ ❄️ ☃️ ⛄ 🌬️ 💧 🌊 🌫️"
)
FOOD = _split(
    "🍏 🍎 🍐 🍊 🍋 🍌 🍉 🍇 🍓 🫐 🍈 🍒 🍑 🥭 🍍 🥥 🥝 🍅 🍆 🥑 🥦 🥬 🥒 🌶️ 🫑 🌽 🥕 🫒 "
    "🧄 🧅 🥔 🍠 🥐 🥯 🍞 🥖 🥨 🧀 🥚 🍳 🧈 🥞 🧇 🥓 🥩 🍗 🍖 🌭 🍔 🍟 🍕 🫓 🥪 🥙 🧆 🌮 "
    "🌯 🫔 🥗 🥘 🫕 🥫 🍝 🍜 🍲 🍛 🍣 🍱 🥟 🦪 🍤 🍙 🍚 🍘 🍥 🥠 🥮 🍢 🍡 🍧 🍨 🍦 🥧 🧁 "
    "🍰 🎂 🍮 🍭 🍬 🍫 🍿 🍩 🍪 🌰 🥜 🍯 🥛 🍼 🫖 ☕ 🍵 🧃 🥤 🧋 🍶 🍺 🍻 🥂 🍷 🥃 🍸 🍹 "
    "🧉 🍾 🧊 🥄 🍴 🍽️ 🥣 🥡 🥢 🧂"
)
ACTIVITIES = _split(
    "⚽ 🏀 🏈 ⚾ 🥎 🎾 🏐 🏉 🥏 🎱 🪀 🏓 🏸 🏒 🏑 🥍 🏏 🪃 🥅 ⛳ 🪁 🏹 🎣 🤿 🥊 🥋 🎽 🛹 "
    "🛼 🛷 ⛸️ 🥌 🎿 ⛷️ 🏆 🥇 🥈 🥉 🏅 🎖️ 🏵️ 🎗️ 🎫 🎟️ 🎪 🎭 🩰 🎨 🎬 🎤 🎧 🎼 🎹 🥁 🪘 🎷 "
    "🎺 🪗 🎸 🪕 🎻 🎲 ♟️ 🎯 🎳 🎮 🎰 🧩 🎉 🎊 🎈 🎁 🎀 🪅 🪄"
)
TRAVEL = _split(
    "🚗 🚕 🚙 🚌 🚎 🏎️ 🚓 🚑 🚒 🚐 🛻 🚚 🚛 🚜 🦯 🦽 🦼 🛴 🚲 🛵 🏍️ 🛺 🚨 🚔 🚍 🚘 🚖 "
    "🚡 🚠 🚟 🚃 🚋 🚞 🚝 🚄 🚅 🚈 🚂 🚆 🚇 🚊 🚉 ✈️ 🛫 🛬 🛩️ 💺 🛰️ 🚀 🛸 🚁 🛶 ⛵ 🚤 🛥️ "
    "🛳️ ⛴️ 🚢 ⚓ 🪝 ⛽ 🚧 🚦 🚥 🚏 🗺️ 🗿 🗽 🗼 🏰 🏯 🏟️ 🎡 🎢 🎠 ⛲ ⛱️ 🏖️ 🏝️ 🏜️ 🌋 ⛰️ "
    "🏔️ 🗻 🏕️ ⛺ 🏠 🏡 🏘️ 🏚️ 🏗️ 🏭 🏢 🏬 🏣 🏤 🏥 🏦 🏨 🏪 🏫 🏩 💒 🏛️ ⛪ 🕌 🕍 🛕 🕋 "
    "⛩️ 🗾 🎑 🏞️ 🌅 🌄 🌠 🎇 🎆 🌇 🌆 🏙️ 🌃 🌌 🌉 🌁"
)
OBJECTS = _split(
    "⌚ 📱 📲 💻 ⌨️ 🖥️ 🖨️ 🖱️ 🕹️ 💽 💾 💿 📀 📼 📷 📸 📹 🎥 📞 ☎️ 📟 📠 📺 📻 🎙️ ⏱️ "
    "⏰ 🕰️ ⌛ ⏳ 📡 🔋 🔌 💡 🔦 🕯️ 🧯 💸 💵 💴 💶 💷 🪙 💰 💳 💎 ⚖️ 🧰 🔧 🔨 ⚒️ 🛠️ ⛏️ 🔩 "
    "⚙️ 🧱 ⛓️ 🧲 🔫 💣 🧨 🪓 🔪 🗡️ ⚔️ 🛡️ 🔮 📿 🧿 💈 ⚗️ 🔭 🔬 🕳️ 🩹 🩺 💊 💉 🩸 🧬 🦠 🧫 "
    "🧪 🌡️ 🧹 🧺 🧻 🚽 🚰 🚿 🛁 🧼 🪥 🪒 🧽 🧴 🛎️ 🔑 🗝️ 🚪 🪑 🛋️ 🛏️ 🧸 🖼️ 🪞 🛍️ 🛒 🎁 "
    "✉️ 📩 📨 📧 📦 📫 📮 📜 📃 📄 📑 📊 📈 📉 📆 📅 🗑️ 📇 🗃️ 🗳️ 🗄️ 📋 📁 📂 🗂️ 🗞️ 📰 "
    "📓 📔 📒 📕 📗 📘 📙 📚 📖 🔖 🔗 📎 🖇️ 📐 📏 📌 📍 ✂️ 🖊️ 🖋️ ✒️ 🖌️ 🖍️ 📝 ✏️ 🔍 🔎 "
    "🔏 🔐 🔒 🔓"
)
SYMBOLS = _split(
    "☮️ ✝️ ☪️ 🕉️ ☸️ ✡️ 🔯 🕎 ☯️ ☦️ 🛐 ⛎ ♈ ♉ ♊ ♋ ♌ ♍ ♎ ♏ ♐ ♑ ♒ ♓ 🆔 ⚛️ ☢️ ☣️ 📴 "
    "📳 ✴️ 🆚 💮 🉐 🅰️ 🅱️ 🆎 🆑 🅾️ 🆘 ❌ ⭕ 🛑 ⛔ 📛 🚫 💯 💢 ♨️ 🚷 🚯 🚳 🚱 🔞 📵 🚭 ❗ "
    "❕ ❓ ❔ ‼️ ⁉️ 🔅 🔆 〽️ ⚠️ 🚸 🔱 ⚜️ 🔰 ♻️ ✅ 💹 ❇️ ✳️ ❎ 🌐 💠 Ⓜ️ 🌀 💤 🏧 🚾 ♿ 🅿️ "
    "🚹 🚺 🚼 🚻 🚮 🎦 📶 🈁 🔣 ℹ️ 🔤 🔡 🔠 🆖 🆗 🆙 🆒 🆕 🆓 🔟 🔢 #️⃣ *️⃣ ⏏️ ▶️ ⏸️ ⏯️ ⏹️ "  # noqa: RUF001 (emoji, on purpose)
    "⏺️ ⏭️ ⏮️ ⏩ ⏪ ⏫ ⏬ ◀️ 🔼 🔽 ➡️ ⬅️ ⬆️ ⬇️ ↗️ ↘️ ↙️ ↖️ ↕️ ↔️ ↪️ ↩️ ⤴️ ⤵️ 🔀 🔁 🔂 🔄 "
    "🔃 🎵 🎶 ➕ ➖ ➗ ✖️ ♾️ 💲 💱 ™️ ©️ ®️ 〰️ ➰ ➿ 🔚 🔙 🔛 🔝 🔜 ✔️ ☑️ 🔘 🔴 🟠 🟡 🟢 🔵 "  # noqa: RUF001 (emoji, on purpose)
    "🟣 ⚫ ⚪ 🟤 🔺 🔻 🔸 🔹 🔶 🔷 🔳 🔲 ▪️ ▫️ ◾ ◽ ◼️ ◻️ 🟥 🟧 🟨 🟩 🟦 🟪 ⬛ ⬜ 🟫 🔈 🔇 🔉 "
    "🔊 🔔 🔕 📣 📢 💬 💭 🗯️ ♠️ ♣️ ♥️ ♦️ 🃏 🎴 🀄"
)
#: Flags by ISO 3166 code, and the few that are not countries.
COUNTRIES: Final = {
    "AR": "Argentina", "AT": "Austria", "AU": "Australia", "BE": "Belgium", "BR": "Brazil",
    "CA": "Canada", "CH": "Switzerland", "CL": "Chile", "CN": "China", "CO": "Colombia",
    "CZ": "Czechia", "DE": "Germany", "DK": "Denmark", "EG": "Egypt", "ES": "Spain",
    "ET": "Ethiopia", "EU": "European Union", "FI": "Finland", "FR": "France",
    "GB": "United Kingdom", "GH": "Ghana", "GR": "Greece", "HK": "Hong Kong", "HU": "Hungary",
    "ID": "Indonesia", "IE": "Ireland", "IL": "Israel", "IN": "India", "IR": "Iran",
    "IS": "Iceland", "IT": "Italy", "JP": "Japan", "KE": "Kenya", "KR": "South Korea",
    "LB": "Lebanon", "MA": "Morocco", "MX": "Mexico", "MY": "Malaysia", "NG": "Nigeria",
    "NL": "Netherlands", "NO": "Norway", "NZ": "New Zealand", "PE": "Peru",
    "PH": "Philippines", "PK": "Pakistan", "PL": "Poland", "PS": "Palestinian Territories",
    "PT": "Portugal", "RO": "Romania", "RS": "Serbia", "RU": "Russia", "SA": "Saudi Arabia",
    "SE": "Sweden", "SG": "Singapore", "SN": "Senegal", "SY": "Syria", "TH": "Thailand",
    "TN": "Tunisia", "TR": "Türkiye", "TW": "Taiwan", "UA": "Ukraine", "UG": "Uganda",
    "UN": "United Nations", "US": "United States", "UY": "Uruguay", "VE": "Venezuela",
    "VN": "Vietnam", "ZA": "South Africa",
}  # fmt: skip
SPECIAL_FLAGS = _split("🏁 🚩 🎌 🏴 🏳️ 🏳️‍🌈 🏳️‍⚧️ 🏴‍☠️")


def flag(code: str) -> str:
    """The flag emoji of a two-letter region code (regional indicator symbols)."""
    return "".join(chr(0x1F1E6 + ord(letter) - ord("A")) for letter in code.upper())


FLAGS = SPECIAL_FLAGS + tuple(flag(code) for code in COUNTRIES)


def popup_flags() -> Qt.WindowType:
    """A popup (closes on a click outside); offscreen has no popups: a frameless window."""
    if QGuiApplication.platformName() in ("offscreen", "minimal"):
        return Qt.WindowType.Window | Qt.WindowType.FramelessWindowHint
    return Qt.WindowType.Popup


@dataclass(frozen=True, slots=True)
class Category:
    key: str
    title: str
    icon: str
    emoji: tuple[str, ...]


CATEGORIES: Final = (
    Category("smileys", "Smileys & emotion", "😀", SMILEYS),
    Category("people", "People & body", "👋", PEOPLE_TONED + PEOPLE_PLAIN),
    Category("nature", "Animals & nature", "🐻", NATURE),
    Category("food", "Food & drink", "🍔", FOOD),
    Category("activities", "Activities", "⚽", ACTIVITIES),
    Category("travel", "Travel & places", "🚗", TRAVEL),
    Category("objects", "Objects", "💡", OBJECTS),
    Category("symbols", "Symbols", "❤️", SYMBOLS),
    Category("flags", "Flags", "🏳️", FLAGS),
)
_TONEABLE: Final = frozenset(PEOPLE_TONED)
_REGIONAL_A: Final = 0x1F1E6


def emoji_name(emoji: str) -> str:
    """A lower-case English name ("thumbs up sign", "flag: Germany")."""
    letters = [ord(c) - _REGIONAL_A for c in emoji if _REGIONAL_A <= ord(c) <= 0x1F1FF]
    if len(letters) == 2:
        code = "".join(chr(ord("A") + n) for n in letters)
        return f"flag: {COUNTRIES.get(code, code)}".lower()
    parts = []
    for char in emoji:
        if char in (VS16, ZWJ, "\u20e3") or char in TONES[1:]:
            continue
        try:
            parts.append(unicodedata.name(char).lower())
        except ValueError:
            continue
    return " ".join(parts)


def with_tone(emoji: str, tone: str) -> str:
    """``emoji`` in skin tone ``tone`` (a Fitzpatrick modifier), if it takes one."""
    if not tone or emoji not in _TONEABLE:
        return emoji
    return emoji.replace(VS16, "") + tone


class EmojiDelegate(QStyledItemDelegate):
    """One emoji, large and centred, on a rounded highlight when current."""

    def sizeHint(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> QSize:
        return QSize(CELL, CELL)

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        c = colors()
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        rect = QRectF(option.rect).adjusted(2, 2, -2, -2)
        state = option.state
        paint_row_highlight(painter, rect, state, c, 8)
        font = QFont(painter.font())
        font.setPixelSize(EMOJI_PX)
        painter.setFont(font)
        painter.setPen(c.text)
        painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, str(index.data(EMOJI_ROLE)))
        painter.restore()


class EmojiPicker(QFrame):
    """A popup to pick an emoji; :attr:`picked` has it."""

    picked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, popup_flags())
        self.setProperty("class", "card")
        self.setAccessibleName("Emoji")
        self.setFixedSize(380, 420)
        self._tone = ""
        self._category = CATEGORIES[0]
        self._names = {e: emoji_name(e) for c in CATEGORIES for e in c.emoji}
        layout = QVBoxLayout(self)
        layout.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(6)
        self.filter = line_edit("Search emoji", "Search emoji")
        self.filter.textChanged.connect(self._refresh)
        self.filter.installEventFilter(self)
        self.filter.returnPressed.connect(self.pick_current)
        layout.addWidget(self.filter)

        self.tabs = QHBoxLayout()
        self.tabs.setSpacing(0)
        self.category_buttons = QButtonGroup(self)
        for index, category in enumerate(CATEGORIES):
            tab = QToolButton()
            tab.setText(category.icon)
            tab.setStyleSheet(f"font-size: {TAB_PX}px;")
            tab.setCheckable(True)
            tab.setToolTip(category.title)
            tab.setAccessibleName(category.title)
            tab.setAutoRaise(True)
            self.category_buttons.addButton(tab, index)
            self.tabs.addWidget(tab)
        self.category_buttons.button(0).setChecked(True)
        self.category_buttons.idClicked.connect(self.show_category)
        layout.addLayout(self.tabs)

        self.heading = label(self._category.title, "caption")
        layout.addWidget(self.heading)
        self.grid = QListWidget()
        self.grid.setAccessibleName("Emoji")
        self.grid.setViewMode(QListView.ViewMode.IconMode)
        self.grid.setFlow(QListView.Flow.LeftToRight)
        self.grid.setMovement(QListView.Movement.Static)
        self.grid.setResizeMode(QListView.ResizeMode.Adjust)
        self.grid.setGridSize(QSize(CELL, CELL))
        self.grid.setUniformItemSizes(True)
        self.grid.setWrapping(True)
        self.grid.setSpacing(0)
        self.grid.setItemDelegate(EmojiDelegate(self.grid))
        self.grid.itemActivated.connect(self._activated)
        self.grid.itemClicked.connect(self._activated)
        self.grid.installEventFilter(self)
        layout.addWidget(self.grid, 1)

        tones = QHBoxLayout()
        tones.setSpacing(2)
        tones.addWidget(label("Skin tone", "caption", wrap=False))
        tones.addStretch(1)
        self.tone_buttons = QButtonGroup(self)
        for index, (tone, name) in enumerate(zip(TONES, TONE_NAMES, strict=True)):
            button = QToolButton()
            button.setText("✋" + tone)
            button.setStyleSheet(f"font-size: {TAB_PX}px;")
            button.setCheckable(True)
            button.setAutoRaise(True)
            button.setAccessibleName(f"{name} skin tone")
            button.setToolTip(f"{name} skin tone")
            self.tone_buttons.addButton(button, index)
            tones.addWidget(button)
        self.tone_buttons.button(0).setChecked(True)
        self.tone_buttons.idClicked.connect(self.set_tone)
        layout.addLayout(tones)
        self.empty = label("No emoji match.", "muted")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.hide()
        layout.addWidget(self.empty)
        self._refresh()

    # -- content -----------------------------------------------------------------------

    def show_category(self, index: int) -> None:
        self._category = CATEGORIES[index]
        self.category_buttons.button(index).setChecked(True)
        if self.filter.text():
            self.filter.clear()  # refreshes
        else:
            self._refresh()

    def set_tone(self, index: int) -> None:
        self._tone = TONES[index]
        self.tone_buttons.button(index).setChecked(True)
        self._refresh()

    def _refresh(self, *_: object) -> None:
        needle = self.filter.text().strip().casefold()
        if needle:
            words = needle.split()
            shown = [
                e for c in CATEGORIES for e in c.emoji if all(w in self._names[e] for w in words)
            ]
            self.heading.setText("Search results")
        else:
            shown = list(self._category.emoji)
            self.heading.setText(self._category.title)
        self.grid.clear()
        seen: set[str] = set()
        for emoji in shown:
            if emoji in seen:
                continue
            seen.add(emoji)
            text = with_tone(emoji, self._tone)
            item = QListWidgetItem(text)
            item.setData(EMOJI_ROLE, text)
            item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            item.setSizeHint(QSize(CELL, CELL))
            name = self._names[emoji]
            item.setToolTip(name)
            item.setData(Qt.ItemDataRole.AccessibleTextRole, name)
            self.grid.addItem(item)
        self.grid.setCurrentRow(0)
        self.empty.setVisible(self.grid.count() == 0)
        self.grid.setVisible(self.grid.count() > 0)

    def shown(self) -> list[str]:
        return [str(self.grid.item(row).data(EMOJI_ROLE)) for row in range(self.grid.count())]

    # -- picking -------------------------------------------------------------------------

    def popup_at(self, global_pos: QPoint) -> None:
        """Show above ``global_pos`` (or below, if there is no room), kept on screen."""
        screen = QGuiApplication.screenAt(global_pos) or QGuiApplication.primaryScreen()
        area = screen.availableGeometry()
        x = min(max(area.left(), global_pos.x() - self.width() // 2), area.right() - self.width())
        y = global_pos.y() - self.height() - 8
        if y < area.top():
            y = min(global_pos.y() + 8, area.bottom() - self.height())
        self.move(x, y)
        self.filter.clear()
        self.show()
        self.filter.setFocus(Qt.FocusReason.PopupFocusReason)

    def pick_current(self) -> None:
        item = self.grid.currentItem()
        if item is not None:
            self._activated(item)

    def _activated(self, item: QListWidgetItem) -> None:
        self.picked.emit(str(item.data(EMOJI_ROLE)))
        self.hide()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() != QEvent.Type.KeyPress:
            return False
        assert isinstance(event, QKeyEvent)
        key = event.key()
        if watched is self.filter and key in (Qt.Key.Key_Down, Qt.Key.Key_Up):
            self.grid.setFocus()
            return False
        if watched is self.grid and key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.pick_current()
            return True
        if watched is self.grid and event.text().isprintable() and event.text().strip():
            self.filter.setFocus()
            self.filter.setText(self.filter.text() + event.text())
            return True
        return False

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.hide()
            return
        super().keyPressEvent(event)
