"""A restored backup rejoins a group whose state was resealed since, with the account's box.

A real server process on loopback, clients with separate stores
(docs/metadata.md §2, docs/devices.md §5). The server seals each group's
GroupInfo under a data key that only the send tokens of the epochs since
the group's last removal open. Alice's laptop is backed up; later Carol is
added to the group and removed, so the server draws a fresh key and the
backup's token opens nothing. If one of Alice's devices uploaded her rejoin
box after the removal, the restored copy opens it with the box's token,
rejoins by external commit and reads what is sent after; if none did, the
copy says the group could not be rejoined (and keeps its history) instead
of failing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from messenger.client import MessengerClient, NoteKind
from messenger.client.rejoin_boxes import RejoinBoxUploader

from .conftest import FAST_KDF, WAIT, Clients, eventually
from .multi_device import add_device
from .restoring import restore, texts, wait_texts

pytestmark = pytest.mark.anyio

BACKUP_PASSPHRASE = "rejoin box backup passphrase"


async def _conversation(client: MessengerClient, title: str) -> int:
    async def found() -> bool:
        return any(c.conversation.title == title for c in await client.conversations())

    await eventually(found, f"the conversation {title!r} to be joined")
    return next(c.id for c in await client.conversations() if c.conversation.title == title)


async def _member_count(client: MessengerClient, cid: int, count: int, what: str) -> None:
    async def check() -> bool:
        return len(await client.members(cid)) == count

    await eventually(check, what)


def _uploader(client: MessengerClient) -> RejoinBoxUploader:
    client._require()
    boxes = client._rejoin_boxes
    assert boxes is not None
    return boxes


async def _backed_up_then_carol_in_and_out(
    clients: Clients, tmp_path: Path, tag: str
) -> tuple[MessengerClient, MessengerClient, int, int, Path]:
    """Alice and Bob chat in a group; Alice's laptop is backed up; Carol is then
    added and removed. (alice, bob, Alice's and Bob's conversation IDs, backup)."""
    alice = await clients.new(f"alice{tag}", handle=f"alice{tag}")
    bob = await clients.new(f"bob{tag}", handle=f"bob{tag}")
    carol = await clients.new(f"carol{tag}", handle=f"carol{tag}")
    title = f"Team {tag}"
    bob_id = (await alice.add_contact(f"bob{tag}")).account_id
    carol_id = (await alice.add_contact(f"carol{tag}")).account_id
    group = await alice.create_group(title, [bob_id])
    await alice.send_text(group.id, "before the backup")
    bob_cid = await _conversation(bob, title)
    await wait_texts(bob, bob_cid, ["before the backup"], "Bob to get the first message")
    await alice.flush(WAIT)

    backup = tmp_path / f"alice{tag}.backup"
    await alice.backup(backup, BACKUP_PASSPHRASE, kdf=FAST_KDF)

    await alice.add_members(group.id, [carol_id])
    await alice.flush(WAIT)
    carol_cid = await _conversation(carol, title)
    await _member_count(alice, group.id, 3, "Carol to be in Alice's group")
    await carol.send_text(carol_cid, "carol was here")
    await wait_texts(bob, bob_cid, ["before the backup", "carol was here"], "Carol's message")
    await alice.remove_member(group.id, carol_id)
    await alice.flush(WAIT)
    await _member_count(bob, bob_cid, 2, "Bob to see Carol removed")
    return alice, bob, group.id, bob_cid, backup


async def test_the_restored_copy_rejoins_with_the_box_another_device_uploaded(
    clients: Clients, tmp_path: Path
) -> None:
    alice, bob, alice_cid, bob_cid, backup = await _backed_up_then_carol_in_and_out(
        clients, tmp_path, "box"
    )
    # Alice's other device has seen the removal and uploads her account's boxes
    # (explicitly: the background round comes 1 to 10 minutes later).
    desktop = await add_device(clients, alice, "aliceboxdesktop")
    desktop_cid = await _conversation(desktop, "Team box")
    await _member_count(desktop, desktop_cid, 2, "the desktop to be in the group")
    assert (await _uploader(desktop).upload_due()).uploaded >= 1

    restored = await restore(clients, backup, BACKUP_PASSPHRASE, "aliceboxrestored")
    await restored.start()
    await restored.wait_online(WAIT)
    view = await restored.conversation(alice_cid)
    assert view.conversation.left_at is None, "the group was not rejoined"
    notes = [v.note.kind for v in await restored.messages(alice_cid, limit=100) if v.note]
    assert NoteKind.REJOIN_FAILED not in notes

    await bob.send_text(bob_cid, "after the restore")
    await wait_texts(
        restored,
        alice_cid,
        ["before the backup", "after the restore"],
        "the restored copy to read what is sent after",
    )
    await restored.send_text(alice_cid, "from the restored copy")

    async def answered() -> bool:
        return "from the restored copy" in await texts(bob, bob_cid)

    await eventually(answered, "Bob to get the restored copy's message")


async def test_without_a_fresh_box_the_group_is_reported_not_rejoinable(
    clients: Clients, tmp_path: Path
) -> None:
    alice, bob, alice_cid, bob_cid, backup = await _backed_up_then_carol_in_and_out(
        clients, tmp_path, "nobox"
    )
    # No device of Alice's uploaded a box since the removal (her laptop's round
    # at start holds a token from before it).
    restored = await restore(clients, backup, BACKUP_PASSPHRASE, "alicenoboxrestored")
    await restored.start()
    await restored.wait_online(WAIT)

    async def given_up() -> bool:
        view = await restored.conversation(alice_cid)
        return view.conversation.left_at is not None

    await eventually(given_up, "the restore to give the group up")
    notes = [v.note.kind for v in await restored.messages(alice_cid, limit=100) if v.note]
    assert NoteKind.REJOIN_FAILED in notes
    assert await texts(restored, alice_cid) == ["before the backup"], "its history is kept"
    # The copy works otherwise: it is a device of Alice's account, online.
    account = await restored.account()
    original = await alice.account()
    assert account is not None and original is not None
    assert account.account_id == original.account_id
    assert account.client_id != original.client_id
    # Alice's live device is unaffected.
    await bob.send_text(bob_cid, "still here")
    await wait_texts(
        alice,
        alice_cid,
        ["before the backup", "carol was here", "still here"],
        "Alice's live device to go on",
    )
