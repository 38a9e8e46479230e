"""The bundled resources (ui.resources, resources/): fonts, icons, desktop files."""

from __future__ import annotations

import configparser
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PySide6.QtGui import QColor, QFontDatabase, QImage
from PySide6.QtWidgets import QApplication

from ui import resources

ROOT = Path(__file__).resolve().parents[2]


def test_resources_dir_in_the_tree_in_a_bundle_and_overridden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert resources.resources_dir() == ROOT / "resources"
    assert resources.fonts_dir() == ROOT / "resources" / "fonts"
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resources.resources_dir() == tmp_path / "resources"
    monkeypatch.setenv("MESSENGER_RESOURCES", str(tmp_path / "elsewhere"))
    assert resources.resources_dir() == tmp_path / "elsewhere"


def test_every_font_has_its_licence() -> None:
    fonts = resources.fonts_dir()
    names = sorted(p.name for p in fonts.iterdir())
    for font in ("Inter-Regular.otf", "Inter-Medium.otf", "Inter-SemiBold.otf", "Inter-Bold.otf"):
        assert font in names
    assert "NotoColorEmoji.ttf" in names
    assert "DroidSansFallbackFull.ttf" in names
    for licence in ("Inter", "NotoColorEmoji", "DroidSansFallback", "Apache-2.0"):
        assert (fonts / f"LICENSE-{licence}.txt").stat().st_size > 500
    readme = (fonts / "README.md").read_text()
    for font in names:
        if font.endswith((".otf", ".ttf")):
            assert font in readme


def test_the_fonts_load_and_cover_emoji_and_cjk(qapp: QApplication) -> None:
    families: set[str] = set()
    for path in resources.fonts_dir().iterdir():
        if path.suffix in (".otf", ".ttf"):
            font_id = QFontDatabase.addApplicationFont(str(path))
            assert font_id >= 0, path.name
            families.update(QFontDatabase.applicationFontFamilies(font_id))
    assert {"Inter", "Noto Color Emoji", "Droid Sans Fallback"} <= families
    from PySide6.QtGui import QFont, QFontMetrics

    assert QFontMetrics(QFont("Noto Color Emoji")).inFontUcs4(0x1F44D)  # 👍
    assert QFontMetrics(QFont("Droid Sans Fallback")).inFontUcs4(0x4F60)  # 你
    assert QFontMetrics(QFont("Inter")).inFontUcs4(ord("é"))


def _count(image: QImage, colour: QColor) -> int:
    found = 0
    for x in range(image.width()):
        for y in range(image.height()):
            pixel = image.pixelColor(x, y)
            if pixel.alpha() > 200 and (
                abs(pixel.red() - colour.red())
                + abs(pixel.green() - colour.green())
                + abs(pixel.blue() - colour.blue())
                < 30
            ):
                found += 1
    return found


@pytest.mark.parametrize("name", resources.ICON_NAMES)
def test_each_icon_renders_in_the_colour_asked(qapp: QApplication, name: str) -> None:
    red = QColor("#E0245E")
    image = resources.icon_pixmap(name, 40, color=red).toImage()
    assert image.width() == 40
    assert _count(image, red) > 20, f"{name} drew almost nothing in the colour asked"
    assert _count(image, QColor(resources.ICON_INK)) == 0  # every stroke was recoloured
    hidpi = resources.icon_pixmap(name, 20, color=red, scale=2.0)
    assert (hidpi.width(), hidpi.devicePixelRatio()) == (40, 2.0)


def test_icons_follow_the_palette_by_default(qapp: QApplication) -> None:
    from PySide6.QtGui import QPalette

    before = qapp.palette()
    palette = QPalette(before)
    palette.setColor(QPalette.ColorRole.ButtonText, QColor("#00A000"))
    qapp.setPalette(palette)
    try:
        icon = resources.icon("search")
        image = icon.pixmap(40, 40).toImage()
        assert _count(image, QColor("#00A000")) > 20
    finally:
        qapp.setPalette(before)
    assert not icon.isNull()


def test_a_missing_icon_is_named(qapp: QApplication) -> None:
    with pytest.raises(FileNotFoundError, match="no-such-icon"):
        resources.icon("no-such-icon")


def test_the_app_icon(qapp: QApplication) -> None:
    icon = resources.app_icon()
    accent = QColor("#3A76F0")
    image = icon.pixmap(128, 128).toImage()
    assert _count(image, accent) > 100  # the keyhole
    assert _count(image, QColor("#FFFFFF")) > 1000  # the speech bubble
    for size in resources.APP_ICON_SIZES:
        png = resources.icons_dir() / "hicolor" / f"{size}x{size}" / "apps" / "messenger.png"
        assert QImage(str(png)).size().width() == size
    svg = resources.icons_dir() / "hicolor" / "scalable" / "apps" / "messenger.svg"
    assert svg.read_bytes() == resources.app_icon_svg().read_bytes()


def test_the_desktop_entry() -> None:
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # type: ignore[assignment,method-assign]
    entry.read(resources.resources_dir() / "messenger.desktop", encoding="utf-8")
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application"
    assert section["Exec"] == "messenger %u"
    assert section["MimeType"] == "x-scheme-handler/messenger;"
    assert section["Icon"] == "messenger"
    assert section["Terminal"] == "false"


def test_the_appstream_metadata() -> None:
    root = ET.parse(resources.resources_dir() / "org.example.Messenger.metainfo.xml").getroot()
    assert root.tag == "component"
    assert root.findtext("id") == "org.example.Messenger"
    assert root.findtext("launchable") == "messenger.desktop"
    assert root.findtext("project_license") == "AGPL-3.0-or-later"
