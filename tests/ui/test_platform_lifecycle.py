"""The app's process (ui.platform.lifecycle): the QApplication, quitting, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QWidget

from tests.ui.conftest import Runner, wait_until
from ui.platform import lifecycle

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app_settings(qapp: QApplication) -> Iterator[QApplication]:
    """make_application() on the tests' QApplication, undone afterwards."""
    quits = qapp.quitOnLastWindowClosed()
    try:
        assert lifecycle.make_application() is qapp
        yield qapp
    finally:
        qapp.lastWindowClosed.disconnect(lifecycle._last_window_closed)
        qapp.setQuitOnLastWindowClosed(quits)


def test_the_application_is_named_and_has_its_icon(app_settings: QApplication) -> None:
    assert app_settings.applicationName() == "Messenger"
    assert app_settings.desktopFileName() == "messenger"
    assert not app_settings.windowIcon().isNull()
    assert not app_settings.quitOnLastWindowClosed()


def test_a_new_application_passes_fractional_scales_through() -> None:
    code = (
        "from PySide6.QtGui import QGuiApplication\n"
        "from ui.platform.lifecycle import make_application\n"
        "app = make_application()\n"
        "print(QGuiApplication.highDpiScaleFactorRoundingPolicy().name)\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QT_SCALE_FACTOR="1.5")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "PassThrough"


def test_closing_the_last_window_quits_unless_a_tray_icon_remains(
    app_settings: QApplication, run: Runner
) -> None:
    quits: list[str] = []
    tray = [True]
    unregister = lifecycle.register_window(lambda: quits.append("quit"), lambda: tray[0])

    async def scenario() -> None:
        window = QWidget()
        window.show()
        window.close()  # the last window, but the tray icon offers Open/Quit
        await wait_until(lambda: not window.isVisible())
        await _spin()
        assert quits == []
        tray[0] = False
        window.show()
        window.close()
        await wait_until(lambda: quits == ["quit"])

    try:
        run(scenario())
    finally:
        unregister()
    lifecycle.quit_all()  # unregistered: nothing more is called
    assert quits == ["quit"]


def test_switching_screens_does_not_quit(app_settings: QApplication, run: Runner) -> None:
    quits: list[str] = []
    unregister = lifecycle.register_window(lambda: quits.append("quit"))

    async def scenario() -> None:
        first = QWidget()
        first.show()
        second = QWidget()
        first.close()  # as App does: close the onboarding, then show the main window
        second.show()
        await _spin()
        assert quits == []
        second.close()
        await wait_until(lambda: quits == ["quit"])

    try:
        run(scenario())
    finally:
        unregister()


async def _spin() -> None:
    import asyncio

    for _ in range(5):  # a few event-loop turns: the decision is deferred by one
        await asyncio.sleep(0.01)


def test_the_stopper_quits_the_windows_or_cancels(run: Runner) -> None:
    stopper = lifecycle._Stopper()
    quits: list[str] = []
    unregister = lifecycle.register_window(lambda: quits.append("quit"))
    try:
        stopper._on_signal(signal.SIGTERM, None)
        assert quits == ["quit"]
        assert stopper.status(0) == 128 + signal.SIGTERM
    finally:
        unregister()
    assert lifecycle._Stopper().status(3) == 3

    async def no_window_yet() -> bool:
        import asyncio

        early = lifecycle._Stopper()
        early.task = asyncio.ensure_future(asyncio.sleep(60))
        early._on_signal(signal.SIGINT, None)  # no window registered: the task stops
        await asyncio.sleep(0)
        return early.task.cancelled() and early.status(0) == 128 + signal.SIGINT

    assert run(no_window_yet())


def test_scrubbed_errors_keep_their_type_and_lose_their_message() -> None:
    clean = lifecycle.scrubbed(ValueError("Alice's secret message"))
    assert type(clean) is ValueError
    assert "secret" not in str(clean)
