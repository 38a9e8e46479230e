"""Contacts with real clients on a real server on 127.0.0.1, and edge states with the fake.

Adding by ``handle@server`` and by invite link; the invite dialog (link,
copy, QR); contact details (rename, block/unblock, "Message"); the safety
number is the same on both sides and "Mark as verified" marks it. The
:func:`people` helper (accounts on one local server, started) is shared
with the group and search tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QGuiApplication

from messenger.client import (
    InvalidAddressError,
    MessengerClient,
    UnknownAccountError,
    start_local_server,
)
from tests.client.helpers import FAST_KDF, PASSPHRASE
from tests.ui.conftest import wait_until
from tests.ui.fake_client import FakeClient
from tests.ui.test_onboarding import RUN_SLOW, SLOW, no_keyring, stay_open  # noqa: F401 (fixtures)
from ui.views.contacts import AddContactDialog, ContactDetailsDialog, InviteDialog
from ui.views.safety_number import VERIFIED, SafetyNumberWidget


@contextlib.asynccontextmanager
async def people(tmp_path: Path, *handles: str) -> AsyncIterator[list[MessengerClient]]:
    """Started clients with accounts ``handles`` on one local server."""
    async with start_local_server(tmp_path / "server") as url:
        clients: list[MessengerClient] = []
        try:
            for handle in handles:
                client = await MessengerClient.create(
                    handle, PASSPHRASE, data_dir=tmp_path / handle, kdf=FAST_KDF
                )
                clients.append(client)
                await client.create_account(url, handle)
                await client.set_display_name(handle.capitalize())
                await client.start()
            yield clients
        finally:
            for client in clients:
                await client.close()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = SLOW) -> None:
    """Until ``await check()`` is true (polled against a deadline)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, f"{check!r} stayed false"
        await asyncio.sleep(0.05)


async def address(client: MessengerClient) -> str:
    info = await client.account()
    assert info is not None and info.address is not None
    return info.address


async def account_id(client: MessengerClient) -> str:
    info = await client.account()
    assert info is not None
    return info.account_id


@pytest.mark.usefixtures("no_keyring")
def test_add_by_address_and_by_invite_link(run: Any, tmp_path: Path, qtbot: Any) -> None:
    async def body() -> None:
        async with people(tmp_path, "alice", "bob", "carol") as (alice, bob, carol):
            dialog = AddContactDialog(alice)
            qtbot.addWidget(dialog)
            dialog.show()
            added: list[str] = []
            dialog.added.connect(added.append)
            dialog.add_button.click()
            assert dialog.error_text() == "Enter an address or paste an invite link."
            host = (await address(bob)).split("@")[1]
            dialog.address.setText(f"nobody@{host}")
            dialog.add_button.click()
            await wait_until(lambda: dialog.error_text() != "")
            assert dialog.error_text() == UnknownAccountError.default_user_message
            assert dialog.isVisible() and not added
            dialog.address.setText(await address(bob))
            dialog.name.setText("Bobby")
            dialog.address.returnPressed.emit()
            await wait_until(lambda: bool(added))
            assert added == [await account_id(bob)]
            assert not dialog.isVisible()
            assert (await alice.contact(added[0])).display_name == "Bobby"

            by_link = AddContactDialog(alice)
            qtbot.addWidget(by_link)
            by_link.show()
            by_link.added.connect(added.append)
            info = await carol.account()
            assert info is not None
            by_link.address.setText(info.invite_link)
            by_link.add_button.click()
            await wait_until(lambda: len(added) == 2)
            assert added[1] == info.account_id
            assert {c.account_id for c in await alice.contacts()} == set(added)

    run(body(), timeout=RUN_SLOW)


@pytest.mark.usefixtures("no_keyring")
def test_invite_dialog_shows_link_and_qr(run: Any, tmp_path: Path, qtbot: Any) -> None:
    async def body() -> None:
        async with people(tmp_path, "alice") as (alice,):
            dialog = InviteDialog(alice)
            qtbot.addWidget(dialog)
            dialog.show()
            await wait_until(lambda: dialog.link.text() != "")
            info = await alice.account()
            assert info is not None
            assert dialog.link.text() == info.invite_link
            assert dialog.address.text() == info.address
            pixmap = dialog.qr.pixmap()
            assert not pixmap.isNull() and pixmap.width() >= 150
            dialog.copy_button.click()
            assert QGuiApplication.clipboard().text() == info.invite_link
            assert dialog.copy_button.text() == "Copied"

    run(body(), timeout=RUN_SLOW)


@pytest.mark.usefixtures("no_keyring")
def test_safety_numbers_match_and_verify(run: Any, tmp_path: Path, qtbot: Any) -> None:
    async def body() -> None:
        async with people(tmp_path, "alice", "bob") as (alice, bob):
            bob_id, alice_id = await account_id(bob), await account_id(alice)
            await alice.add_contact(await address(bob))
            await alice.create_conversation(bob_id)
            await alice.flush(SLOW)

            async def bob_knows_alice() -> bool:
                return any(c.account_id == alice_id for c in await bob.contacts())

            await eventually(bob_knows_alice)
            mine = SafetyNumberWidget(alice, bob_id)
            theirs = SafetyNumberWidget(bob, alice_id)
            for widget in (mine, theirs):
                qtbot.addWidget(widget)
                widget.show()
            await wait_until(lambda: mine.view is not None and theirs.view is not None)
            digits = mine.digits_text()
            assert len(digits) == 60 and digits.isdigit()
            assert digits == theirs.digits_text()
            assert [c.text() for c in mine.digits] == list(mine.view.number.groups)
            assert not mine.qr.pixmap().isNull()
            assert mine.state.text() == "Not verified yet."
            verified: list[str] = []
            mine.verified.connect(verified.append)
            mine.verify_button.click()
            await wait_until(lambda: bool(verified))
            assert mine.state.text() == VERIFIED
            assert not mine.verify_button.isVisibleTo(mine)
            assert (await alice.contact(bob_id)).verified
            assert not (await bob.contact(alice_id)).verified

    run(body(), timeout=RUN_SLOW)


@pytest.mark.usefixtures("no_keyring")
def test_contact_details_rename_block_and_message(run: Any, tmp_path: Path, qtbot: Any) -> None:
    async def body() -> None:
        async with people(tmp_path, "alice", "bob") as (alice, bob):
            bob_id = await account_id(bob)
            await alice.add_contact(await address(bob))
            dialog = ContactDetailsDialog(alice, bob_id)
            qtbot.addWidget(dialog)
            dialog.show()
            await wait_until(lambda: dialog.contact is not None)
            assert dialog.title.text() == "bob"
            dialog.name_field.setText("Robert")
            dialog.rename_button.click()
            await wait_until(lambda: dialog.title.text() == "Robert")
            assert (await alice.contact(bob_id)).display_name == "Robert"
            dialog.block_button.click()
            await wait_until(lambda: dialog.block_button.text() == "Unblock")
            assert (await alice.contact(bob_id)).blocked
            assert not dialog.message_button.isEnabled()
            dialog.block_button.click()
            await wait_until(lambda: dialog.block_button.text() == "Block")
            opened: list[int] = []
            dialog.open_conversation.connect(opened.append)
            dialog.message_button.click()
            await wait_until(lambda: bool(opened), timeout=SLOW)
            conversations = await alice.conversations()
            assert [c.id for c in conversations] == opened

    run(body(), timeout=RUN_SLOW)


def test_errors_stay_inline_with_the_fake_client(run: Any, qtbot: Any) -> None:
    client = FakeClient()
    client.fail("add_contact", InvalidAddressError("bad", user_message="Not an address."))
    dialog = AddContactDialog(client)  # type: ignore[arg-type]
    qtbot.addWidget(dialog)
    dialog.show()
    added: list[str] = []
    dialog.added.connect(added.append)

    async def body() -> None:
        dialog.address.setText("???")
        dialog.add_button.click()
        await wait_until(lambda: dialog.error_text() != "")
        assert dialog.error_text() == "Not an address."
        assert dialog.isVisible() and not added and dialog.add_button.isEnabled()
        assert dialog.address.text() == "???"

    run(body())


def test_long_rtl_and_emoji_names(run: Any, qtbot: Any) -> None:
    client = FakeClient()
    long_name = "سارا " * 30 + "👩🏽‍💻"
    client.add_contact_now("acct-rtl", long_name, handle="sara")
    dialog = ContactDetailsDialog(client, "acct-rtl")  # type: ignore[arg-type]
    qtbot.addWidget(dialog)
    dialog.show()

    async def body() -> None:
        await wait_until(lambda: dialog.contact is not None)
        assert dialog.title.text() == long_name
        assert dialog.title.wordWrap()
        assert dialog.width() < 900
        await wait_until(lambda: dialog.safety.view is not None or dialog.safety.error_text())

    run(body())
