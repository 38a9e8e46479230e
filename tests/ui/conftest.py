"""Fixtures for the desktop app's tests: offscreen Qt with a qasync loop.

pytest-qt's ``qtbot.waitUntil`` spins Qt but not asyncio, so async slots
would find no running loop (architecture guide, "qasync with pytest-qt").
Instead each test body is a coroutine run on a :class:`qasync.QEventLoop`
with :func:`run`, and waits with :func:`wait_until` (a condition polled
against a deadline, never a fixed sleep). Qt warnings fail the test
(``qt_log_level_fail`` in pyproject.toml).
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
import qasync
from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QApplication, QWidget

T = TypeVar("T")

#: The longest a single UI test coroutine may run before it fails.
RUN_TIMEOUT = 60.0


@pytest.fixture
def loop(qapp: QApplication) -> Iterator[asyncio.AbstractEventLoop]:
    """A qasync loop over pytest-qt's QApplication, closed after the test.

    Closing a test's last window must not quit the application (it would
    stop the loop under the test), and Qt objects caught in reference cycles
    are collected here, on the GUI thread, rather than later on another.
    """
    qapp.setQuitOnLastWindowClosed(False)
    event_loop = qasync.QEventLoop(qapp, already_running=False)
    asyncio.set_event_loop(event_loop)
    try:
        yield event_loop
    finally:
        pending = [t for t in asyncio.all_tasks(event_loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            event_loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        event_loop.run_until_complete(event_loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        event_loop.close()
        gc.collect()


@pytest.fixture(autouse=True)
def no_leftover_windows(qapp: QApplication) -> Iterator[None]:
    """Delete the top-level widgets a test left behind once it is over.

    Every widget alive is restyled when a test switches the theme
    (``QApplication.setStyleSheet``), so windows left over from earlier tests
    made each switch slower than the last (thousands of widgets by the end
    of the suite: seconds a switch). Set up before the test's own function
    fixtures, so it runs after their teardown (the loop is closed by then):
    the widgets are hidden, not closed, so no close handler runs.
    """
    before = {id(w) for w in qapp.topLevelWidgets()}
    yield
    left: list[QWidget] = [w for w in qapp.topLevelWidgets() if id(w) not in before]
    for widget in left:
        widget.hide()
        widget.deleteLater()
    if left:
        QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    gc.collect()


Runner = Callable[..., Any]


@pytest.fixture
def run(loop: asyncio.AbstractEventLoop) -> Runner:
    """``run(coro)``: run a test coroutine on the qasync loop, bounded in time."""

    def runner(coro: Awaitable[T], timeout: float = RUN_TIMEOUT) -> T:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))

    return runner


async def wait_until(
    predicate: Callable[[], object], *, timeout: float = 15.0, interval: float = 0.01
) -> None:
    """Poll ``predicate`` (Qt and asyncio both keep running) until true or fail."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {predicate!r}")
        await asyncio.sleep(interval)
