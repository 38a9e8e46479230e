"""The emoji picker: categories, names, skin tones, filter and keyboard."""

from __future__ import annotations

import unicodedata
from typing import Any

from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from tests.ui.test_onboarding import stay_open  # noqa: F401 (a fixture)
from ui.views.emoji_picker import (
    CATEGORIES,
    TONES,
    EmojiPicker,
    emoji_name,
    flag,
    with_tone,
)


def test_the_curated_set() -> None:
    keys = [c.key for c in CATEGORIES]
    assert keys == [
        "smileys",
        "people",
        "nature",
        "food",
        "activities",
        "travel",
        "objects",
        "symbols",
        "flags",
    ]
    total = sum(len(c.emoji) for c in CATEGORIES)
    assert total >= 300
    for category in CATEGORIES:
        for emoji in category.emoji:
            assert emoji_name(emoji), emoji  # every one has a name to filter by
    assert emoji_name(flag("DE")) == "flag: germany"
    assert emoji_name("👍") == "thumbs up sign"


def test_skin_tones_apply_to_people_only() -> None:
    assert with_tone("👍", TONES[3]) == "👍\U0001f3fd"
    assert with_tone("✌️", TONES[1]) == "✌\U0001f3fb"  # the VS16 gives way to the tone
    assert with_tone("🐶", TONES[5]) == "🐶"
    assert unicodedata.name(with_tone("👋", TONES[5])[-1]).startswith("EMOJI MODIFIER")


def test_filter_keyboard_and_pick(qtbot: Any) -> None:
    picker = EmojiPicker()
    qtbot.addWidget(picker)
    picked: list[str] = []
    picker.picked.connect(picked.append)
    picker.popup_at(QPoint(400, 500))
    assert picker.isVisible()
    assert picker.shown()[0] == "😀"
    picker.show_category(8)
    assert flag("JP") in picker.shown()
    QTest.keyClicks(picker.filter, "thumbs up")
    assert picker.shown() == ["👍"]
    picker.set_tone(2)
    assert picker.shown() == ["👍\U0001f3fc"]
    QTest.keyClick(picker.filter, Qt.Key.Key_Return)
    assert picked == ["👍\U0001f3fc"] and not picker.isVisible()
    picker.popup_at(QPoint(10, 10))  # near the top: opens below, on screen
    assert picker.filter.text() == ""
    picker.filter.setText("no such emoji name")
    assert picker.shown() == [] and picker.empty.isVisibleTo(picker)
    picker.filter.clear()
    picker.show_category(2)
    picker.grid.setFocus()
    QTest.keyClick(picker.grid, Qt.Key.Key_Right)
    QTest.keyClick(picker.grid, Qt.Key.Key_Return)
    assert picked[-1] == CATEGORIES[2].emoji[1]
    picker.show()
    QTest.keyClick(picker, Qt.Key.Key_Escape)
    assert not picker.isVisible()
