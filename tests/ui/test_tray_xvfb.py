"""The real tray icon under Xvfb, with a real system tray (``trayer``).

A child process runs under ``xvfb-run`` with the xcb platform, starts
``trayer`` (a small freedesktop system tray) on that display, waits until
Qt sees it (``QSystemTrayIcon.isSystemTrayAvailable``), then builds the
app's :class:`ui.platform.tray.QtTray`, sets 3 unread messages and reports
what it sees: the icon embedded in the tray (a geometry on screen), its
tooltip, and the badge's red in the pixels grabbed from the screen where the
icon is. Without a tray the app still works (``test_platform_services.py``,
``test_app.py``). Xvfb or trayer missing is a failure, not a skip:
``apt-get install xvfb xauth trayer``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120

CHILD = r"""
import json, os, subprocess, sys, time
from PySide6.QtCore import QRect
from PySide6.QtGui import QColor, QGuiApplication
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

tray_process = subprocess.Popen(
    ["trayer", "--edge", "top", "--align", "right", "--widthtype", "pixel", "--width", "120",
     "--height", "32", "--iconspacing", "4", "--expand", "false"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
)
result = {}
try:
    app = QApplication(sys.argv[:1])
    deadline = time.monotonic() + 60
    while not QSystemTrayIcon.isSystemTrayAvailable():
        app.processEvents()
        if time.monotonic() > deadline or tray_process.poll() is not None:
            break
        time.sleep(0.05)
    result["available"] = QSystemTrayIcon.isSystemTrayAvailable()
    from ui.platform.tray import BADGE_COLOUR, QtTray

    tray = QtTray()
    result["tray_available"] = tray.available()
    tray.set_unread(3)
    icon = tray._icon
    geometry = QRect()
    red = QColor(BADGE_COLOUR)

    def count_red(geometry):
        shot = QGuiApplication.primaryScreen().grabWindow(
            0, geometry.x(), geometry.y(), geometry.width(), geometry.height()
        ).toImage()
        return sum(
            1
            for y in range(shot.height())
            for x in range(shot.width())
            if abs(shot.pixelColor(x, y).red() - red.red()) < 40
            and abs(shot.pixelColor(x, y).green() - red.green()) < 40
            and abs(shot.pixelColor(x, y).blue() - red.blue()) < 40
        )

    badge_pixels = 0
    deadline = time.monotonic() + 60
    while icon is not None and time.monotonic() < deadline:
        app.processEvents()
        geometry = icon.geometry()
        if geometry.isValid() and geometry.width() > 0:
            badge_pixels = count_red(geometry)
            if badge_pixels:
                break
        time.sleep(0.05)
    result["visible"] = bool(icon is not None and icon.isVisible())
    result["geometry"] = [geometry.x(), geometry.y(), geometry.width(), geometry.height()]
    result["tooltip"] = icon.toolTip() if icon is not None else ""
    result["badge_pixels"] = badge_pixels
    tray.set_unread(0)
    after = badge_pixels
    deadline = time.monotonic() + 30
    while icon is not None and badge_pixels and time.monotonic() < deadline:
        app.processEvents()
        after = count_red(icon.geometry())
        if after == 0:
            break
        time.sleep(0.05)
    result["badge_pixels_after"] = after
    result["tooltip_after"] = icon.toolTip() if icon is not None else ""
    tray.close()
finally:
    tray_process.terminate()
    tray_process.wait(10)
print("RESULT " + json.dumps(result), flush=True)
"""


def test_the_tray_icon_shows_in_a_real_tray_with_its_badge(tmp_path: Path) -> None:
    xvfb_run = shutil.which("xvfb-run")
    assert xvfb_run and shutil.which("Xvfb"), "apt-get install xvfb xauth"
    assert shutil.which("trayer"), "a system tray for the test: apt-get install trayer"
    script = tmp_path / "tray_child.py"
    script.write_text(CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QT_")}
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS"):
        env.pop(name, None)
    env.update(
        {
            "QT_QPA_PLATFORM": "xcb",
            "PYTHONPATH": str(ROOT),
            "XDG_RUNTIME_DIR": str(tmp_path),
            "HOME": str(tmp_path),
        }
    )
    done = subprocess.run(
        [xvfb_run, "-a", "-s", "-screen 0 1024x768x24", sys.executable, str(script)],
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-2000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    assert result["available"] is True, result
    assert result["tray_available"] is True and result["visible"] is True, result
    _x, _y, width, height = result["geometry"]
    assert width > 0 and height > 0, result  # embedded in the tray, on screen
    assert result["tooltip"] == "Messenger: 3 unread"
    assert result["badge_pixels"] > 4, result  # the red badge is on screen
    assert result["tooltip_after"] == "Messenger"
    assert result["badge_pixels_after"] == 0, result  # no badge: no red in the icon
