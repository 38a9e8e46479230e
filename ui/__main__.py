"""``messenger`` / ``python -m ui``: the desktop app's entry point.

::

    messenger [--profile NAME] [--data-dir DIR] [--server URL | --local-server]
              [--demo] [LINK]

It builds the :class:`QApplication` (name, desktop file, icon, HiDPI
rounding ``PassThrough``), registers the bundled fonts, runs everything on
one qasync event loop, makes sure one instance runs per profile (a second
launch raises the running window and exits 0), and hands the window to
:class:`ui.app.App`. At the end the client is closed (by ``App``), a local
server started here is stopped, the remaining tasks are cancelled, and the
exit status is returned.

The log goes to ``<data dir>/logs/ui.log`` (directory 0700, file 0600): event
names and error types, never keys, passphrases, message text or addresses.

Exit status: 0 on a normal exit (also for a second launch that raised the
first), 1 when the app could not start, 2 for bad usage, 130 on Ctrl+C.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from ui.platform import PlatformServices
    from ui.platform.single_instance import SingleInstance

__all__ = ["QT_PACKAGES", "SMOKE_ENV", "build_parser", "main", "parse_args"]

log = logging.getLogger("ui")

#: The Debian packages that bring Qt's runtime libraries (scripts/run.sh installs them).
QT_PACKAGES: Final = (
    "libegl1 libgl1 libx11-6 libdbus-1-3 libfontconfig1 libglib2.0-0 libxkbcommon0 "
    "libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 "
    "libxcb-render-util0 libxcb-shape0 libxcb-xkb1 libwayland-cursor0 libwayland-egl1 "
    "fonts-dejavu-core"
)
#: Setting this to ``1`` runs the real-window smoke test instead of waiting
#: for a user (``ui.smoke``; used by ``tests/ui/test_xvfb_smoke.py``).
SMOKE_ENV: Final = "MESSENGER_UI_SMOKE"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="messenger",
        description="An end-to-end encrypted messenger (MLS, RFC 9420): the desktop app.",
        epilog="Without a display, use the command-line client: messenger-cli --help.",
    )
    parser.add_argument(
        "--profile",
        default="default",
        metavar="NAME",
        help="the profile to open (default: default); one window per profile",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="where profiles are kept (default: MESSENGER_HOME or the system's data folder)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--server",
        metavar="URL",
        help="the server to suggest when signing up (an http(s) URL or an invite link)",
    )
    where.add_argument(
        "--local-server",
        action="store_true",
        help="run a server on this computer (SQLite in the data folder) and suggest it",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="open two windows, Alice and Bob, already chatting through a local server",
    )
    parser.add_argument(
        "link",
        nargs="?",
        help="a messenger: link (from the desktop's link handler); opens the app",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if args.demo and (args.server or args.local_server):
        build_parser().error("--demo runs its own local server; leave out --server")
    return args


async def _run_profile(
    args: argparse.Namespace, data_dir: Path, services: PlatformServices, single: SingleInstance
) -> int:
    """One profile's window until the user quits; the exit status."""
    from ui.app import App
    from ui.local_server import LocalServerStarter
    from ui.platform.lifecycle import register_window, say

    local = LocalServerStarter(data_dir)
    server_url: str | None = args.server
    try:
        if args.local_server:
            server_url = await local.start()
            say(f"Local server: {server_url} (SQLite in {local.directory})")
        app = App(
            args.data_dir,
            args.profile,
            services,
            local_server=local,
            server_url=server_url,
            link=args.link,
        )
        single.activated.connect(app.show_window)
        single.link_received.connect(app.open_link)
        unregister = register_window(app.quit, services.tray.available)
        try:
            if os.environ.get(SMOKE_ENV) == "1":
                from ui import smoke

                return await smoke.run(app, args, server_url)
            return await app.run_until_quit()
        finally:
            unregister()
    finally:
        await local.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the app; the exit status."""
    args = parse_args(argv)
    missing = _missing_app_packages()
    if missing:
        print(
            "Messenger cannot start: the desktop app's packages are not installed "
            f"({', '.join(missing)} missing). Install them with: pip install 'messenger[app]'",
            file=sys.stderr,
        )
        return 1
    try:
        from ui.platform.lifecycle import stopper
    except ImportError as exc:
        if not _qt_missing(exc):
            raise
        print(
            f"Messenger cannot start: Qt's runtime libraries are missing ({exc}). "
            f"On Debian or Ubuntu: sudo apt-get install {QT_PACKAGES}",
            file=sys.stderr,
        )
        return 1
    stopper.install()
    try:
        return _main(args)
    finally:
        stopper.restore()


#: The desktop app's own packages (pyproject.toml's ``[app]`` extra), by import name.
_APP_PACKAGES: Final = ("PySide6", "qasync", "segno", "desktop_notifier")


def _missing_app_packages() -> list[str]:
    """The ``[app]`` packages that are not installed (found without importing them)."""
    missing = []
    for name in _APP_PACKAGES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def _qt_missing(error: ImportError) -> bool:
    """Whether ``error`` is Qt failing to load (a shared library), not a bug."""
    return (error.name or "").startswith("PySide6") or "shared object" in str(error)


def _main(args: argparse.Namespace) -> int:
    from messenger.client import default_data_dir
    from ui.platform.lifecycle import (
        EXIT_FAILED,
        configure_logging,
        install_log_hooks,
        log_error,
        make_application,
        run_on_qasync,
        say,
    )

    if args.demo:
        from ui import demo

        return demo.main(args)
    data_dir = (args.data_dir or default_data_dir()).expanduser()
    configure_logging(data_dir)
    install_log_hooks()
    log.info("starting")

    from ui.platform import real_services
    from ui.platform.single_instance import SingleInstance, instance_key

    app = make_application()
    single = SingleInstance(instance_key(args.data_dir, args.profile))
    if not single.acquire(link=args.link):
        say(f"Messenger is already running with profile {args.profile!r}; its window was raised.")
        log.info("another instance runs this profile; asked it to raise its window")
        return 0
    from ui.theme import load_fonts

    load_fonts()
    services = real_services(app)
    try:
        status = run_on_qasync(app, _run_profile(args, data_dir, services, single))
    except Exception as exc:
        log_error("the app stopped", exc)
        say("Messenger stopped because of an error; see the log file for details.")
        status = EXIT_FAILED
    finally:
        with contextlib.suppress(Exception):
            services.close()
        single.release()
    log.info("exiting with status %d", status)
    return status


if __name__ == "__main__":
    sys.exit(main())
