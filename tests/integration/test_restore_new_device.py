"""A restored backup joins the account as a new device; the old one keeps working.

A real server process on loopback, clients with separate stores
(docs/devices.md §5). Bob backs up his profile and restores it on "another
computer". The restored copy registers a new client of Bob's account (signed
with the backed-up key, certified with the account key), rejoins Bob's
conversations by external commit, and from then on both of Bob's devices
receive and send. Alice sees one Bob, a note that he added a device, and the
same safety number. From the restored device, Bob removes the old one: it is
told so and stops.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from messenger.client import (
    ConnectionState,
    ConnectionStateChanged,
    DeviceRemovedError,
    MessageKind,
    MessengerClient,
    NoteKind,
)
from messenger.client.cli import RESTORE_TAKEOVER

from .conftest import FAST_KDF, WAIT, Clients, ServerProcess, eventually
from .restoring import restore, texts, wait_texts
from .test_cli_new_user import Lines, _command, _env, ok, run_cli, wait_until

pytestmark = pytest.mark.anyio

BACKUP_PASSPHRASE = "restore backup passphrase"
REMOVED = DeviceRemovedError.default_user_message


async def _only_conversation(client: MessengerClient) -> int:
    async def joined() -> bool:
        return len(await client.conversations()) == 1

    await eventually(joined, "the conversation to be joined")
    return (await client.conversations())[0].id


async def _pair(clients: Clients, tag: str) -> tuple[MessengerClient, MessengerClient, int, int]:
    """Alice and Bob in a one-to-one conversation with one message: (alice, bob, ids)."""
    alice = await clients.new(f"alice{tag}", handle=f"alice{tag}")
    bob = await clients.new(f"bob{tag}", handle=f"bob{tag}")
    contact = await alice.add_contact(f"bob{tag}")
    conversation = await alice.create_conversation(contact.account_id)
    await alice.send_text(conversation.id, "before the backup")
    bob_cid = await _only_conversation(bob)
    await wait_texts(bob, bob_cid, ["before the backup"], "Bob to get the first message")
    return alice, bob, conversation.id, bob_cid


async def _removed(events: object) -> ConnectionStateChanged:
    """The first REMOVED state change in ``events`` (a client's subscription)."""

    async def first() -> ConnectionStateChanged:
        async for event in events:  # type: ignore[attr-defined]
            if isinstance(event, ConnectionStateChanged) and (
                event.state is ConnectionState.REMOVED
            ):
                return event
        raise AssertionError("the event stream ended")

    return await asyncio.wait_for(first(), WAIT)


async def _device_notes(client: MessengerClient, cid: int) -> list[NoteKind]:
    return [
        v.message.note.kind
        for v in await client.messages(cid, limit=200)
        if v.message.note is not None
        and v.message.note.kind in (NoteKind.DEVICE_ADDED, NoteKind.DEVICE_REMOVED)
    ]


async def test_the_restored_copy_is_a_new_device_and_the_old_one_keeps_working(
    clients: Clients, tmp_path: Path
) -> None:
    alice, bob, alice_cid, bob_cid = await _pair(clients, "nd")
    bob_account = await bob.account()
    assert bob_account is not None
    number_before = (await alice.safety_number(bob_account.account_id)).number
    backup = tmp_path / "bob.backup"
    await bob.backup(backup, BACKUP_PASSPHRASE, kdf=FAST_KDF)

    restored = await restore(clients, backup, BACKUP_PASSPHRASE, "bobnd-restored")
    await restored.start()
    await restored.wait_online(WAIT)
    restored_account = await restored.account()
    assert restored_account is not None
    # The same account, another device (client) of it.
    assert restored_account.account_id == bob_account.account_id
    assert restored_account.client_id != bob_account.client_id

    # Alice's app sees Bob add a device, and his safety number does not change.
    async def noted() -> bool:
        return NoteKind.DEVICE_ADDED in await _device_notes(alice, alice_cid)

    await eventually(noted, "Alice to see that Bob added a device")
    assert (await alice.safety_number(bob_account.account_id)).number == number_before

    # New messages reach both of Bob's devices; both can answer; Alice sees one Bob.
    await alice.send_text(alice_cid, "after the restore")
    await wait_texts(
        restored,
        bob_cid,
        ["before the backup", "after the restore"],
        "the restored device to get the new message",
    )
    await wait_texts(
        bob, bob_cid, ["before the backup", "after the restore"], "the old device to get it too"
    )
    await restored.send_text(bob_cid, "from the restored device")
    await bob.send_text(bob_cid, "from the old device")
    expected = [
        "before the backup",
        "after the restore",
        "from the restored device",
        "from the old device",
    ]

    # (The two devices send at once: the server may order either first.)
    async def both_answers() -> bool:
        return sorted(await texts(alice, alice_cid)) == sorted(expected)

    await eventually(both_answers, "Alice to get both answers")
    senders = {
        v.message.sender_account_id
        for v in await alice.messages(alice_cid, limit=200)
        if v.message.kind is not MessageKind.SYSTEM and not v.message.outgoing
    }
    assert senders == {bob_account.account_id}
    assert len([c for c in await alice.contacts() if c.account_id == bob_account.account_id]) == 1
    # Each of Bob's devices shows the other's message as sent by him (each orders
    # its own send before the other device's, which arrives later).
    for device in (bob, restored):

        async def converged(device: MessengerClient = device) -> bool:
            return sorted(await texts(device, bob_cid)) == sorted(expected)

        await eventually(converged, "Bob's devices to converge")
        mine = [
            v.message.body
            for v in await device.messages(bob_cid, limit=200)
            if v.message.outgoing and v.message.kind is not MessageKind.SYSTEM
        ]
        assert sorted(mine) == ["from the old device", "from the restored device"]

    # The restored device keeps its identity across restarts.
    await clients.close(restored)
    restored = await clients.open("bobnd-restored")
    await restored.wait_online(WAIT)
    again = await restored.account()
    assert again is not None and again.client_id == restored_account.client_id
    await alice.send_text(alice_cid, "after the restart")

    async def after_restart() -> bool:
        return "after the restart" in await texts(restored, bob_cid)

    await eventually(after_restart, "the restarted device to get the message")


async def test_the_restored_device_removes_the_lost_one(clients: Clients, tmp_path: Path) -> None:
    alice, bob, alice_cid, bob_cid = await _pair(clients, "rm")
    await bob.wait_online(WAIT)
    backup = tmp_path / "bob.backup"
    await bob.backup(backup, BACKUP_PASSPHRASE, kdf=FAST_KDF)
    old_account = await bob.account()
    assert old_account is not None
    old_events = bob.events()

    restored = await restore(clients, backup, BACKUP_PASSPHRASE, "bobrm-restored")
    await restored.start()
    await restored.wait_online(WAIT)

    async def listed() -> bool:
        return old_account.client_id in {d.client_id for d in await restored.devices()}

    await eventually(listed, "the restored device to list the old one")
    await restored.remove_device(old_account.client_id)
    event = await _removed(old_events)
    assert event.error == REMOVED
    with pytest.raises(DeviceRemovedError):
        await bob.sync()
    await alice.send_text(alice_cid, "only for the restored device")
    await wait_texts(
        restored,
        bob_cid,
        ["before the backup", "only for the restored device"],
        "the restored device to get the message",
    )
    assert await texts(bob, bob_cid) == ["before the backup"]


async def test_the_command_line_says_what_happens(
    clients: Clients, server: ServerProcess, tmp_path: Path
) -> None:
    data = tmp_path / "cli"
    await asyncio.to_thread(ok, data, "carol", "create-account", server.url, "--handle", "carolnd")
    backup = tmp_path / "carol.backup"
    await asyncio.to_thread(ok, data, "carol", "backup", str(backup))
    elsewhere = tmp_path / "other-computer"
    out = await asyncio.to_thread(ok, elsewhere, "carol", "restore", str(backup))
    assert "Restored into profile 'carol'." in out and RESTORE_TAKEOVER in out
    # The restored copy connects (and so becomes a new device); then the old one
    # still connects and syncs: nothing replaced it.
    restored = subprocess.Popen(
        _command(elsewhere, "carol", "listen", "--timeout", str(WAIT * 3)),
        env=_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    restored_err = Lines(restored.stderr)
    try:
        wait_until(lambda: restored_err.count("connected") == 1, "the restored copy to connect")
    finally:
        restored.terminate()
        restored.wait(WAIT)
        restored_err.close()
    code, _, sync_err = await asyncio.to_thread(run_cli, data, "carol", "sync")
    assert code == 0, sync_err
    code, devices_out, devices_err = await asyncio.to_thread(run_cli, data, "carol", "devices")
    assert code == 0, devices_err
    assert len([line for line in devices_out.splitlines() if line.strip()]) >= 2


async def test_a_restore_beside_two_linked_devices_is_a_third(
    clients: Clients, tmp_path: Path
) -> None:
    """Alice has a laptop and a desktop; her laptop's backup restored elsewhere is
    a third device: all three receive, Bob still sees one Alice and the same number."""
    from .multi_device import add_device

    alice, bob, alice_cid, _ = await _pair(clients, "3d")
    bob_account = await bob.account()
    assert bob_account is not None
    await bob.wait_online(WAIT)
    desktop = await add_device(clients, bob, "bob3d-desktop")
    number = (await alice.safety_number(bob_account.account_id)).number
    backup = tmp_path / "bob.backup"
    await bob.backup(backup, BACKUP_PASSPHRASE, kdf=FAST_KDF)

    third = await restore(clients, backup, BACKUP_PASSPHRASE, "bob3d-restored")
    await third.start()
    await third.wait_online(WAIT)

    async def three() -> bool:
        lists = [await device.devices() for device in (bob, desktop, third)]
        return all(len(found) == 3 for found in lists)

    await eventually(three, "each of Bob's devices to list three")
    await alice.send_text(alice_cid, "to all three")
    for device in (bob, desktop, third):
        # (Conversation IDs are local to each device's store.)
        cid = await _only_conversation(device)

        async def got(device: MessengerClient = device, cid: int = cid) -> bool:
            return "to all three" in await texts(device, cid)

        await eventually(got, "each of Bob's devices to get the message")
    await third.send_text(await _only_conversation(third), "from the third device")

    async def answered() -> bool:
        return "from the third device" in await texts(alice, alice_cid)

    await eventually(answered, "Alice to get the third device's message")
    assert (await alice.safety_number(bob_account.account_id)).number == number
    others = {
        v.message.sender_account_id
        for v in await alice.messages(alice_cid, limit=200)
        if not v.message.outgoing and v.message.kind is not MessageKind.SYSTEM
    }
    assert others == {bob_account.account_id}
