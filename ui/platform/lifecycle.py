"""The app's process: QApplication, qasync loop, log, signals and quitting.

Shared by ``ui.__main__`` (one profile's window) and ``ui.demo`` (two
windows) -- and kept out of ``ui/__main__.py``, which ``python -m ui`` runs
as ``__main__`` so that a second import of it would have state of its own.

* :func:`make_application` -- the :class:`QApplication` with its name,
  organisation, desktop file, icon and HiDPI rounding ``PassThrough``;
* :func:`configure_logging` -- ``<data dir>/logs/ui.log`` (0700 directory,
  0600 file): event names and error types, never keys, passphrases,
  message text or server addresses (httpx's request lines are left out);
* :func:`register_window` / :func:`quit_all` -- each running window's
  quit, called when the last window is closed (unless a tray icon remains)
  and on SIGINT/SIGTERM (:data:`stopper`, installed first thing so that a
  signal during start-up is not lost);
* :func:`run_on_qasync` -- runs a coroutine on a :class:`qasync.QEventLoop`
  and cleans up after it (remaining tasks cancelled, loop closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final

from PySide6.QtCore import Qt, QTimer, QtMsgType, qInstallMessageHandler
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from ui import resources

__all__ = [
    "APP_NAME",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "configure_logging",
    "install_log_hooks",
    "log_error",
    "log_path",
    "make_application",
    "quit_all",
    "register_window",
    "run_on_qasync",
    "say",
    "scrubbed",
    "stopper",
]

log = logging.getLogger("ui")

APP_NAME: Final = "Messenger"
ORGANIZATION: Final = "Messenger"
ORGANIZATION_DOMAIN: Final = "messenger.example.org"
DESKTOP_FILE: Final = "messenger"
EXIT_FAILED: Final = 1
EXIT_INTERRUPTED: Final = 130
_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)

#: Each running window's quit (see :func:`quit_all`).
_quit_handlers: list[Callable[[], None]] = []
#: Whether a tray icon is shown (then closing every window keeps the app running).
_tray_shown: list[Callable[[], bool]] = []


def say(text: str) -> None:
    """One line for the terminal (a GUI launch on Windows has none)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        print(text, flush=True)


def log_path(data_dir: Path) -> Path:
    return data_dir / "logs" / "ui.log"


def configure_logging(data_dir: Path) -> Path | None:
    """Log to ``<data dir>/logs/ui.log`` (0700 directory, 0600 file); its path.

    None when the file cannot be written (then the log goes to stderr).
    """
    path = log_path(data_dir)
    handler: logging.Handler
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)
        handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        handler = logging.StreamHandler(sys.stderr)
        path = None  # type: ignore[assignment]
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    # httpx logs every request with its URL at INFO: server addresses stay out.
    for noisy in ("httpx", "httpcore", "httpx_ws", "websockets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path


def scrubbed(error: BaseException) -> BaseException:
    """A copy of ``error`` without its arguments (its message may hold user data)."""
    try:
        clean = type(error).__new__(type(error))
        clean.args = ()
        return clean
    except Exception:
        return RuntimeError(type(error).__name__)


def log_error(what: str, error: BaseException) -> None:
    """Log ``error``'s type and traceback (never its message) under ``what``."""
    log.error(
        "%s: %s",
        what,
        type(error).__name__,
        exc_info=(type(error), scrubbed(error), error.__traceback__),
    )


def _log_unexpected(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    log.error("unexpected %s", kind.__name__, exc_info=(kind, scrubbed(value), tb))


def install_log_hooks() -> None:
    """Unexpected exceptions and Qt's own messages go to the log."""
    sys.excepthook = _log_unexpected
    _qt_messages()


def _qt_messages() -> None:
    qt_log = logging.getLogger("ui.qt")
    levels = {
        QtMsgType.QtDebugMsg: logging.DEBUG,
        QtMsgType.QtInfoMsg: logging.INFO,
        QtMsgType.QtWarningMsg: logging.WARNING,
        QtMsgType.QtCriticalMsg: logging.ERROR,
        QtMsgType.QtFatalMsg: logging.CRITICAL,
    }

    def handler(kind: QtMsgType, _context: object, message: str) -> None:
        qt_log.log(levels.get(kind, logging.WARNING), "%s", message)

    qInstallMessageHandler(handler)


def make_application() -> QApplication:
    """The QApplication, made once and set up for the app."""
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        app = existing
    else:
        # Fractional scales (1.5) as they are, not rounded: before the app exists.
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
        )
        app = QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setOrganizationName(ORGANIZATION)
    app.setOrganizationDomain(ORGANIZATION_DOMAIN)
    app.setDesktopFileName(DESKTOP_FILE)
    app.setWindowIcon(resources.app_icon())
    # Qt must not stop the event loop under the running coroutines: closing
    # the last window asks each App to quit instead (which closes its client).
    app.setQuitOnLastWindowClosed(False)
    app.lastWindowClosed.connect(_last_window_closed)
    return app


def _last_window_closed() -> None:
    # Decided a moment later: an App switching screens (onboarding -> main
    # window) closes one window just before it shows the next.
    QTimer.singleShot(0, _quit_if_no_window)


def _quit_if_no_window() -> None:
    if any(w.isVisible() and w.isWindow() for w in QApplication.topLevelWidgets()):
        return
    if any(shown() for shown in _tray_shown):
        return  # the tray icon's menu still offers Open and Quit
    quit_all()


def quit_all() -> None:
    """Ask every running window to quit (last window closed, SIGINT, SIGTERM)."""
    for handler in list(_quit_handlers):
        handler()


def register_window(
    quit: Callable[[], None], tray_shown: Callable[[], bool] | None = None
) -> Callable[[], None]:
    """Register a window's quit (and whether its tray icon shows); the unregister call."""
    _quit_handlers.append(quit)
    if tray_shown is not None:
        _tray_shown.append(tray_shown)

    def unregister() -> None:
        with contextlib.suppress(ValueError):
            _quit_handlers.remove(quit)
        if tray_shown is not None:
            with contextlib.suppress(ValueError):
                _tray_shown.remove(tray_shown)

    return unregister


async def _guarded(coro: Coroutine[Any, Any, int]) -> int:
    try:
        result: int = await coro
        return result
    except asyncio.CancelledError:
        return EXIT_INTERRUPTED


class _Stopper:
    """SIGINT and SIGTERM: each window's own quit (drafts saved, client closed).

    Installed first thing, so a signal during start-up is not lost: it
    stops the app as soon as the event loop runs.
    """

    def __init__(self) -> None:
        self.received: list[int] = []
        self.task: asyncio.Task[int] | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for number in _SIGNALS:
            self._previous[number] = signal.signal(number, self._on_signal)

    def restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _on_signal(self, number: int, _frame: object) -> None:
        log.info("signal %d: quitting", number)
        self.received.append(number)
        self.stop()

    def stop(self) -> None:
        if _quit_handlers:
            quit_all()
        elif self.task is not None:
            self.task.cancel()

    def status(self, status: int) -> int:
        """The exit status: 128 + the signal's number after a signal."""
        return 128 + self.received[0] if self.received else status


stopper = _Stopper()


def run_on_qasync(app: QApplication, coro: Coroutine[Any, Any, int]) -> int:
    """Run ``coro`` on a qasync loop over ``app``; its result, 128+N after signal N."""
    import qasync  # type: ignore[import-untyped]

    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    loop.set_exception_handler(
        lambda _loop, context: log.error(
            "unhandled error in the event loop: %s",
            type(context.get("exception")).__name__
            if context.get("exception")
            else context.get("message"),
            exc_info=context.get("exception"),
        )
    )
    task = loop.create_task(_guarded(coro))
    stopper.task = task
    if stopper.received:  # a signal came while starting up: stop once running
        loop.call_soon(stopper.stop)
    # Python runs signal handlers only when it gets control: a timer gives it
    # control five times a second while Qt's event loop runs.
    ticker = QTimer()
    ticker.start(200)
    ticker.timeout.connect(lambda: None)
    try:
        try:
            status: int = loop.run_until_complete(task)
        except asyncio.CancelledError:
            status = EXIT_INTERRUPTED
        return stopper.status(status)
    finally:
        stopper.task = None
        ticker.stop()
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for leftover in pending:
            leftover.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        loop.close()
