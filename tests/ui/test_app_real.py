"""Two app instances with real clients against a real server on 127.0.0.1.

Alice and Bob each get an :class:`~ui.app.App` with their own profile
under ``tmp_path`` (an in-memory OS keyring, cheap scrypt), talking to a
``messenger.server`` subprocess with SQLite (``start_local_server``). The
tests drive the windows the way a user does -- the composer, the message
menus, the list -- and check what the *other* window shows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

from messenger.client import (
    ConnectionState,
    MessageKind,
    MessengerClient,
    NoteKind,
    start_local_server,
)
from tests.client.helpers import FAST_KDF, PASSPHRASE, MemoryKeyring
from tests.integration.test_attack_outbox_lanes import unprocessable_commit
from tests.ui.conftest import wait_until
from ui import tasks, theme
from ui.app import App
from ui.platform import fake_services
from ui.preferences import Theme
from ui.views.main_window import MainWindow

TIMEOUT = 30.0


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@pytest.fixture(autouse=True)
def light(qapp: QApplication) -> Iterator[None]:
    # As ui.__main__ does: the App decides when to quit, not the last window.
    theme.apply_theme(qapp, Theme.LIGHT)
    qapp.setQuitOnLastWindowClosed(False)
    yield
    qapp.setQuitOnLastWindowClosed(True)


async def make_profile(root: Path, name: str, url: str) -> tuple[str, str]:
    """A profile with an account named ``name``; its account id and address."""
    client = await MessengerClient.create(name, PASSPHRASE, data_dir=root / name, kdf=FAST_KDF)
    try:
        info = await client.create_account(url, name)
        await client.set_display_name(name.capitalize())
        assert info.address is not None
        return info.account_id, info.address
    finally:
        await client.close()


async def open_app(root: Path, name: str) -> tuple[App, MainWindow]:
    app = App(root / name, name, fake_services(), root / name / "prefs")
    await app.start()
    assert app.window is not None
    window = app.window
    window.resize(1200, 760)
    await wait_until(lambda: window.loaded, timeout=TIMEOUT)
    return app, window


@contextlib.asynccontextmanager
async def apps(root: Path, url: str, *names: str) -> AsyncIterator[list[tuple[App, MainWindow]]]:
    opened: list[tuple[App, MainWindow]] = []
    try:
        for name in names:
            opened.append(await open_app(root, name))
        yield opened
    finally:
        for app, _ in opened:
            await app.shutdown()
        tasks.set_error_sink(None)


def last_body(window: MainWindow) -> str | None:
    views = window.pane.model.views()
    return views[-1].message.body if views else None


def type_and_send(window: MainWindow, text: str) -> None:
    field = window.pane.composer.field
    field.setFocus()
    # QTest types ASCII only: the rest goes in as a paste would
    ascii_part = text.encode("ascii", "ignore").decode()
    if ascii_part == text:
        QTest.keyClicks(field, text)
    else:
        field.insertPlainText(text)
    QTest.keyClick(field, Qt.Key.Key_Return)


def action(window: MainWindow, view: Any, text: str) -> Any:
    menu = window.pane.menu_for(view)
    for a in menu.actions():
        if a.text() == text:
            return a
        if a.menu() is not None:
            for sub in a.menu().actions():
                if sub.text() == text:
                    return sub
    raise AssertionError(f"no {text!r} in the menu")


@pytest.mark.usefixtures("memory_keyring")
@pytest.mark.qt_log_ignore("propagateSizeHints")
def test_two_windows_chat_edit_react_delete_and_search(tmp_path: Path, run: Any) -> None:
    async def body() -> None:
        async with start_local_server(tmp_path / "server", pow_difficulty=8) as url:
            alice_id, _ = await make_profile(tmp_path, "alice", url)
            bob_id, bob_address = await make_profile(tmp_path, "bob", url)
            async with apps(tmp_path, url, "alice", "bob") as [(a_app, alice), (b_app, bob)]:
                assert a_app.client is not None and b_app.client is not None
                # both windows start empty and online
                assert alice.list_model.rowCount() == 0
                await a_app.client.add_contact(bob_address)
                chat = await a_app.client.create_conversation(bob_id)
                await wait_until(lambda: alice.list_model.row_of(chat.id) >= 0, timeout=TIMEOUT)
                alice.open_conversation(chat.id)
                await wait_until(lambda: alice.current_conversation() == chat.id)

                # Alice -> Bob through the composer
                type_and_send(alice, "Hi Bob! 👋")
                await wait_until(lambda: bob.list_model.rowCount() == 1, timeout=TIMEOUT)
                bob_chat = bob.list_model.ids()[0]
                await wait_until(lambda: bob.list_model.view(bob_chat).unread == 1, timeout=TIMEOUT)
                await bob.show_conversation(bob_chat)
                await wait_until(lambda: last_body(bob) == "Hi Bob! 👋", timeout=TIMEOUT)
                # Bob's window marks it read; Alice's tick turns to "read"
                await wait_until(lambda: bob.list_model.view(bob_chat).unread == 0, timeout=TIMEOUT)

                # Bob -> Alice, as a reply
                first = bob.pane.model.views()[-1]
                action(bob, first, "Reply").trigger()
                type_and_send(bob, "Hello Alice")
                await wait_until(lambda: last_body(alice) == "Hello Alice", timeout=TIMEOUT)
                reply = alice.pane.model.views()[-1]
                assert reply.reply_to is not None and reply.reply_to.body == "Hi Bob! 👋"
                assert reply.sender_name == "Bob"
                spoken = alice.pane.model.index(alice.pane.model.rowCount() - 1).data(
                    Qt.ItemDataRole.AccessibleTextRole
                )
                assert spoken.startswith("Bob, ") and spoken.endswith(
                    "Hello Alice (in reply to a message)"
                )

                # Alice edits her message: Bob sees the new text and "edited"
                own = next(v for v in alice.pane.model.views() if v.message.outgoing)
                action(alice, own, "Edit").trigger()
                alice.pane.composer.field.selectAll()
                type_and_send(alice, "Hi Bob! (edited)")

                def bob_sees_edit() -> bool:
                    views = bob.pane.model.views()
                    return any(
                        v.message.body == "Hi Bob! (edited)" and v.message.edited_at for v in views
                    )

                await wait_until(bob_sees_edit, timeout=TIMEOUT)

                # Bob reacts to Alice's message: Alice sees the chip
                target = next(v for v in bob.pane.model.views() if not v.message.outgoing)
                action(bob, target, "❤️").trigger()

                def alice_sees_reaction() -> bool:
                    row = alice.pane.model.row_of(own.id)
                    view = alice.pane.model.view_at(row)
                    return view is not None and any(r.emoji == "❤️" for r in view.reactions)

                await wait_until(alice_sees_reaction, timeout=TIMEOUT)

                # Alice deletes her message: Bob sees the placeholder
                row = alice.pane.model.row_of(own.id)
                action(alice, alice.pane.model.view_at(row), "Delete for everyone").trigger()
                alice.pane.delete_box.done(QMessageBox.StandardButton.Yes)

                def bob_sees_delete() -> bool:
                    return any(v.message.deleted for v in bob.pane.model.views())

                await wait_until(bob_sees_delete, timeout=TIMEOUT)

                # search (Ctrl+F, the search panel): Enter opens the hit in context
                alice.shortcuts["search"].activated.emit()
                panel = alice.search_panel
                assert panel is not None and alice.left.currentWidget() is panel
                panel.field.setText("hello")
                panel.search_now()
                await wait_until(lambda: panel.model.rowCount() == 1, timeout=TIMEOUT)
                hit = panel.model.results[0]
                assert hit.message_id == reply.id
                panel.open_current()
                await wait_until(lambda: alice.pane.model.highlighted == reply.id, timeout=TIMEOUT)
                alice.escape()
                assert alice.left.currentWidget() is alice.sidebar
                assert alice_id != bob_id

    run(body(), timeout=180)


@pytest.mark.usefixtures("memory_keyring")
def test_group_create_add_remove_shows_in_both_timelines(tmp_path: Path, run: Any) -> None:
    async def body() -> None:
        async with start_local_server(tmp_path / "server", pow_difficulty=8) as url:
            await make_profile(tmp_path, "alice", url)
            bob_id, bob_address = await make_profile(tmp_path, "bob", url)
            carol_id, carol_address = await make_profile(tmp_path, "carol", url)
            async with apps(tmp_path, url, "alice", "bob") as [(a_app, alice), (_b, bob)]:
                client = a_app.client
                assert client is not None
                await client.add_contact(bob_address)
                await client.add_contact(carol_address)
                group = await client.create_group("Trip", [bob_id])
                await wait_until(lambda: alice.list_model.row_of(group.id) >= 0, timeout=TIMEOUT)
                await alice.show_conversation(group.id)
                assert alice.pane.header.name.text() == "Trip"
                type_and_send(alice, "Welcome to the trip group")
                await wait_until(lambda: bob.list_model.rowCount() == 1, timeout=TIMEOUT)
                bob_group = bob.list_model.ids()[0]
                await bob.show_conversation(bob_group)
                await wait_until(
                    lambda: last_body(bob) == "Welcome to the trip group", timeout=TIMEOUT
                )
                assert bob.pane.header.subtitle_text() == "2 members"
                await client.add_members(group.id, [carol_id])

                def notes(window: MainWindow) -> list[NoteKind]:
                    return [
                        v.note.kind
                        for v in window.pane.model.views()
                        if v.message.kind is MessageKind.SYSTEM and v.note is not None
                    ]

                await wait_until(lambda: NoteKind.ADDED in notes(bob), timeout=TIMEOUT)
                await wait_until(
                    lambda: bob.pane.header.subtitle_text() == "3 members", timeout=TIMEOUT
                )
                await client.remove_member(group.id, carol_id)
                await wait_until(lambda: NoteKind.REMOVED in notes(bob), timeout=TIMEOUT)
                await wait_until(lambda: NoteKind.REMOVED in notes(alice), timeout=TIMEOUT)
                await wait_until(
                    lambda: alice.pane.header.subtitle_text() == "2 members", timeout=TIMEOUT
                )
                # notes are centred muted rows, spoken as their sentence (the handle
                # until a display name arrives)
                row = next(
                    r
                    for r, v in enumerate(alice.pane.model.views())
                    if v.note is not None and v.note.kind is NoteKind.REMOVED
                )
                index = alice.pane.model.index(row)
                assert index.data(Qt.ItemDataRole.AccessibleTextRole) == "You removed carol"
                layout = alice.pane.timeline.bubbles.layout_for(index)
                assert layout is not None and layout.kind == "note"

    run(body(), timeout=180)


@pytest.mark.usefixtures("memory_keyring")
@pytest.mark.qt_log_ignore("propagateSizeHints")
def test_a_broken_group_is_started_again_from_the_window(tmp_path: Path, run: Any) -> None:
    """Mallory breaks "Trip" with a commit nobody can process; Alice's window
    shows the strip, its button starts the conversation again, and Bob's
    window follows: the strip goes, and the next message arrives."""

    async def body() -> None:
        async with start_local_server(tmp_path / "server", pow_difficulty=8) as url:
            await make_profile(tmp_path, "alice", url)
            bob_id, bob_address = await make_profile(tmp_path, "bob", url)
            mallory_id, mallory_address = await make_profile(tmp_path, "mallory", url)
            mallory = await MessengerClient.open(
                "mallory", PASSPHRASE, data_dir=tmp_path / "mallory"
            )
            try:
                async with apps(tmp_path, url, "alice", "bob") as [(a_app, alice), (b_app, bob)]:
                    client, bob_client = a_app.client, b_app.client
                    assert client is not None and bob_client is not None
                    await client.add_contact(bob_address)
                    await client.add_contact(mallory_address)
                    group = await client.create_group("Trip", [bob_id, mallory_id])
                    await alice.show_conversation(group.id)
                    type_and_send(alice, "Welcome")
                    await wait_until(lambda: bob.list_model.rowCount() == 1, timeout=TIMEOUT)
                    bob_group = bob.list_model.ids()[0]
                    await bob.show_conversation(bob_group)
                    await wait_until(lambda: last_body(bob) == "Welcome", timeout=TIMEOUT)
                    for _ in range(3):  # Mallory's app is not running: she joins and moves
                        await mallory.sync()
                        await mallory.flush(TIMEOUT)
                    (mallory_view,) = await mallory.conversations()

                    async def settled() -> bool:
                        await mallory.sync()
                        epochs = {
                            await client.group_epoch(group.id),
                            await bob_client.group_epoch(bob_group),
                            await mallory.group_epoch(mallory_view.id),
                        }
                        return len(epochs) == 1

                    deadline = asyncio.get_running_loop().time() + TIMEOUT
                    while not await settled():
                        assert asyncio.get_running_loop().time() < deadline, "moves settle"
                        await asyncio.sleep(0.1)
                    await unprocessable_commit(mallory, group.group_id)

                    bar = alice.pane.restart_bar
                    await wait_until(lambda: bar.isVisible(), timeout=TIMEOUT)
                    await wait_until(lambda: bob.pane.restart_bar.isVisible(), timeout=TIMEOUT)
                    assert alice.pane.composer.field.isReadOnly()
                    bar.button.click()
                    await wait_until(lambda: not bar.isVisible(), timeout=TIMEOUT)
                    await wait_until(lambda: not bob.pane.restart_bar.isVisible(), timeout=TIMEOUT)
                    type_and_send(alice, "Back again")
                    await wait_until(lambda: last_body(bob) == "Back again", timeout=TIMEOUT)
            finally:
                await mallory.close()

    run(body(), timeout=180)


@pytest.mark.usefixtures("memory_keyring")
def test_unlock_with_a_wrong_then_the_right_passphrase(
    tmp_path: Path, run: Any, memory_keyring: MemoryKeyring
) -> None:
    async def body() -> None:
        async with start_local_server(tmp_path / "server", pow_difficulty=8) as url:
            await make_profile(tmp_path, "alice", url)
            memory_keyring.passwords.clear()  # the keyring lost the key
            app = App(tmp_path / "alice", "alice", fake_services(), tmp_path / "prefs")
            try:
                await app.start()
                screen = app.screen
                assert screen is not None and app.window is None
                screen.passphrase.setText("not the passphrase")
                screen.submit()
                await wait_until(lambda: bool(screen.error_text()), timeout=TIMEOUT)
                assert "wrong" in screen.error_text().lower()
                assert app.window is None
                screen.passphrase.setText(PASSPHRASE)
                screen.submit()
                await wait_until(lambda: app.window is not None, timeout=TIMEOUT)
                window = app.window
                assert window is not None
                await wait_until(lambda: window.loaded, timeout=TIMEOUT)
                assert window.isVisible()
            finally:
                await app.shutdown()
                tasks.set_error_sink(None)

    run(body(), timeout=120)


@pytest.mark.usefixtures("memory_keyring")
def test_server_restart_shows_the_banner_then_recovers(tmp_path: Path, run: Any) -> None:
    async def body() -> None:
        server_dir = tmp_path / "server"
        async with contextlib.AsyncExitStack() as stack:
            url = await stack.enter_async_context(start_local_server(server_dir, pow_difficulty=8))
            port = int(url.rsplit(":", 1)[1])
            await make_profile(tmp_path, "alice", url)
            app, window = await open_app(tmp_path, "alice")
            try:
                assert app.client is not None
                await app.client.wait_online(TIMEOUT)
                assert not window.banner.isVisible()
                await stack.aclose()  # the server stops
                await wait_until(lambda: window.banner.isVisible(), timeout=TIMEOUT)
                assert window.banner.state is not ConnectionState.ONLINE
                assert window.banner.text()
                async with start_local_server(server_dir, port=port, pow_difficulty=8):
                    await wait_until(lambda: not window.banner.isVisible(), timeout=60)
                    assert window.bridge.connection is ConnectionState.ONLINE
            finally:
                await app.shutdown()
                tasks.set_error_sink(None)

    run(body(), timeout=150)
