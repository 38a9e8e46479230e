"""The first-run screens against a real server on 127.0.0.1.

Sign-up through "Run a server on this computer" (proof of work, handle,
name, the live passphrase rule, the keyring sentence); an invite link whose
server is used and whose contact is added, on a server that asks for an
invite code; restoring a backup (a wrong passphrase first). The helpers
here (``no_keyring``, :class:`LocalStarter`, :func:`invite_only_server`)
are shared by the other screen tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import keyring
import keyring.backends.fail
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from messenger.client import MessengerClient, start_local_server
from messenger.client.demo import server_environment
from tests.client.helpers import FAST_KDF, PASSPHRASE
from tests.ui.conftest import wait_until
from ui.local_server import LocalServerStarter
from ui.views.onboarding import (
    KEYRING_NO,
    OnboardingView,
    passphrase_strength,
)

#: Generous bounds for steps against a real server: the CI machine may be loaded.
SLOW = 90.0
RUN_SLOW = 300.0


@pytest.fixture(autouse=True)
def stay_open(qapp: QApplication) -> Iterator[None]:
    """Closing a test's last dialog must not quit the app (and stop the qasync loop)."""
    qapp.setQuitOnLastWindowClosed(False)
    yield
    qapp.setQuitOnLastWindowClosed(True)
    # Widgets caught in reference cycles must be freed here, on the GUI thread,
    # not by a collection that happens to run on a store or worker thread.
    gc.collect()


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """keyring's fail backend, as on a machine without a desktop session."""
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        keyring.set_keyring(previous)


class LocalStarter:
    """``ui.local_server.LocalServerStarter`` for tests: one real server until ``stop``."""

    def __init__(self, data_dir: Path) -> None:
        self._data_dir = data_dir
        self._stack = contextlib.AsyncExitStack()
        self.url: str | None = None

    async def start(self) -> str:
        if self.url is None:
            self.url = await self._stack.enter_async_context(start_local_server(self._data_dir))
        return self.url

    async def stop(self) -> None:
        await self._stack.aclose()
        self.url = None


@contextlib.asynccontextmanager
async def invite_only_server(
    data_dir: Path, codes: int = 2
) -> AsyncIterator[tuple[str, list[str]]]:
    """A real server whose sign-up needs an invite code; its URL and fresh codes."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = server_environment(
        {
            "MESSENGER_HOST": "127.0.0.1",
            "MESSENGER_PORT": str(port),
            "MESSENGER_DATA_DIR": str(data_dir),
            "MESSENGER_DATABASE_URL": "",
            "MESSENGER_POW_DIFFICULTY": "12",
            "MESSENGER_SIGNUP_POLICY": "invite",
            "MESSENGER_LOG_LEVEL": "WARNING",
        }
    )
    minted = subprocess.run(
        [sys.executable, "-m", "messenger.server", "mint-invite", "--count", str(codes)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    invite_codes = minted.stdout.split()
    process = subprocess.Popen(
        [sys.executable, "-m", "messenger.server"], env=env, stdin=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=2) as http:

            async def healthy() -> bool:
                try:
                    return (await http.get(url + "/health")).status_code == 200
                except httpx.HTTPError:
                    return False

            deadline = asyncio.get_running_loop().time() + 30
            while not await healthy():
                assert process.poll() is None, "the server exited"
                assert asyncio.get_running_loop().time() < deadline, "the server did not start"
                await asyncio.sleep(0.05)
        yield url, invite_codes
    finally:
        process.terminate()
        process.wait(10)


def finished_client(view: OnboardingView) -> list[Any]:
    got: list[Any] = []
    view.finished.connect(got.append)
    return got


def test_strength_follows_the_clients_rule() -> None:
    assert passphrase_strength("short") == 0
    assert passphrase_strength("1234567") == 0
    assert passphrase_strength("aaaaaaaa") == 1
    assert passphrase_strength("correct horse battery staple") >= 3
    assert passphrase_strength("Tr0ub4dour&3-xq!Lm") >= 3


def test_sign_up_on_a_local_server(run: Any, tmp_path: Path, no_keyring: None, qtbot: Any) -> None:
    starter = LocalServerStarter(tmp_path / "data")  # the app's own "run a server here"
    view = OnboardingView(tmp_path / "data", "me", starter, kdf=FAST_KDF)
    qtbot.addWidget(view)
    view.resize(900, 700)
    view.show()
    got = finished_client(view)

    async def body() -> None:
        assert view.current_card() is view.server_card
        view.server_continue.click()  # nothing typed: a sentence, no step
        assert view.current_card() is view.server_card
        assert "server address" in view.error_text()
        view.local_button.click()
        await wait_until(lambda: view.current_card() is view.account_card, timeout=SLOW)
        assert starter.url is not None and starter.url in view.server_note.text()
        assert (tmp_path / "data" / "local-server").is_dir()
        view.name_field.setText("Alice Example")
        view.handle_field.setText("alice")
        view.account_continue.click()
        assert view.current_card() is view.passphrase_card
        fields = view.passphrase_fields
        fields.first.setText("short")
        assert "at least 8 characters" in fields.verdict.text()  # live, before any click
        view.create_button.click()
        assert "at least 8 characters" in view.error_text()
        fields.first.setText(PASSPHRASE)
        fields.second.setText(PASSPHRASE + "x")
        view.create_button.click()
        assert view.error_text() == "The two passphrases are not the same."
        fields.second.setText(PASSPHRASE)
        view.create_button.click()
        await wait_until(lambda: view.current_card() is view.done_card, timeout=SLOW)
        assert view.done_keyring.text() == KEYRING_NO
        assert "alice@127.0.0.1" in view.done_address.text()
        view.grab().save("/tmp/u2-onboarding-done.png")
        view.start_button.click()
        assert len(got) == 1
        client = got[0]
        assert isinstance(client, MessengerClient)
        try:
            info = await client.account()
            assert info is not None and info.handle == "alice"
            assert await client.own_display_name() == "Alice Example"
            assert not client.key_in_keyring
        finally:
            await client.close()
            await starter.stop()

    run(body(), timeout=RUN_SLOW)


def test_sign_up_finishes_an_earlier_first_run(
    run: Any, tmp_path: Path, no_keyring: None, qtbot: Any
) -> None:
    starter = LocalStarter(tmp_path / "server")

    async def body() -> None:
        try:
            store = await MessengerClient.create(
                "me", PASSPHRASE, data_dir=tmp_path / "data", kdf=FAST_KDF
            )
            view = OnboardingView(tmp_path / "data", "me", starter, kdf=FAST_KDF, client=store)
            qtbot.addWidget(view)
            view.show()
            got = finished_client(view)
            view.server_field.setText(await starter.start())
            view.server_continue.click()
            view.account_continue.click()  # no passphrase step: the store exists
            await wait_until(lambda: view.current_card() is view.done_card, timeout=SLOW)
            view.start_button.click()
            assert got == [store] and store.has_account
            await store.close()
        finally:
            await starter.stop()

    run(body(), timeout=RUN_SLOW)


def test_invite_link_and_invite_code(
    run: Any, tmp_path: Path, no_keyring: None, qtbot: Any
) -> None:
    view = OnboardingView(tmp_path / "data", "me", LocalStarter(tmp_path / "unused"), kdf=FAST_KDF)
    qtbot.addWidget(view)
    view.show()
    got = finished_client(view)

    async def body() -> None:
        async with invite_only_server(tmp_path / "server") as (url, codes):
            inviter = await MessengerClient.create(
                "inviter", PASSPHRASE, data_dir=tmp_path / "other", kdf=FAST_KDF
            )
            try:
                info = await inviter.create_account(url, "bob", invite_code=codes[0])
                await inviter.set_display_name("Bob")
                view.server_field.setText(info.invite_link)
                view.server_continue.click()
                assert view.current_card() is view.account_card
                assert url.split("//")[1] in view.server_note.text()
                assert not view.invite_field.isVisibleTo(view)
                view.account_continue.click()
                view.passphrase_fields.first.setText(PASSPHRASE)
                view.passphrase_fields.second.setText(PASSPHRASE)
                view.create_button.click()
                # The server refuses without an invite: the field appears with the sentence.
                await wait_until(lambda: view.invite_field.isVisibleTo(view), timeout=SLOW)
                assert view.current_card() is view.account_card
                assert "invite" in view.error_text()
                view.invite_field.setText(codes[1])
                view.account_continue.click()
                await wait_until(lambda: view.current_card() is view.done_card, timeout=SLOW)
                await wait_until(lambda: "is now in your contacts" in view.done_contact.text())
                view.start_button.click()
                client = got[0]
                try:
                    contacts = await client.contacts()
                    assert [c.account_id for c in contacts] == [info.account_id]
                finally:
                    await client.close()
            finally:
                await inviter.close()

    run(body(), timeout=RUN_SLOW)


def test_restore_from_a_backup(run: Any, tmp_path: Path, no_keyring: None, qtbot: Any) -> None:
    starter = LocalStarter(tmp_path / "server")
    backup = tmp_path / "me.msgbackup"

    async def body() -> None:
        url = await starter.start()
        try:
            original = await MessengerClient.create(
                "me", PASSPHRASE, data_dir=tmp_path / "old", kdf=FAST_KDF
            )
            try:
                info = await original.create_account(url, "carol")
                await original.backup(backup, "backup passphrase", kdf=FAST_KDF)
            finally:
                await original.close()
            view = OnboardingView(tmp_path / "new", "me", starter, kdf=FAST_KDF)
            qtbot.addWidget(view)
            view.show()
            got = finished_client(view)
            view.restore_button.click()
            assert view.current_card() is view.restore_card
            view.backup_field.setText(str(backup))
            view.backup_passphrase.setText("not the passphrase")
            view.restore_fields.first.setText("new recovery phrase")
            view.restore_fields.second.setText("new recovery phrase")
            view.restore_start.click()
            await wait_until(lambda: view.error_text() != "", timeout=SLOW)
            assert view.error_text() == "The backup passphrase is wrong."
            assert not got
            view.backup_passphrase.setText("backup passphrase")
            view.restore_start.click()
            await wait_until(lambda: bool(got), timeout=SLOW)
            client = got[0]
            try:
                restored = await client.account()
                assert restored is not None and restored.account_id == info.account_id
            finally:
                await client.close()
        finally:
            await starter.stop()

    run(body(), timeout=RUN_SLOW)


def test_escape_goes_back_and_errors_stay_inline(
    run: Any, tmp_path: Path, no_keyring: None, qtbot: Any
) -> None:
    view = OnboardingView(tmp_path / "data", "me", LocalStarter(tmp_path / "s"), kdf=FAST_KDF)
    qtbot.addWidget(view)
    view.show()

    async def body() -> None:
        view.server_field.setText("messenger://add?account=abc")
        view.server_continue.click()
        assert view.error_text() == "This invite link has no server in it."
        # An address nobody answers at: the sentence comes back on the server card.
        view.server_field.setText("http://127.0.0.1:9")
        view.server_continue.click()
        view.account_continue.click()
        view.passphrase_fields.first.setText(PASSPHRASE)
        view.passphrase_fields.second.setText(PASSPHRASE)
        qtbot.keyClick(view, Qt.Key.Key_Escape)
        assert view.current_card() is view.account_card
        view.account_continue.click()
        view.create_button.click()
        await wait_until(lambda: view.current_card() is view.server_card, timeout=SLOW)
        assert "server" in view.error_text().lower()
        client = view._client
        assert client is not None
        await client.close()

    run(body(), timeout=RUN_SLOW)


def test_a_preset_server_fills_the_first_step(tmp_path: Path, qtbot: Any) -> None:
    """``--server`` / ``--local-server`` reach the form: the user only confirms."""
    view = OnboardingView(
        tmp_path / "data",
        "me",
        LocalStarter(tmp_path / "s"),
        kdf=FAST_KDF,
        server_url=" http://127.0.0.1:8765 ",
    )
    qtbot.addWidget(view)
    assert view.current_card() is view.server_card
    assert view.server_field.text() == "http://127.0.0.1:8765"
    empty = OnboardingView(tmp_path / "data", "me", LocalStarter(tmp_path / "s"), kdf=FAST_KDF)
    qtbot.addWidget(empty)
    assert empty.server_field.text() == ""


def test_plain_http_off_this_computer_needs_the_users_choice(
    run: Any, tmp_path: Path, no_keyring: None, qtbot: Any
) -> None:
    """A server on the local network over http:// is refused, then allowed when chosen.

    The server listens on 127.0.0.1 and is addressed as 0.0.0.0: not a
    loopback address, so the client treats it as another computer, yet Linux
    delivers the connection here (nothing leaves the machine).
    """
    starter = LocalStarter(tmp_path / "server")
    view = OnboardingView(tmp_path / "data", "me", starter, kdf=FAST_KDF)
    qtbot.addWidget(view)
    view.show()
    got = finished_client(view)

    async def body() -> None:
        try:
            url = (await starter.start()).replace("127.0.0.1", "0.0.0.0")
            view.server_field.setText(url)
            view.server_continue.click()
            view.account_continue.click()
            view.passphrase_fields.first.setText(PASSPHRASE)
            view.passphrase_fields.second.setText(PASSPHRASE)
            view.create_button.click()
            await wait_until(lambda: view.insecure_check.isVisibleTo(view), timeout=SLOW)
            assert view.current_card() is view.server_card
            assert "plain http://" in view.error_text()
            assert not view.insecure_check.isChecked()  # never chosen for the user
            # Editing the address forgets the offer; it comes back on the next refusal.
            view.server_field.setText(url + "/")
            view.server_field.textEdited.emit(url + "/")
            assert not view.insecure_check.isVisibleTo(view)
            view.server_field.setText(url)
            view.server_continue.click()
            view.account_continue.click()
            await wait_until(lambda: view.insecure_check.isVisibleTo(view), timeout=SLOW)
            view.insecure_check.setChecked(True)
            view.server_continue.click()
            view.account_continue.click()
            await wait_until(lambda: view.current_card() is view.done_card, timeout=SLOW)
            view.start_button.click()
            client = got[0]
            await client.close()
            # The choice is kept with the account: the profile reopens and connects.
            reopened = await MessengerClient.open("me", PASSPHRASE, data_dir=tmp_path / "data")
            try:
                await reopened.sync()  # a round trip to the plain-http server
            finally:
                await reopened.close()
        finally:
            await starter.stop()

    run(body(), timeout=RUN_SLOW)
