"""Linking a new device over a real server on loopback (docs/devices.md §2).

Alice's laptop links a desktop; both then write in the one-to-one with
Bob, and Bob sees one Alice: one contact, one conversation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import pytest

from messenger.client import (
    LinkCancelledError,
    LinkExpiredError,
    LinkProgress,
    LinkStage,
    MessageKind,
    MessengerClient,
    parse_link_code,
)

from .conftest import CLIENT_OPTIONS, FAST_KDF, PASSPHRASE, WAIT, Clients, eventually, keychain

pytestmark = pytest.mark.anyio

T = TypeVar("T")


async def bounded(awaitable: Awaitable[T], timeout: float = WAIT) -> T:
    return await asyncio.wait_for(awaitable, timeout)


async def blank(clients: Clients, name: str) -> MessengerClient:
    """A new profile without an account (the computer being linked)."""
    client = await MessengerClient.create(
        name,
        PASSPHRASE,
        data_dir=clients.data_dir(name),
        keychain=keychain(),
        kdf=FAST_KDF,
        options=CLIENT_OPTIONS,
    )
    clients.open_clients.append(client)
    return client


async def texts(client: MessengerClient, conversation_id: int) -> list[str]:
    return [
        v.message.body or ""
        for v in await client.messages(conversation_id, limit=200)
        if v.message.kind is not MessageKind.SYSTEM
    ]


async def wait_texts(client: MessengerClient, cid: int, expected: list[str]) -> None:
    async def check() -> bool:
        return await texts(client, cid) == expected

    await eventually(check, f"the texts {expected!r}")


async def link(
    laptop: MessengerClient,
    desktop: MessengerClient,
    *,
    history: bool = True,
    name: str = "Desktop",
) -> tuple[list[LinkProgress], list[LinkProgress]]:
    """Link ``desktop`` to ``laptop``'s account, as the two users would."""
    link = await laptop.start_link()
    scanned = parse_link_code(link.code.uri)
    new_side: list[LinkProgress] = []
    old_side: list[LinkProgress] = []
    joining = asyncio.create_task(
        desktop.link_account(scanned, device_name=name, progress=new_side.append)
    )
    offer = await bounded(link.wait_offer())
    assert offer.device_name == name
    await bounded(link.approve(history=history, progress=old_side.append))
    await bounded(joining)
    return old_side, new_side


async def test_a_laptop_links_a_desktop(clients: Clients) -> None:
    laptop = await clients.new("alice-laptop", handle="alice")
    bob = await clients.new("bob", handle="bob")
    alice_info, bob_info = await laptop.account(), await bob.account()
    assert alice_info is not None and bob_info is not None
    await laptop.add_contact(bob_info.invite_link)
    chat = await laptop.create_conversation(bob_info.account_id)
    await laptop.send_text(chat.id, "before the desktop")

    async def bob_joined() -> bool:
        return len(await bob.conversations()) == 1

    await eventually(bob_joined, "Bob to join")
    bob_chat = (await bob.conversations())[0].id
    await wait_texts(bob, bob_chat, ["before the desktop"])

    desktop = await blank(clients, "alice-desktop")
    old_side, new_side = await link(laptop, desktop)
    assert old_side[-1] == LinkProgress(LinkStage.DONE, 1.0)
    assert new_side[-1] == LinkProgress(LinkStage.DONE, 1.0)
    assert LinkStage.WAITING_FOR_APPROVAL in {p.stage for p in new_side}
    fractions = [p.fraction for p in new_side if p.fraction is not None]
    assert all(0.0 <= f <= 1.0 for f in fractions)

    desktop_info = await desktop.account()
    assert desktop_info is not None
    assert desktop_info.account_id == alice_info.account_id
    assert desktop_info.client_id != alice_info.client_id
    assert desktop_info.handle == "alice"
    [desktop_chat] = await desktop.conversations()
    # The history came along, attached to the conversation the Welcome made.
    assert await texts(desktop, desktop_chat.id) == ["before the desktop"]

    await desktop.start()
    await desktop.send_text(desktop_chat.id, "from the desktop")
    await laptop.send_text(chat.id, "from the laptop")

    async def bob_has_both() -> bool:
        got = await texts(bob, bob_chat)
        return sorted(got[1:]) == ["from the desktop", "from the laptop"]

    await eventually(bob_has_both, "Bob to get both devices' messages")
    # One Alice for Bob: one contact, one conversation.
    assert [c.account_id for c in await bob.contacts()] == [alice_info.account_id]
    assert len(await bob.conversations()) == 1
    await bob.send_text(bob_chat, "hi both")

    async def both_have_it() -> bool:
        return "hi both" in await texts(desktop, desktop_chat.id) and "hi both" in await texts(
            laptop, chat.id
        )

    await eventually(both_have_it, "Bob's answer on both devices")


async def test_a_group_of_three_people_and_five_devices(clients: Clients) -> None:
    alice = await clients.new("g-alice", handle="galice")
    bob = await clients.new("g-bob", handle="gbob")
    carol = await clients.new("g-carol", handle="gcarol")
    infos = [await c.account() for c in (alice, bob, carol)]
    assert all(i is not None for i in infos)
    alice_info, bob_info, carol_info = infos
    assert alice_info and bob_info and carol_info
    await alice.add_contact(bob_info.invite_link)
    await alice.add_contact(carol_info.invite_link)
    group = await alice.create_group("Trip", [bob_info.account_id, carol_info.account_id])

    async def everyone_joined() -> bool:
        return [len(await c.conversations()) for c in (bob, carol)] == [1, 1]

    await eventually(everyone_joined, "Bob and Carol to join")
    alice_desktop = await blank(clients, "g-alice-desktop")
    await link(alice, alice_desktop, history=False)
    bob_desktop = await blank(clients, "g-bob-desktop")
    await link(bob, bob_desktop)
    for device in (alice_desktop, bob_desktop):
        await device.start()
    [bob_desktop_group] = await bob_desktop.conversations()
    [alice_desktop_group] = await alice_desktop.conversations()
    await bob_desktop.send_text(bob_desktop_group.id, "bob's desktop")
    await alice_desktop.send_text(alice_desktop_group.id, "alice's desktop")
    carol_group = (await carol.conversations())[0].id

    async def carol_sees_both() -> bool:
        got = await texts(carol, carol_group)
        return "bob's desktop" in got and "alice's desktop" in got

    await eventually(carol_sees_both, "Carol to see both desktops")
    members = await carol.members(carol_group)
    assert sorted(m.account_id for m in members) == sorted(
        [alice_info.account_id, bob_info.account_id, carol_info.account_id]
    )
    assert len(await carol.contacts()) == 2
    for device in (alice, bob):
        cid = (await device.conversations())[0].id

        async def device_sees(device: MessengerClient = device, cid: int = cid) -> bool:
            return "bob's desktop" in await texts(device, cid)

        await eventually(device_sees, "each laptop to see the desktop's message")
    assert group.id


async def test_a_declined_offer_links_nothing(clients: Clients) -> None:
    laptop = await clients.new("d-laptop", handle="dalice")
    desktop = await blank(clients, "d-desktop")
    link = await laptop.start_link()
    joining = asyncio.create_task(desktop.link_account(link.code, device_name="Desktop"))
    await bounded(link.wait_offer())
    await link.decline()
    with pytest.raises(LinkCancelledError) as info:
        await bounded(joining)
    assert "declined" in info.value.user_message
    assert not desktop.has_account
    assert await desktop.account() is None


async def test_a_wrong_code_fails_with_a_sentence(clients: Clients) -> None:
    laptop = await clients.new("w-laptop", handle="walice")
    desktop = await blank(clients, "w-desktop")
    link = await laptop.start_link()
    text = link.code.text
    wrong = parse_link_code(
        ("0" if text[0] != "0" else "1") + text[1:], server_url=clients.server.url
    )
    with pytest.raises(LinkExpiredError) as info:
        await bounded(desktop.link_account(wrong, device_name="Desktop"))
    assert info.value.user_message.endswith(".")
    assert not desktop.has_account
    await link.cancel()


async def test_a_cancelled_link_cannot_be_joined(clients: Clients) -> None:
    laptop = await clients.new("c-laptop", handle="calice")
    desktop = await blank(clients, "c-desktop")
    link = await laptop.start_link()
    await link.cancel()
    with pytest.raises((LinkExpiredError, LinkCancelledError)):
        await bounded(desktop.link_account(link.code, device_name="Desktop"))
    assert not desktop.has_account
