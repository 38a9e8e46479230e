"""Several devices per account over a real server on loopback (docs/devices.md §3-§5).

Alice has a desktop and a laptop, Bob one device: they chat from both of
Alice's devices; Bob sees one Alice; each of Alice's devices shows the
other's messages as her own; read state, drafts, mute, archive, contact
names and settings follow her from device to device.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time

import httpx
import pytest

from messenger.api import models as m
from messenger.client import (
    ConnectionState,
    ConnectionStateChanged,
    DeviceRemovedError,
    MessageKind,
    MessengerClient,
    NotAllowedError,
    Subscription,
)
from messenger.client.groups import group_members
from messenger.client.store.messages import MessageStatus
from messenger.mls.errors import MLSError

from . import conftest as integration
from .conftest import (
    CLIENT_OPTIONS,
    FAST_KDF,
    PASSPHRASE,
    WAIT,
    Clients,
    eventually,
    keychain,
)
from .multi_device import add_device

anyio_backend = integration.anyio_backend
server = integration.server
clients = integration.clients

pytestmark = pytest.mark.anyio


async def texts(client: MessengerClient, cid: int) -> list[tuple[str, bool]]:
    """(text, shown as mine) of the conversation's messages, oldest first."""
    return [
        (v.message.body or "", v.message.outgoing)
        for v in await client.messages(cid, limit=100)
        if v.message.kind is not MessageKind.SYSTEM
    ]


async def only_conversation(client: MessengerClient, what: str) -> int:
    async def one() -> bool:
        return len(await client.conversations()) == 1

    await eventually(one, what)
    return (await client.conversations())[0].id


async def account_id(client: MessengerClient) -> str:
    info = await client.account()
    assert info is not None
    return info.account_id


async def test_two_devices_one_alice(clients: Clients) -> None:
    desktop = await clients.new("alice-desktop", handle="alice")
    bob = await clients.new("bob", handle="bob")
    laptop = await add_device(clients, desktop, "alice-laptop")
    alice_id, bob_id = await account_id(desktop), await account_id(bob)
    assert await account_id(laptop) == alice_id

    # The device list: both devices, each seeing the other, from the devices group.
    desktop_views = await desktop.devices()
    assert [v.this_device for v in desktop_views] == [True, False]
    assert {v.client_id for v in desktop_views} == {v.client_id for v in await laptop.devices()}
    await laptop.rename_device("Work laptop")
    laptop_client = (await laptop.account()).client_id  # type: ignore[union-attr]

    async def renamed() -> bool:
        views = {v.client_id: v for v in await desktop.devices()}
        return views[laptop_client].name == "Work laptop"

    await eventually(renamed, "the laptop's new name on the desktop")
    assert await laptop.device_name() == "Work laptop"

    # A chat made on the desktop includes the laptop.
    await desktop.add_contact(f"bob@{clients.server.host}")
    chat = await desktop.create_conversation(bob_id)
    await desktop.send_text(chat.id, "from the desktop")
    bob_chat = await only_conversation(bob, "Bob to join")
    laptop_chat = await only_conversation(laptop, "the laptop to join")
    await laptop.send_text(laptop_chat, "from the laptop")

    expected_bob = [("from the desktop", False), ("from the laptop", False)]

    async def bob_sees_both() -> bool:
        return sorted(await texts(bob, bob_chat)) == expected_bob

    await eventually(bob_sees_both, "Bob to get both")
    bob_view = await bob.conversation(bob_chat)
    # One Alice: a one-to-one chat with her account, two members.
    assert bob_view.conversation.peer_account_id == alice_id
    assert {m.account_id for m in bob_view.members} == {alice_id, bob_id}
    senders = {v.message.sender_account_id for v in await bob.messages(bob_chat)}
    assert alice_id in senders

    mine = [("from the desktop", True), ("from the laptop", True)]

    async def both_mine() -> bool:
        # (Each device lists in its own arrival order.)
        on_desktop, on_laptop = await texts(desktop, chat.id), await texts(laptop, laptop_chat)
        return sorted(on_desktop) == mine and sorted(on_laptop) == mine

    await eventually(both_mine, "each device to show both messages as Alice's own")
    on_laptop = {v.message.status for v in await laptop.messages(laptop_chat)}
    assert MessageStatus.PENDING not in on_laptop

    # Edits and reactions from the other device are Alice's own.
    desktop_message = next(
        v.message.id
        for v in await laptop.messages(laptop_chat)
        if v.message.body == "from the desktop"
    )
    await laptop.edit(laptop_chat, desktop_message, "from the desktop (edited on the laptop)")
    laptop_message = next(
        v.message.id for v in await desktop.messages(chat.id) if v.message.body == "from the laptop"
    )
    await desktop.react(chat.id, laptop_message, "👍")

    async def edited_and_reacted() -> bool:
        on_bob = {t for t, _ in await texts(bob, bob_chat)}
        on_desktop = {t for t, _ in await texts(desktop, chat.id)}
        reactions = [
            r
            for v in await laptop.messages(laptop_chat)
            if v.message.body == "from the laptop"
            for r in v.reactions
        ]
        return (
            "from the desktop (edited on the laptop)" in on_bob
            and "from the desktop (edited on the laptop)" in on_desktop
            and [(r.emoji, r.mine) for r in reactions] == [("👍", True)]
        )

    await eventually(edited_and_reacted, "the edit and the reaction, as Alice's, everywhere")

    # Read state: Bob writes; the laptop reads it; the desktop's unread count follows.
    await bob.send_text(bob_chat, "hi both")

    async def unread_on_both() -> bool:
        return await desktop.unread_count() == 1 and await laptop.unread_count() == 1

    await eventually(unread_on_both, "Bob's message on both devices")
    assert await laptop.mark_read(laptop_chat)

    async def read_on_desktop() -> bool:
        return await desktop.unread_count() == 0

    await eventually(read_on_desktop, "the read state on the desktop")
    # The laptop's read receipt is Alice's own: it does not say Bob read her messages.
    await laptop.flush(WAIT)
    await desktop.sync()
    statuses = {v.message.status for v in await desktop.messages(chat.id) if v.message.outgoing}
    assert MessageStatus.READ not in statuses

    # Drafts, mute, archive, contact names and settings follow too.
    await desktop.set_draft(chat.id, "half a thought")
    await laptop.mute(laptop_chat)
    await desktop.rename_contact(bob_id, "Bobby")
    await laptop.set_typing_indicators(False)

    async def synced() -> bool:
        on_laptop = await laptop.conversation(laptop_chat)
        on_desktop = await desktop.conversation(chat.id)
        contact = await laptop.contact(bob_id)
        prefs = await desktop.preferences()
        return (
            on_laptop.conversation.draft == "half a thought"
            and on_desktop.muted
            and contact.display_name == "Bobby"
            and not prefs.typing_indicators
        )

    await eventually(synced, "drafts, mute, names and settings on the other device")
    await desktop.archive(chat.id)

    async def archived() -> bool:
        return [c.id for c in await laptop.conversations(archived=True)] == [laptop_chat]

    await eventually(archived, "the archive on the laptop")
    # Neither device ever lists the devices group.
    assert await desktop.conversations() == [] and await laptop.conversations() == []


class Recorder(httpx.AsyncBaseTransport):
    """Bob's network, recording the application messages he sends."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.sent: list[bytes] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/messages"):
            with contextlib.suppress(Exception):
                self.sent.append(m.SendRequest.loads(request.content).message)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def wait_state(events: Subscription, state: ConnectionState) -> None:
    async def seen() -> bool:
        return any(
            isinstance(e, ConnectionStateChanged) and e.state is state for e in events.pending()
        )

    await eventually(seen, f"the connection state {state}")


async def members_of(client: MessengerClient, group_id: bytes) -> set[str]:
    """The client IDs in the client's MLS state of the group."""
    session = client._require()
    async with session.group_lock(group_id):
        group = await session.epochs.get(group_id)
        assert group is not None
        return {m.client_id for m in group_members(group)}


async def test_removing_a_lost_laptop(clients: Clients) -> None:
    recorder = Recorder()
    desktop = await clients.new("alice-desktop", handle="alice3")
    bob = await clients.new(
        "bob", handle="bob3", options=dataclasses.replace(CLIENT_OPTIONS, http_transport=recorder)
    )
    laptop = await add_device(clients, desktop, "alice-laptop")
    bob_id = await account_id(bob)
    laptop_client = (await laptop.account()).client_id  # type: ignore[union-attr]
    chat = await desktop.create_conversation(bob_id)
    await desktop.send_text(chat.id, "before")
    bob_chat = await only_conversation(bob, "Bob to join")
    laptop_chat = await only_conversation(laptop, "the laptop to join")
    group_id = chat.group_id
    devices_group = await desktop.devices_group_id()
    assert devices_group is not None

    # The laptop reads "before" from its contact queue after the Welcome; a device
    # removed before it read a message never gets it, so wait for it here.
    async def laptop_read_before() -> bool:
        return ("before", True) in await texts(laptop, laptop_chat)

    await eventually(laptop_read_before, "the laptop to read the first message")

    # Bob is offline while the laptop is removed; he catches up afterwards.
    await clients.close(bob)
    laptop_events = laptop.events()
    await desktop.remove_device(laptop_client)
    await wait_state(laptop_events, ConnectionState.REMOVED)
    assert [v.client_id for v in await desktop.devices()] != [] and laptop_client not in {
        v.client_id for v in await desktop.devices()
    }
    await desktop.flush(WAIT)
    assert laptop_client not in await members_of(desktop, group_id)
    assert laptop_client not in await members_of(desktop, devices_group)

    recorder = Recorder()
    bob = await MessengerClient.open(
        "bob",
        PASSPHRASE,
        data_dir=clients.data_dir("bob"),
        keychain=keychain(),
        options=dataclasses.replace(CLIENT_OPTIONS, http_transport=recorder),
    )
    clients.open_clients.append(bob)
    await bob.start()
    await clients.introduce(bob)

    async def bob_caught_up() -> bool:
        return laptop_client not in await members_of(bob, group_id)

    await eventually(bob_caught_up, "Bob to process the removal")
    await bob.send_text(bob_chat, "after the laptop was removed")

    async def desktop_got_it() -> bool:
        return ("after the laptop was removed", False) in await texts(desktop, chat.id)

    await eventually(desktop_got_it, "the desktop to get Bob's message")

    # The laptop's store stays readable; its MLS state cannot read what Bob sent.
    assert ("before", True) in await texts(laptop, laptop_chat)
    ciphertext = recorder.sent[-1]
    laptop_session = laptop._require()
    async with laptop_session.group_lock(group_id):
        group = await laptop_session.epochs.get(group_id)
        assert group is not None
        with pytest.raises(MLSError):
            group.process(ciphertext, now=int(time.time()))
    # Its outbox stops: nothing it writes now leaves it.
    await laptop.send_text(laptop_chat, "too late")
    with pytest.raises(DeviceRemovedError):
        await laptop.flush(WAIT)
    # The laptop's requests are refused for good.
    with pytest.raises(DeviceRemovedError):
        await laptop_session.transport.key_package_count()
    # The account's last device cannot go.
    with pytest.raises(NotAllowedError):
        await desktop.remove_device((await desktop.account()).client_id)  # type: ignore[union-attr]


async def test_signing_a_device_out(clients: Clients) -> None:
    desktop = await clients.new("alice-desktop", handle="alice4")
    bob = await clients.new("bob", handle="bob4")
    laptop = await add_device(clients, desktop, "alice-laptop")
    laptop_client = (await laptop.account()).client_id  # type: ignore[union-attr]
    chat = await desktop.create_conversation(await account_id(bob))
    await only_conversation(laptop, "the laptop to join")
    await only_conversation(bob, "Bob to join")
    devices_group = await desktop.devices_group_id()
    assert devices_group is not None

    laptop_events = laptop.events()
    await laptop.remove_device(laptop_client)  # sign out
    await wait_state(laptop_events, ConnectionState.REMOVED)

    async def gone() -> bool:
        return (
            laptop_client not in {v.client_id for v in await desktop.devices()}
            and laptop_client not in await members_of(desktop, chat.group_id)
            and laptop_client not in await members_of(desktop, devices_group)
            and laptop_client not in await members_of(bob, chat.group_id)
        )

    await eventually(gone, "the other devices to remove the signed-out laptop")
    desktop_client = (await desktop.account()).client_id  # type: ignore[union-attr]
    with pytest.raises(NotAllowedError):  # now the only device
        await desktop.remove_device(desktop_client)


async def test_concurrent_commits_of_two_devices_converge(clients: Clients) -> None:
    desktop = await clients.new("alice-desktop", handle="alice5")
    bob = await clients.new("bob", handle="bob5")
    laptop = await add_device(clients, desktop, "alice-laptop")
    group = await desktop.create_group("Plans", [await account_id(bob)])
    laptop_chat = await only_conversation(laptop, "the laptop to join")
    bob_chat = await only_conversation(bob, "Bob to join")
    await desktop.flush(WAIT)
    epoch = await desktop.group_epoch(group.id)
    # Both devices commit a rename for the same epoch: one wins, the other is
    # built again in the next epoch.
    await asyncio.gather(desktop.rename(group.id, "Desk"), laptop.rename(laptop_chat, "Lap"))
    await asyncio.gather(desktop.flush(WAIT), laptop.flush(WAIT))

    async def converged() -> bool:
        epochs = {
            await desktop.group_epoch(group.id),
            await laptop.group_epoch(laptop_chat),
            await bob.group_epoch(bob_chat),
        }
        titles = {
            (await desktop.conversation(group.id)).conversation.title,
            (await laptop.conversation(laptop_chat)).conversation.title,
            (await bob.conversation(bob_chat)).conversation.title,
        }
        return len(epochs) == 1 and epochs != {epoch} and len(titles) == 1

    await eventually(converged, "all members in the same epoch with the same name")
    assert epoch is not None and (await bob.group_epoch(bob_chat) or 0) >= epoch + 2
    await desktop.send_text(group.id, "still in step")
    await laptop.send_text(laptop_chat, "me too")

    async def bob_reads_both() -> bool:
        return {"still in step", "me too"} <= {t for t, _ in await texts(bob, bob_chat)}

    await eventually(bob_reads_both, "Bob to read both devices after the race")


async def test_three_people_five_devices(clients: Clients) -> None:
    alice = await clients.new("alice-desktop", handle="alice6")
    bob = await clients.new("bob-desktop", handle="bob6")
    carol = await clients.new("carol", handle="carol6")
    alice2 = await add_device(clients, alice, "alice-laptop")
    bob2 = await add_device(clients, bob, "bob-laptop")
    devices = [alice, alice2, bob, bob2, carol]
    ids = {name: await account_id(c) for name, c in [("a", alice), ("b", bob), ("c", carol)]}
    group = await alice.create_group("Trio", [ids["b"], ids["c"]])
    chats = {alice: group.id}
    for device in devices[1:]:
        chats[device] = await only_conversation(device, "every device to join")
    for number, device in enumerate(devices):
        await device.send_text(chats[device], f"message {number}")
    expected = {f"message {n}" for n in range(5)}
    account_of = {alice: "a", alice2: "a", bob: "b", bob2: "b", carol: "c"}

    async def everyone_has_everything() -> bool:
        for device in devices:
            views = [
                v
                for v in await device.messages(chats[device], limit=100)
                if v.message.kind is not MessageKind.SYSTEM
            ]
            if {v.message.body for v in views} != expected:
                return False
            for view in views:
                number = int((view.message.body or "").split()[-1])
                sender = account_of[devices[number]]
                # Shown as mine exactly when one of my devices sent it.
                if view.message.outgoing != (sender == account_of[device]):
                    return False
                if view.message.sender_account_id != ids[sender]:
                    return False
        return True

    await eventually(everyone_has_everything, "all five devices to have all five messages")
    for device in devices:
        members = {m.account_id for m in (await device.conversation(chats[device])).members}
        assert members == set(ids.values())


async def test_a_device_linked_with_a_code_syncs(clients: Clients) -> None:
    desktop = await clients.new("alice-desktop", handle="alice7")
    bob = await clients.new("bob", handle="bob7")
    bob_id = await account_id(bob)
    chat = await desktop.create_conversation(bob_id)
    await desktop.send_text(chat.id, "before the laptop")
    await only_conversation(bob, "Bob to join")
    await desktop.flush(WAIT)

    laptop = await MessengerClient.create(
        "alice-laptop",
        PASSPHRASE,
        data_dir=clients.data_dir("alice-laptop"),
        keychain=keychain(),
        kdf=FAST_KDF,
        options=CLIENT_OPTIONS,
    )
    clients.open_clients.append(laptop)
    link = await desktop.start_link()

    async def approve() -> None:
        await link.wait_offer()
        await link.approve(history=True)

    await asyncio.gather(approve(), laptop.link_account(link.code, device_name="Laptop"))
    await laptop.start()
    await clients.introduce(laptop)

    async def listed() -> bool:
        names = {v.name for v in await desktop.devices()}
        return "Laptop" in names and len(await laptop.devices()) == 2

    await eventually(listed, "each device to list the other")
    laptop_chat = await only_conversation(laptop, "the laptop to have the chat")
    await laptop.send_text(laptop_chat, "from the new laptop")

    async def delivered() -> bool:
        return ("from the new laptop", True) in await texts(desktop, chat.id) and (
            "from the new laptop",
            False,
        ) in await texts(bob, (await bob.conversations())[0].id)

    await eventually(delivered, "the laptop's message on the desktop (as mine) and at Bob's")
    await laptop.mute(laptop_chat)

    async def muted() -> bool:
        return (await desktop.conversation(chat.id)).muted

    await eventually(muted, "the mute on the desktop")


async def test_an_account_without_a_devices_group_gets_one_on_start(clients: Clients) -> None:
    # As an account from before devices groups: no devices group recorded.
    alice = await clients.new("alice", handle="alice8", start=False)
    old = await alice.devices_group_id()
    assert old is not None
    await alice._store.run(lambda s: s.db.execute("DELETE FROM devices_group"))
    await alice.start()

    async def made() -> bool:
        return await alice.devices_group_id() not in (None, old)

    await eventually(made, "a devices group made on start")
    assert [v.this_device for v in await alice.devices()] == [True]
    assert await alice.conversations() == []
    await alice.flush(WAIT)  # the server took the new group
