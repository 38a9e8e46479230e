"""``messenger --demo``: two windows, Alice and Bob, already chatting.

A newcomer sees the app working at once. The demo keeps its own data
directory (``<data dir>/demo`` unless ``--data-dir`` names one) with a
local server (SQLite, 127.0.0.1) and two profiles. The first time, it
prepares them through the public client API -- accounts on the local
server, each other as contacts, a one-to-one conversation with a few
messages, a reply and a reaction -- and then opens a window for each. The
next time it opens them again as they were left.

Both profiles are protected by :data:`DEMO_PASSPHRASE`, which is printed:
it protects demo data only. When the system keyring works, the windows open
without it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, Final

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QWidget

from messenger.client import MessageView, MessengerClient, Profiles, default_data_dir
from ui.app import App
from ui.platform.lifecycle import (
    EXIT_FAILED,
    configure_logging,
    install_log_hooks,
    log_error,
    make_application,
    register_window,
    run_on_qasync,
    say,
)
from ui.tasks import spawn

__all__ = ["DEMO_PASSPHRASE", "PROFILES", "demo_dir", "main", "open_windows", "prepare"]

log = logging.getLogger(__name__)

#: The demo profiles' passphrase (demo data only; printed on the terminal).
DEMO_PASSPHRASE: Final = "alice-and-bob-demo"  # noqa: S105 (demo data only)
#: The profiles and their display names.
PROFILES: Final = (("alice", "Alice"), ("bob", "Bob"))
#: Written once the demo data is complete; without it the data is made again.
READY_MARK: Final = ".demo-ready"
_STEP_TIMEOUT: Final = 60.0


def demo_dir(data_dir: Path | None) -> Path:
    return data_dir if data_dir is not None else default_data_dir() / "demo"


async def _until(what: str, check: Callable[[], Awaitable[bool]]) -> None:
    deadline = asyncio.get_running_loop().time() + _STEP_TIMEOUT
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"the demo timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def _received(client: MessengerClient, conversation_id: int) -> list[MessageView]:
    """The messages others wrote in a conversation (no notes, none of our own)."""
    return [
        view
        for view in await client.messages(conversation_id)
        if not view.message.outgoing and view.note is None
    ]


async def prepare(root: Path, server_url: str, *, kdf: Any = None) -> None:
    """Make Alice and Bob on ``server_url``, contacts with a short conversation.

    ``kdf``: scrypt parameters for the stores (tests pass cheap ones).
    """
    extra: dict[str, Any] = {"kdf": kdf} if kdf is not None else {}
    alice = await MessengerClient.create("alice", DEMO_PASSPHRASE, data_dir=root, **extra)
    bob = await MessengerClient.create("bob", DEMO_PASSPHRASE, data_dir=root, **extra)
    try:
        a = await alice.create_account(server_url, "alice")
        b = await bob.create_account(server_url, "bob")
        await alice.set_display_name("Alice")
        await bob.set_display_name("Bob")
        await alice.start()
        await bob.start()
        bob_contact = await alice.add_contact(b.address or b.invite_link)
        await bob.add_contact(a.address or a.invite_link)
        chat = await alice.create_conversation(bob_contact.account_id)
        await alice.send_text(chat.id, "Hi Bob! This is end-to-end encrypted with MLS.")

        async def bob_has_it() -> bool:
            chats = await bob.conversations()
            return bool(chats) and bool(await _received(bob, chats[0].id))

        await _until("Bob to receive Alice's message", bob_has_it)
        bob_chat = (await bob.conversations())[0].id
        first = (await _received(bob, bob_chat))[-1]
        await bob.reply(bob_chat, first.id, "Hi Alice! Got it. The server only sees ciphertext.")
        await bob.send_text(bob_chat, "Try the emoji picker 🙂 and the search (Ctrl+F).")

        async def alice_has_both() -> bool:
            return len(await _received(alice, chat.id)) >= 2

        await _until("Alice to receive Bob's messages", alice_has_both)
        last = (await _received(alice, chat.id))[-1]
        await alice.react(chat.id, last.id, "👍")
        await bob.mark_read(bob_chat)
        await alice.flush(_STEP_TIMEOUT)
        await bob.flush(_STEP_TIMEOUT)
    finally:
        await alice.close()
        await bob.close()


def _ready(root: Path) -> bool:
    profiles = Profiles(root)
    return (root / READY_MARK).is_file() and all(profiles.exists(n) for n, _ in PROFILES)


async def open_windows(root: Path, app: QApplication, *, kdf: Any = None) -> int:
    """Prepare the demo data if needed, then run both windows until they quit."""
    from ui.local_server import LocalServerStarter
    from ui.platform import real_services
    from ui.platform.single_instance import SingleInstance, instance_key

    local = LocalServerStarter(root)
    holders: list[SingleInstance] = []
    unregister: list[Callable[[], None]] = []
    try:
        if not _ready(root):
            shutil.rmtree(root / "profiles", ignore_errors=True)
            shutil.rmtree(local.directory, ignore_errors=True)
            url = await local.start()
            say(f"Preparing the demo: Alice and Bob on a local server at {url} ...")
            await prepare(root, url, kdf=kdf)
            (root / READY_MARK).write_text("ready\n", encoding="ascii")
        else:
            url = await local.start()
        say(f"Demo data: {root}")
        say(f"Both demo profiles are protected by the passphrase: {DEMO_PASSPHRASE}")
        windows: list[App] = []
        for name, _display in PROFILES:
            single = SingleInstance(instance_key(root, name))
            if not single.acquire():
                say(f"The demo's {name} window is already open; it was raised.")
                continue
            holders.append(single)
            services = real_services(app)
            window = App(root, name, services, local_server=local, passphrase=DEMO_PASSPHRASE)
            single.activated.connect(window.show_window)
            unregister.append(register_window(window.quit, services.tray.available))
            window.main_window_ready.connect(partial(_place, index=len(windows)))
            window.main_window_ready.connect(partial(_open_chat, window))
            windows.append(window)
        if not windows:
            return 0
        await asyncio.gather(*(w.run_until_quit() for w in windows))
        return 0
    finally:
        for undo in unregister:
            undo()
        for single in holders:
            single.release()
        await local.stop()


def _place(window: QWidget, *, index: int) -> None:
    """Side by side: Alice on the left half of the screen, Bob on the right."""
    screen = window.screen() or QGuiApplication.primaryScreen()
    if screen is None:
        return
    area = screen.availableGeometry()
    width = max(640, area.width() // 2)
    window.resize(min(width, 1100), min(area.height(), 800))
    window.move(area.x() + index * width, area.y())


def _open_chat(app: App, _window: QWidget) -> None:
    """Open the demo's conversation, so the timeline shows at once."""

    async def first() -> None:
        if app.client is None or app.window is None:
            return
        chats = await app.client.conversations()
        if chats and app.window is not None:
            app.window.open_conversation(chats[0].id)

    spawn(first())


def main(args: argparse.Namespace) -> int:
    """Run the demo (from ``ui.__main__``); the exit status."""
    from ui.theme import load_fonts

    root = demo_dir(args.data_dir)
    configure_logging(root)
    install_log_hooks()
    app = make_application()
    load_fonts()
    try:
        return run_on_qasync(app, open_windows(root, app))
    except Exception as exc:
        log_error("the demo stopped", exc)
        say(f"The demo stopped: {getattr(exc, 'user_message', type(exc).__name__)}")
        return EXIT_FAILED
