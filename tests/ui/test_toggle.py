"""The switch look of toggles and the button states of the stylesheet.

The settings toggles are :class:`~ui.widgets.toggle.ToggleSwitch`: a track
with a white knob on the left when off and on the right when on, crisp at
1x and 2x; disabled and checked buttons look different from enabled ones.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QPushButton, QWidget

from ui import theme
from ui.preferences import Theme
from ui.widgets.toggle import KNOB_MARGIN, TRACK_HEIGHT, ToggleSwitch


@pytest.fixture(params=[Theme.LIGHT, Theme.DARK], ids=["light", "dark"])
def themed(request: pytest.FixtureRequest, qapp: QApplication) -> Iterator[Theme]:
    theme.apply_theme(qapp, request.param)
    yield request.param
    theme.apply_theme(qapp, Theme.LIGHT)


def grab(widget: QWidget, scale: float) -> QImage:
    image = QImage(widget.size() * scale, QImage.Format.Format_ARGB32)
    image.setDevicePixelRatio(scale)
    image.fill(theme.colors().window)
    widget.render(image)
    return image


def pixel(image: QImage, x: float, y: float) -> QColor:
    scale = image.devicePixelRatio()
    return image.pixelColor(int(x * scale), int(y * scale))


def is_white(color: QColor) -> bool:
    return min(color.red(), color.green(), color.blue()) > 235


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_the_knob_slides_and_the_track_takes_the_accent(
    themed: Theme, scale: float, qtbot: object
) -> None:
    switch = ToggleSwitch("Send read receipts")
    switch.resize(switch.sizeHint())
    track = switch.track_rect()
    y = track.center().y()
    left_knob = track.left() + KNOB_MARGIN + (TRACK_HEIGHT - 2 * KNOB_MARGIN) / 2
    right_knob = track.right() - KNOB_MARGIN - (TRACK_HEIGHT - 2 * KNOB_MARGIN) / 2
    off = grab(switch, scale)
    assert is_white(pixel(off, left_knob, y))
    assert not is_white(pixel(off, right_knob, y))
    switch.setChecked(True)
    on = grab(switch, scale)
    assert is_white(pixel(on, right_knob, y))
    assert pixel(on, left_knob + 2, y) == theme.colors().accent
    # disabled: the track fades
    switch.setEnabled(False)
    faded = grab(switch, scale)
    assert pixel(faded, left_knob + 2, y) != theme.colors().accent
    # at 2x the knob's edge is antialiased, not a staircase of one colour
    if scale == 2.0:
        edge = {pixel(on, right_knob + 5 + x / 2, y - 2).name() for x in range(9)}
        assert len(edge) >= 3


def test_a_click_anywhere_on_the_row_toggles(qtbot: object) -> None:
    switch = ToggleSwitch("Close to the tray")
    switch.resize(switch.sizeHint())
    switch.show()
    assert switch.accessibleName() == "Close to the tray"
    assert switch.property("class") == "toggle"
    QTest.mouseClick(
        switch, Qt.MouseButton.LeftButton, pos=QPoint(switch.width() - 4, switch.height() // 2)
    )
    assert switch.isChecked()
    QTest.keyClick(switch, Qt.Key.Key_Space)
    assert not switch.isChecked()
    switch.close()


@pytest.mark.parametrize("kind", ["primary", "secondary", "danger"])
def test_disabled_buttons_look_disabled(themed: Theme, kind: str, qtbot: object) -> None:
    button = QPushButton("Export")
    button.setProperty("class", kind)
    button.resize(120, 36)
    enabled = grab(button, 1.0)
    button.setEnabled(False)
    disabled = grab(button, 1.0)
    assert enabled != disabled
    if kind != "secondary":  # a filled button keeps a fill, only fainter
        assert pixel(enabled, 8, 18) != pixel(disabled, 8, 18)


def test_a_checked_secondary_button_is_marked(themed: Theme, qtbot: object) -> None:
    button = QPushButton("Group")
    button.setProperty("class", "secondary")
    button.setCheckable(True)
    button.resize(120, 36)
    plain = grab(button, 1.0)
    button.setChecked(True)
    checked = grab(button, 1.0)
    assert pixel(plain, 10, 18) != pixel(checked, 10, 18)
